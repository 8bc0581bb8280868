"""Training-step time of a VAE with a Real NVP prior of depth K = 1, 5, 20, 50 vs N(0, I)
(seed 004 Fig. B.7's curve), and with a VampPrior of 500 pseudo-inputs (and MAF).

Dense VAE on the 64-dim digits (latent 40 as seed 004, 2x200 hidden, batch 128, ELBO,
one sample), XLA on. Prints a table and writes `benchmarks/results/prior_step_time.json`.

    python benchmarks/prior_step_time.py [--steps 30] [--depths 1,5,20,50]
"""

import argparse
import json
import os
import time

import keras
import numpy as np

import tfvi

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def make(kind, depth, latent, x):
    encoder = tfvi.layers.GaussianEncoder(latent, hidden=(200, 200))
    decoder = tfvi.layers.BernoulliDecoder(output_dim=x.shape[1], hidden=(200, 200))
    if kind == "realnvp":
        prior = tfvi.priors.RealNVPPrior(latent, depth=depth, hidden=(256,), seed=0)
    elif kind == "vamp":
        encoder.build((None, x.shape[1]))
        prior = tfvi.priors.VampPrior(encoder, num_pseudo_inputs=500, init_from_data=x, seed=0)
    elif kind == "maf":
        prior = tfvi.priors.MAFPrior(latent, depth=depth, hidden=(256, 256))
    else:
        prior = tfvi.priors.StandardNormal(latent)
    model = tfvi.models.VAE(encoder, decoder, prior, input_dim=x.shape[1], seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def time_steps(model, x, batch, steps, repeats=3):
    data = np.resize(x, (batch * steps, x.shape[1]))
    model.fit(data[:batch * 2], batch_size=batch, epochs=1, verbose=0)  # compile
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(data, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--latent", type=int, default=40)
    parser.add_argument("--depths", default="1,5,20,50")
    args = parser.parse_args()
    x = tfvi.data.load_digits()["test_x"]
    configs = [("standard", 0)] + [("realnvp", int(k)) for k in args.depths.split(",")]
    configs += [("vamp", 500), ("maf", 5)]
    rows = []
    for kind, depth in configs:
        keras.utils.set_random_seed(0)
        ms = 1e3 * time_steps(make(kind, depth, args.latent, x), x, args.batch, args.steps)
        rows.append({"prior": kind, "depth_or_pseudo_inputs": depth, "ms_per_step": ms})
        print(f"{kind:<10}{depth:>6}{ms:>12.2f} ms/step", flush=True)
    base = rows[0]["ms_per_step"]
    print(f"\n{'prior':<10}{'K / M':>6}{'ms/step':>12}{'x standard':>12}")
    for r in rows:
        print(f"{r['prior']:<10}{r['depth_or_pseudo_inputs']:>6}{r['ms_per_step']:>12.2f}"
              f"{r['ms_per_step'] / base:>12.2f}")
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "prior_step_time.json"), "w") as f:
        json.dump({"args": vars(args), "rows": rows,
                   "note": "best of 3 timed epochs; shared 2-core machine under load"},
                  f, indent=2)


if __name__ == "__main__":
    main()
