"""Training-step time of a VAE with a Real NVP prior of depth K = 1, 5, 20, 50 vs N(0, I)
(Xu et al. Fig. B.7's curve), and with a VampPrior of 500 pseudo-inputs (and MAF).

Dense VAE on the 64-dim digits (latent 40 as Xu et al., 2x200 hidden, batch 128, ELBO,
one sample), wall and process CPU time per step (CPU time is the steadier figure on a
shared machine), XLA on by default (`--xla off`: graph mode, no compile). Prints a table,
writes `benchmarks/results/prior_step_time.json` (after every row) and plots CPU ms/step
against K with N(0, I), the VampPrior and MAF as horizontal lines
(`benchmarks/results/prior_step_time.png`, the shape of Xu et al. Fig. B.7).

    python benchmarks/prior_step_time.py [--steps 30] [--depths 1,5,20,50] [--xla off]
"""

import argparse
import json
import os
import time

import keras
import numpy as np

import tfvi

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def make(kind, depth, latent, x, jit_compile=True):
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
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    return model


def time_steps(model, x, batch, steps, repeats=3):
    data = np.resize(x, (batch * steps, x.shape[1]))
    model.fit(data[:batch * 2], batch_size=batch, epochs=1, verbose=0)  # compile
    best, best_cpu = np.inf, np.inf
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        model.fit(data, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        best = min(best, (time.perf_counter() - start) / steps)
        best_cpu = min(best_cpu, (time.process_time() - start_cpu) / steps)
    return best, best_cpu


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    rnvp = [r for r in rows if r["prior"] == "realnvp"]
    ax.plot([r["depth_or_pseudo_inputs"] for r in rnvp], [r["cpu_ms_per_step"] for r in rnvp],
            "o-", label="Real NVP prior, depth K")
    styles = {"standard": ("k--", "N(0, I)"), "vamp": ("g:", "VampPrior (500)"),
              "maf": ("r-.", "MAF prior (K=5)")}
    for r in rows:
        if r["prior"] in styles:
            style, label = styles[r["prior"]]
            ax.axhline(r["cpu_ms_per_step"], linestyle=style[1:], color=style[0], label=label)
    ax.set_xlabel("flow depth K")
    ax.set_ylabel("CPU ms per training step")
    ax.set_title("VAE step time vs prior (digits, latent 40, batch 128)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--latent", type=int, default=40)
    parser.add_argument("--depths", default="1,5,20,50")
    parser.add_argument("--xla", choices=("on", "off"), default="on",
                        help="XLA-compile the training step (compiling K=50 takes minutes)")
    args = parser.parse_args()
    x = tfvi.data.load_digits()["test_x"]
    configs = [("standard", 0), ("vamp", 500)]
    configs += [("realnvp", int(k)) for k in args.depths.split(",")] + [("maf", 5)]
    rows = []
    os.makedirs(RESULTS, exist_ok=True)
    for kind, depth in configs:
        keras.utils.set_random_seed(0)
        model = make(kind, depth, args.latent, x, jit_compile=args.xla == "on")
        wall, cpu = time_steps(model, x, args.batch, args.steps)
        ms, cpu_ms = 1e3 * wall, 1e3 * cpu
        rows.append({"prior": kind, "depth_or_pseudo_inputs": depth, "ms_per_step": ms,
                     "cpu_ms_per_step": cpu_ms, "load_average": os.getloadavg()})
        print(f"{kind:<10}{depth:>6}{ms:>12.2f} ms/step (wall){cpu_ms:>12.2f} ms/step (CPU)",
              flush=True)
        with open(os.path.join(RESULTS, "prior_step_time.json"), "w") as f:  # partial
            json.dump({"args": vars(args), "rows": rows, "complete": False}, f, indent=2)
    base, base_cpu = rows[0]["ms_per_step"], rows[0]["cpu_ms_per_step"]
    print(f"\n{'prior':<10}{'K / M':>6}{'wall ms':>10}{'x std':>8}{'CPU ms':>10}{'x std':>8}")
    for r in rows:
        print(f"{r['prior']:<10}{r['depth_or_pseudo_inputs']:>6}{r['ms_per_step']:>10.2f}"
              f"{r['ms_per_step'] / base:>8.2f}{r['cpu_ms_per_step']:>10.2f}"
              f"{r['cpu_ms_per_step'] / base_cpu:>8.2f}")
    with open(os.path.join(RESULTS, "prior_step_time.json"), "w") as f:
        json.dump({"args": vars(args), "rows": rows, "complete": True,
                   "load_average": os.getloadavg(),
                   "note": "best of 3 timed epochs (wall and process CPU time); shared "
                           "2-core machine under load"},
                  f, indent=2)
    plot(rows, os.path.join(RESULTS, "prior_step_time.png"))


if __name__ == "__main__":
    main()
