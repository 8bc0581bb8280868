"""Seed 000 reproduction at a CPU budget: the |z| toy curves (Fig. B.1/B.2) and the
single-column digits VIB grid (B.1: K in {1,2,5,10} x T in {1,2,5,10}; accuracy and
ECE for ELBO/IWAE (K=1) and SELBO/SIWAE (K>1)), the deterministic baselines, and the
decoded component modes of a single-column VAE (C.3).

    python benchmarks/seed000.py --parts toy,grid,modes [--epochs 20] [--toy_epochs 60]

Prints tables and writes benchmarks/results/seed000_{toy,grid}.json and plots.
"""

import argparse
import itertools
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

import tfvi
from tfvi.data import views
from tfvi.evaluation import calibration, modes

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


# ----------------------------------------------------------------------- toy
TOY_METHODS = {
    "selbo": dict(objective="selbo"),
    "siwae": dict(objective="siwae"),
    "score_siwae": dict(objective="siwae", gradient_estimator="score"),
    "stl_selbo": dict(objective="selbo", stl=True),
    "stl_siwae": dict(objective="siwae", stl=True),
}


def run_toy(args):
    x, _ = tfvi.data.abs_toy(args.toy_examples, dim=2, sigma=args.sigma, seed=0)
    exact = float(tfvi.data.abs_toy_log_marginal(x, args.sigma).mean())
    rows = {}
    for name, kwargs in TOY_METHODS.items():
        keras.utils.set_random_seed(0)
        model = tfvi.models.VAE(
            tfvi.layers.MixtureEncoder(2, components=args.toy_components, hidden=(64, 64),
                                       covariance="full"),
            tfvi.data.abs_toy_likelihood(args.sigma), samples=args.toy_samples,
            input_dim=2, seed=0, **kwargs)
        model.compile(keras.optimizers.Adam(3e-3))
        curve = []

        class Eval(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch % max(1, args.toy_epochs // 10) == 0 or epoch == args.toy_epochs - 1:
                    curve.append((epoch + 1, float(tfvi.evaluation.iwae_log_likelihood(
                        model, x, num_samples=args.toy_eval_samples, batch_size=250,
                        seed=1).mean())))

        t0 = time.time()
        model.fit(x, batch_size=100, epochs=args.toy_epochs, verbose=0, callbacks=[Eval()])
        alpha = tf.nn.softmax(model.encoder.posterior_parameters(
            tf.constant([[1.0, 1.0]]))["logits"]).numpy()[0]
        rows[name] = {"final_siwae": curve[-1][1], "curve": curve,
                      "alpha_at_(1,1)": alpha.round(3).tolist(),
                      "seconds": round(time.time() - t0, 1)}
        print(f"toy {name:12s} final SIWAE-{args.toy_eval_samples} {curve[-1][1]:.4f} "
              f"(exact {exact:.4f}) alpha(1,1)={np.round(alpha, 2)} "
              f"[{rows[name]['seconds']} s]", flush=True)
    out = {"sigma": args.sigma, "exact_mean_log_marginal": exact, "methods": rows,
           "components": args.toy_components, "samples": args.toy_samples,
           "epochs": args.toy_epochs, "examples": args.toy_examples}
    _plot_toy(out)
    return out


def _plot_toy(out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, row in out["methods"].items():
        e, v = zip(*row["curve"])
        ax.plot(e, v, marker=".", label=name)
    ax.axhline(out["exact_mean_log_marginal"], color="k", ls="--", label="exact log p(x)")
    ax.set(xlabel="epoch", ylabel="training SIWAE", title=f"|z| toy, sigma={out['sigma']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, "seed000_toy.png"), dpi=100)


# ---------------------------------------------------------------------- grid
def _digits_single_column():
    arrays = tfvi.data.load_digits()
    return (views.single_column(arrays["train_probs"]), arrays["train_labels"],
            views.single_column(arrays["test_probs"]), arrays["test_labels"], arrays)


def _vib(k, t, objective, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return tfvi.models.VIBClassifier(
        tfvi.layers.MixtureEncoder(2, components=k, hidden=(128,) * 4, activation="elu",
                                   covariance="full"),
        tfvi.layers.CategoricalDecoder(10),
        tfvi.priors.MixtureOfGaussians(2, components=10, seed=seed),
        objective=objective, samples=t, beta=0.05, input_dim=8, seed=seed, **kwargs)


def run_grid(args):
    xtr, ytr, xte, yte, _ = _digits_single_column()
    rows = []
    for k, t in itertools.product(args.ks, args.ts):
        objectives = ("elbo", "iwae") if k == 1 else ("selbo", "siwae")
        for objective in objectives:
            model = _vib(k, t, objective)
            model.compile(keras.optimizers.Adam(1e-3), jit_compile=args.jit)
            t0 = time.time()
            if args.burn_in_epochs:
                tfvi.burn_in.burn_in(model, xtr, ytr, epochs=args.burn_in_epochs, verbose=0)
            model.fit(xtr, ytr, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
            probs = calibration.posterior_predictive(model, xte, args.predict_samples)
            row = {"K": k, "T": t, "objective": objective,
                   "accuracy": calibration.accuracy(probs, yte),
                   "ece": calibration.expected_calibration_error(probs, yte),
                   "seconds": round(time.time() - t0, 1)}
            rows.append(row)
            print(f"grid K={k:2d} T={t:2d} {objective:5s} acc {row['accuracy']:.3f} "
                  f"ECE {row['ece']:.3f} [{row['seconds']} s]", flush=True)
            if k == 5 and objective == "siwae" and t == max(args.ts):
                calibration.plot_reliability_diagram(
                    probs, yte, path=os.path.join(RESULTS, "seed000_reliability_siwae_k5.png"),
                    title=f"VIB SIWAE K=5 T={t}")
    baselines = {}
    for name, fn in (("pyramid", tfvi.models.baselines.pyramid_mlp),
                     ("bottleneck", tfvi.models.baselines.bottleneck_mlp)):
        keras.utils.set_random_seed(0)
        model = fn(8)
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        model.fit(xtr, ytr, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
        probs = model.predict(xte, verbose=0)
        baselines[name] = {"accuracy": calibration.accuracy(probs, yte),
                           "ece": calibration.expected_calibration_error(probs, yte)}
        print(f"baseline {name}: acc {baselines[name]['accuracy']:.3f} "
              f"ECE {baselines[name]['ece']:.3f}", flush=True)
    _print_tables(rows, args)
    return {"rows": rows, "baselines": baselines, "epochs": args.epochs,
            "predict_samples": args.predict_samples, "beta": 0.05,
            "burn_in_epochs": args.burn_in_epochs, "batch_size": args.batch_size,
            "train_examples": len(xtr),
            "test_examples": len(xte)}


def _print_tables(rows, args):
    for metric in ("accuracy", "ece"):
        for family in (("elbo", "selbo"), ("iwae", "siwae")):
            print(f"\n{metric} - {family[0].upper()}/{family[1].upper()} (rows K, cols T)")
            print("K\\T " + " ".join(f"{t:>6d}" for t in args.ts))
            for k in args.ks:
                vals = []
                for t in args.ts:
                    match = [r for r in rows if r["K"] == k and r["T"] == t
                             and r["objective"] in family]
                    vals.append(f"{match[0][metric]:6.3f}" if match else "     -")
                print(f"{k:3d} " + " ".join(vals))


# --------------------------------------------------------------------- modes
def run_modes(args):
    """Single-column digits VAE (input: centre column, target: full image), SELBO vs
    SIWAE with K=5; plots the decoded mode of each component (C.3)."""
    xtr_col, _, xte_col, _, arrays = _digits_single_column()
    xtr = tfvi.data.binarize(arrays["train_probs"], 0)
    out = {}
    for objective in ("selbo", "siwae"):
        keras.utils.set_random_seed(0)
        model = tfvi.models.VAE(
            tfvi.layers.MixtureEncoder(2, components=5, hidden=(128, 128), activation="elu",
                                       covariance="full"),
            tfvi.layers.BernoulliDecoder(64, hidden=(128, 128), skip=True),
            tfvi.priors.MixtureOfGaussians(2, components=20), objective=objective,
            samples=5, input_dim=8, seed=0)
        model.compile(keras.optimizers.Adam(1e-3), jit_compile=args.jit)
        model.fit(xtr_col, xtr, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
        nll = -tfvi.evaluation.iwae_log_likelihood(
            model, xte_col, num_samples=100, y=arrays["test_x"]).mean()
        path = os.path.join(RESULTS, f"seed000_modes_{objective}.png")
        modes.plot_component_modes(model, xte_col, (8, 8), targets=arrays["test_x"],
                                   path=path, title=f"{objective.upper()} K=5 component modes")
        out[objective] = {"test_nll_iwae100": float(nll), "plot": os.path.basename(path)}
        print(f"modes {objective}: test NLL (IWAE-100) {nll:.3f}; plot {path}", flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="toy,grid,modes")
    parser.add_argument("--epochs", type=int, default=20, help="grid/modes epochs")
    parser.add_argument("--ks", default="1,2,5,10")
    parser.add_argument("--ts", default="1,2,5,10")
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--jit", action="store_true", help="XLA (slow to compile "
                        "for these small models on a loaded CPU)")
    parser.add_argument("--predict_samples", type=int, default=1000)
    parser.add_argument("--burn_in_epochs", type=int, default=0)
    parser.add_argument("--sigma", type=float, default=0.1)
    parser.add_argument("--toy_epochs", type=int, default=60)
    parser.add_argument("--toy_examples", type=int, default=500)
    parser.add_argument("--toy_components", type=int, default=4)
    parser.add_argument("--toy_samples", type=int, default=5)
    parser.add_argument("--toy_eval_samples", type=int, default=1000)
    args = parser.parse_args()
    args.ks = [int(v) for v in args.ks.split(",")]
    args.ts = [int(v) for v in args.ts.split(",")]
    os.makedirs(RESULTS, exist_ok=True)
    for part, fn in (("toy", run_toy), ("grid", run_grid), ("modes", run_modes)):
        if part in args.parts.split(","):
            result = fn(args)
            with open(os.path.join(RESULTS, f"seed000_{part}.json"), "w") as f:
                json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
