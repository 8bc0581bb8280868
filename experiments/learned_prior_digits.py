"""Xu et al. Table 1/7/8 on the bundled digits: N(0, I) prior vs a jointly trained Real NVP prior.

Same encoder/decoder (dense, Xu et al.'s DenseVAE shape scaled to 8x8 digits), same
epochs, same KL warm-up (beta 0.01 -> 1, Xu et al. B.3), ELBO with one sample
(Xu et al. B.3). Reports for each model, on the fixed test binarisation: NLL
(IWAE-1000, scored under the prior the model has), elbo, reconstruction,
E KL(q(z|x)||p(z)), E KL(q(z|x)||p(z|x)) = log p(x) - elbo, active units; writes
`experiments/results/learned_prior_digits.json` and the posterior-std histogram
(Xu et al. Fig. 3) `experiments/results/learned_prior_digits_stds_<setting>.png`.

Each run is one named setting (`--setting`); its rows are merged into the JSON under
`settings/<name>` so several settings (latent size, flow size, epochs) can be compared.
`--priors` picks the models: `standard` (N(0, I)), `realnvp` (jointly trained Real NVP
prior, Xu et al. eq. 4), `vamp` (VampPrior, Livne et al. 5.2, pseudo-inputs from training
data).

    python experiments/learned_prior_digits.py --setting latent32 --latent 32 \
        [--epochs 200] [--depth 10] [--priors standard,realnvp,vamp]
"""

import argparse
import json
import os
import time

import keras

import tfvi
from tfvi import plots
from tfvi.evaluation import diagnostics
from tfvi.training import KLWarmup

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
STEPS_PER_EPOCH = 15  # 1500 training digits at batch 100


def build(prior_kind, args, seed, train_probs):
    keras.utils.set_random_seed(seed)
    encoder = tfvi.layers.GaussianEncoder(args.latent, hidden=(args.hidden, args.hidden),
                                          activation="leaky_relu")
    decoder_hidden = (args.hidden, args.hidden) if args.decoder_hidden is None else \
        tuple(int(h) for h in args.decoder_hidden.split(",") if h)
    decoder = tfvi.layers.BernoulliDecoder(output_dim=64, hidden=decoder_hidden,
                                           activation="leaky_relu")
    if prior_kind == "realnvp":
        prior = tfvi.priors.RealNVPPrior(args.latent, depth=args.depth,
                                         hidden=(args.prior_hidden,) * args.prior_layers,
                                         seed=seed)
    elif prior_kind == "vamp":
        encoder.build((None, 64))
        prior = tfvi.priors.VampPrior(encoder, num_pseudo_inputs=args.pseudo_inputs,
                                      init_from_data=train_probs, seed=seed)
    elif prior_kind == "standard":
        prior = tfvi.priors.StandardNormal(args.latent)
    else:
        raise ValueError(f"Unknown prior {prior_kind!r} in `--priors`; expected "
                         "standard, realnvp or vamp.")
    model = tfvi.models.VAE(encoder, decoder, prior, objective="elbo", samples=1,
                            input_dim=64, seed=seed)
    # One compiled call per epoch (15 batches): less Python overhead per step; the
    # warm-up callback still moves beta at every epoch boundary.
    lr = args.lr
    if args.lr_schedule == "thirds":
        # Xu et al. B.3: lr, lr/10, lr/100 over three equal thirds of training.
        third = (args.epochs // 3) * STEPS_PER_EPOCH
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(
            [third, 2 * third], [args.lr, args.lr / 10, args.lr / 100])
    model.compile(optimizer=keras.optimizers.Adam(lr), steps_per_execution=STEPS_PER_EPOCH)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--latent", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--decoder_hidden", default=None,
                        help="decoder hidden sizes, comma-separated ('' = affine decoder); "
                             "default: two layers of --hidden")
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--prior_hidden", type=int, default=64)
    parser.add_argument("--prior_layers", type=int, default=1,
                        help="hidden layers of each coupling network")
    parser.add_argument("--pseudo_inputs", type=int, default=500)
    parser.add_argument("--priors", default="standard,realnvp",
                        help="comma-separated: standard, realnvp, vamp")
    parser.add_argument("--setting", default="default", help="name of this setting")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr_schedule", choices=["constant", "thirds"], default="constant",
                        help="'thirds': --lr, then /10, then /100 over equal thirds of "
                             "--epochs (Xu et al. B.3's 800/800/800 of 2400 epochs)")
    parser.add_argument("--nll_samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    arrays = tfvi.data.load_digits()
    test_x = arrays["test_x"]
    train = tfvi.data.digits_dataset("train", batch_size=100, seed=args.seed, arrays=arrays)
    rows, stds, timing = {}, {}, {}
    for kind in args.priors.split(","):
        model = build(kind, args, args.seed, arrays["train_probs"])
        start = time.perf_counter()
        model.fit(train, epochs=args.epochs, verbose=0,
                  callbacks=[KLWarmup(args.warmup)])
        timing[kind] = time.perf_counter() - start
        rows[kind] = diagnostics.prior_diagnostics(model, test_x, num_samples=args.nll_samples,
                                                   seed=args.seed)
        stds[kind] = diagnostics.posterior_stds(model, test_x)
        print(f"{kind}: trained {args.epochs} epochs in {timing[kind]:.0f}s", flush=True)
    print(diagnostics.format_diagnostics_table(rows))
    if "standard" in rows:
        for kind in rows:
            if kind != "standard":
                print(f"NLL gain of the {kind} prior over N(0, I): "
                      f"{rows['standard']['nll'] - rows[kind]['nll']:.3f} nats")
    os.makedirs(RESULTS, exist_ok=True)
    plots.plot_posterior_std_histogram(
        stds, os.path.join(RESULTS, f"learned_prior_digits_stds_{args.setting}.png"),
        title=f"digits, latent {args.latent}: priors {args.priors} (K={args.depth})")
    path = os.path.join(RESULTS, "learned_prior_digits.json")
    merged = {"settings": {}}
    if os.path.exists(path):
        with open(path) as f:
            merged = json.load(f)
        merged.setdefault("settings", {})
    merged["settings"][args.setting] = {"args": vars(args), "results": rows,
                                        "train_seconds": timing,
                                        "load_average": os.getloadavg()}
    with open(path, "w") as f:
        json.dump(merged, f, indent=2)


if __name__ == "__main__":
    main()
