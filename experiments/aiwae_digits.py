"""Ding & Freedman's table on binarized digits: IWAE (K=5) vs AIWAE (K=5, T=5), same everything else.

Both models: dense 64-200-200-z encoder/decoder (tanh, as Ding & Freedman's MLPs), N(0, I)
prior, Adam, the same seed, epochs and dynamically binarised training batches.
IWAE is `tfvi.models.VAE(objective="iwae", samples=5)`; AIWAE is
`tfvi.models.AIWAE(samples=5, temperatures=5, leapfrog_steps=5)` (Ding & Freedman, 5.1).
Each is scored with `tfvi.evaluation.gaps.ais_gap_table`: NLL(test/train) by AIS
(reduced protocol, stated in the output: by default the "quick" preset, 16 chains x
500 sigmoid temperatures x 10 leapfrog, on the first `--max_examples` examples of each
split), NVLB = -IWAE-5000, variational and generalisation gaps, active units. The
training split is scored on a fixed binarisation (seed 2) of its probabilities.

    python experiments/aiwae_digits.py [--epochs 100] [--max_examples 100]

Prints the table and writes `experiments/results/aiwae_digits.json`.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import tfvi  # noqa: E402
from tfvi.evaluation.gaps import format_ais_gap_table, ais_gap_table  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def build(kind, args):
    keras.utils.set_random_seed(args.seed)
    encoder = tfvi.layers.GaussianEncoder(args.latent, hidden=(args.hidden, args.hidden),
                                          activation="tanh")
    decoder = tfvi.layers.BernoulliDecoder(64, hidden=(args.hidden, args.hidden),
                                           activation="tanh")
    prior = tfvi.priors.StandardNormal(args.latent)
    if kind == "iwae":
        model = tfvi.models.VAE(encoder, decoder, prior, objective="iwae",
                                samples=args.samples, input_dim=64, seed=args.seed)
    else:
        model = tfvi.models.AIWAE(encoder, decoder, prior, samples=args.samples,
                                  temperatures=args.temperatures,
                                  leapfrog_steps=args.leapfrog, input_dim=64, seed=args.seed)
    model.compile(optimizer=keras.optimizers.Adam(args.lr))
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100, help="training epochs (both)")
    parser.add_argument("--latent", type=int, default=10, help="latent dimension")
    parser.add_argument("--hidden", type=int, default=200, help="hidden units per layer")
    parser.add_argument("--samples", type=int, default=5, help="K for IWAE and AIWAE")
    parser.add_argument("--temperatures", type=int, default=5, help="AIWAE T")
    parser.add_argument("--leapfrog", type=int, default=5, help="AIWAE leapfrog steps")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--batch_size", type=int, default=100, help="training batch")
    parser.add_argument("--max_examples", type=int, default=100,
                        help="examples of each split scored by AIS and IWAE-5000")
    parser.add_argument("--ais_preset", default="quick", help='"quick" or "wu"')
    parser.add_argument("--ais_temperatures", type=int, default=None,
                        help="override the preset's number of temperatures")
    parser.add_argument("--seed", type=int, default=0, help="init, data order, AIS seed")
    parser.add_argument("--out", default="aiwae_digits.json",
                        help="JSON file name under experiments/results/")
    args = parser.parse_args()

    arrays = tfvi.data.load_digits()
    x_test = arrays["test_x"]
    x_train = tfvi.data.binarize(arrays["train_probs"], 2)
    train = tfvi.data.digits_dataset("train", batch_size=args.batch_size, seed=args.seed,
                                     arrays=arrays)
    columns, timing = {}, {}
    for kind in ("iwae", "aiwae"):
        model = build(kind, args)
        t0 = time.perf_counter()
        history = model.fit(train, epochs=args.epochs, verbose=0)
        timing[f"{kind}_train_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        row = ais_gap_table(model, x_test, x_train, max_examples=args.max_examples,
                            seed=args.seed, preset=args.ais_preset,
                            num_temperatures=args.ais_temperatures)
        timing[f"{kind}_eval_s"] = time.perf_counter() - t0
        row["final_train_loss"] = float(history.history["loss"][-1])
        if kind == "aiwae":
            row["final_train_acceptance"] = float(history.history["acceptance"][-1])
        columns[kind] = row
        print(kind, {k: v for k, v in row.items() if k != "protocol"}, flush=True)
        print(f"{kind}: trained {args.epochs} epochs in {timing[kind + '_train_s']:.0f}s, "
              f"evaluated in {timing[kind + '_eval_s']:.0f}s", flush=True)
    print(format_ais_gap_table(columns))
    protocol = columns["iwae"]["protocol"]
    print(f"AIS protocol: {protocol['num_chains']} chains x {protocol['num_temperatures']} "
          f"{protocol['schedule']} temperatures x {protocol['num_leapfrog_steps']} leapfrog, "
          f"first {args.max_examples} examples of each split")
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, args.out)
    with open(path, "w") as f:
        json.dump({"args": vars(args), "timing_s": timing, "columns": columns,
                   "load_avg_at_end": os.getloadavg()}, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
