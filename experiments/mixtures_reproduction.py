"""Morningstar et al. reproduction at a CPU budget: the |z| toy curves (Fig. B.1/B.2) and the
single-column digits VIB grid (B.1: K in {1,2,5,10} x T in {1,2,5,10}; accuracy and
ECE for ELBO/IWAE (K=1) and SELBO/SIWAE (K>1)), the deterministic baselines, and the
decoded component modes of a single-column VAE (C.3) and of the style-modality VAE
(C.7: target a random image of the same class).

    python experiments/mixtures_reproduction.py --parts toy,grid,modes,style [--epochs 50] [--seeds 0,1]

Prints tables and writes experiments/results/mixtures_{toy,grid,modes,style}.json and
plots. The grid halves Adam's rate (1e-3) halfway through training, as B.1's 15000 of
30000 steps; split seeds over processes with `--seeds 0 --grid_out
mixtures_grid_seed0.json` (and seed 1) and join them with
`--merge mixtures_grid_seed0.json,mixtures_grid_seed1.json`.
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
from tfvi import plots
from tfvi.evaluation import calibration, mean_and_sd, modes

RESULTS = os.environ.get("MIXTURES_RESULTS") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "results")


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
    fig.savefig(os.path.join(RESULTS, "mixtures_toy.png"), dpi=100)


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


def _step_schedule(args, steps_per_epoch):
    """B.1's Adam schedule scaled to our budget: lr 1e-3, x0.5 every `decay_steps`.

    B.1 trains 50 epochs of MNIST (30000 steps at batch 100) and halves the rate every
    15000 steps, i.e. once halfway; by default we halve it halfway too
    (`--lr_decay_steps=0` -> half of epochs * steps_per_epoch)."""
    decay = args.lr_decay_steps or max(1, args.epochs * steps_per_epoch // 2)
    return keras.optimizers.schedules.ExponentialDecay(
        args.learning_rate, decay_steps=decay, decay_rate=0.5, staircase=True), decay


def run_grid(args):
    """The K x T grid for each seed in `args.seeds`; rows carry the seed."""
    xtr, ytr, xte, yte, _ = _digits_single_column()
    steps_per_epoch = -(-len(xtr) // args.batch_size)
    rows, baselines = [], {}
    for seed in args.seeds:
        for k, t in itertools.product(args.ks, args.ts):
            objectives = ("elbo", "iwae") if k == 1 else ("selbo", "siwae")
            for objective in objectives:
                if k == 1 and t == 1 and objective == "iwae" and rows and \
                        rows[-1]["objective"] == "elbo" and rows[-1]["T"] == 1:
                    # With one sample IWAE is the ELBO: same loss, same seed, same run.
                    rows.append(dict(rows[-1], objective="iwae", same_run_as="elbo"))
                    print(f"grid seed={seed} K= 1 T= 1 iwae  = elbo (T=1)", flush=True)
                    continue
                model = _vib(k, t, objective, seed=seed)
                schedule, decay = _step_schedule(args, steps_per_epoch)
                model.compile(keras.optimizers.Adam(schedule), jit_compile=args.jit)
                t0 = time.time()
                if args.burn_in_epochs:
                    tfvi.training.burn_in.burn_in(model, xtr, ytr, epochs=args.burn_in_epochs,
                                         seed=seed, verbose=0)
                hist = model.fit(xtr, ytr, batch_size=args.batch_size, epochs=args.epochs,
                                 verbose=0)
                probs = calibration.posterior_predictive(model, xte, args.predict_samples,
                                                         seed=seed)
                row = {"K": k, "T": t, "objective": objective, "seed": seed,
                       "accuracy": calibration.accuracy(probs, yte),
                       "ece": calibration.expected_calibration_error(probs, yte),
                       "train_kl_last_epoch": float(hist.history["kl"][-1]),
                       "train_accuracy_last_epoch": float(hist.history["accuracy"][-1]),
                       "seconds": round(time.time() - t0, 1)}
                rows.append(row)
                print(f"grid seed={seed} K={k:2d} T={t:2d} {objective:5s} "
                      f"acc {row['accuracy']:.3f} ECE {row['ece']:.3f} "
                      f"(train KL {row['train_kl_last_epoch']:.2f}) [{row['seconds']} s]",
                      flush=True)
                if k == 5 and objective == "siwae" and t == max(args.ts) and \
                        seed == 0:  # one file: later seeds in other processes keep it
                    plots.plot_reliability_diagram(
                        probs, yte, path=os.path.join(RESULTS,
                                                      "mixtures_reliability_siwae_k5.png"),
                        title=f"VIB SIWAE K=5 T={t}")
        for name, fn in (("pyramid", tfvi.models.baselines.pyramid_mlp),
                         ("bottleneck", tfvi.models.baselines.bottleneck_mlp)):
            if not args.baselines:
                break
            keras.utils.set_random_seed(seed)
            model = fn(8)
            model.compile(keras.optimizers.Adam(_step_schedule(args, steps_per_epoch)[0]),
                          "sparse_categorical_crossentropy")
            model.fit(xtr, ytr, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
            probs = model.predict(xte, verbose=0)
            baselines.setdefault(name, []).append(
                {"seed": seed, "accuracy": calibration.accuracy(probs, yte),
                 "ece": calibration.expected_calibration_error(probs, yte)})
            print(f"baseline seed={seed} {name}: acc {baselines[name][-1]['accuracy']:.3f} "
                  f"ECE {baselines[name][-1]['ece']:.3f}", flush=True)
    out = {"rows": rows, "baselines": baselines, "epochs": args.epochs,
           "seeds": args.seeds, "ks": args.ks, "ts": args.ts,
           "learning_rate": args.learning_rate, "lr_decay_steps": decay,
           "lr_decay_rate": 0.5, "steps_per_epoch": steps_per_epoch,
           "predict_samples": args.predict_samples, "beta": 0.05,
           "burn_in_epochs": args.burn_in_epochs, "batch_size": args.batch_size,
           "train_examples": len(xtr), "test_examples": len(xte),
           "load_average_at_end": list(os.getloadavg())}
    _print_tables(out)
    return out


def merge_grids(paths):
    """Concatenates per-seed grid JSONs (runs split across processes) into one."""
    parts = [json.load(open(p)) for p in paths]
    out = dict(parts[0])
    out["rows"] = [r for p in parts for r in p["rows"]]
    names = sorted({name for p in parts for name in p["baselines"]})
    out["baselines"] = {name: [b for p in parts for b in p["baselines"].get(name, [])]
                        for name in names}
    out["seeds"] = sorted({s for p in parts for s in p["seeds"]})
    out["ks"] = sorted({k for p in parts for k in p["ks"]})
    out["ts"] = sorted({t for p in parts for t in p["ts"]})
    out["load_average_at_end"] = [p["load_average_at_end"] for p in parts]
    _print_tables(out)
    return out


def _cell(rows, k, t, objectives, metric):
    vals = [r[metric] for r in rows if r["K"] == k and r["T"] == t
            and r["objective"] in objectives]
    if not vals:
        return f"{'-':>16s}"
    mean, sd = mean_and_sd(vals)
    return f"{mean:.3f}+-{sd:.3f} ({len(vals)})"


def _print_paired(rows, ts, k=5):
    """The issue's claim cell by cell: K=5 SIWAE minus K=1 ELBO with the same seed and T
    (accuracy up and ECE down is the paper's direction)."""
    def find(objective, kk, t, seed):
        return next((r for r in rows if (r["objective"], r["K"], r["T"], r["seed"]) ==
                     (objective, kk, t, seed)), None)

    print(f"\nK={k} SIWAE - K=1 ELBO, paired by seed and T: d accuracy / d ECE")
    diffs = []
    for t in ts:
        cells = []
        for seed in sorted({r["seed"] for r in rows}):
            a, b = find("siwae", k, t, seed), find("elbo", 1, t, seed)
            if a and b:
                d = (a["accuracy"] - b["accuracy"], a["ece"] - b["ece"])
                diffs.append(d)
                cells.append(f"s{seed} {d[0]:+.3f}/{d[1]:+.3f}")
        if cells:
            print(f"T={t:2d}: " + "  ".join(cells))
    if diffs:
        d = np.array(diffs)
        print(f"mean over {len(d)} pairs: d accuracy {d[:, 0].mean():+.3f} "
              f"({int((d[:, 0] > 0).sum())} up), d ECE {d[:, 1].mean():+.3f} "
              f"({int((d[:, 1] < 0).sum())} down)")


def _print_tables(out):
    """Mean +- sd over seeds; rows K, columns T; one table per metric and family
    (ELBO for K = 1 / SELBO for K > 1, and IWAE / SIWAE)."""
    rows, ks, ts = out["rows"], out["ks"], out["ts"]
    print(f"\n{len(out['seeds'])} seed(s) {out['seeds']}, {out['epochs']} epochs, "
          f"mean+-sd over seeds (n seeds)")
    for metric in ("accuracy", "ece"):
        for family in (("elbo", "selbo"), ("iwae", "siwae")):
            print(f"\n{metric} - {family[0].upper()} (K=1) / {family[1].upper()} (K>1); "
                  "rows K, cols T")
            print("K\\T " + " ".join(f"{t:>16d}" for t in ts))
            for k in ks:
                print(f"{k:4d} " + " ".join(_cell(rows, k, t, family, metric) for t in ts))
    _print_paired(rows, ts)
    for name, vals in out["baselines"].items():
        acc = [v["accuracy"] for v in vals]
        ece = [v["ece"] for v in vals]
        print(f"baseline {name}: acc {np.mean(acc):.3f} ECE {np.mean(ece):.3f} "
              f"({len(vals)} seed(s))")


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
        path = os.path.join(RESULTS, f"mixtures_modes_{objective}.png")
        plots.plot_component_modes(model, xte_col, (8, 8), targets=arrays["test_x"],
                                   path=path, title=f"{objective.upper()} K=5 component modes")
        out[objective] = {"test_nll_iwae100": float(nll), "plot": os.path.basename(path)}
        print(f"modes {objective}: test NLL (IWAE-100) {nll:.3f}; plot {path}", flush=True)
    return out


# --------------------------------------------------------------------- style
def run_style(args):
    """C.7 style modality on digits: input the full image, target a random image of the
    same class (fresh partners every epoch, `--target=same_class_random` of the
    launcher), K=5 mixture VAE, SELBO vs SIWAE; plots the decoder mean at each
    component's mode (C.7) and measures how different the component templates are."""
    from tfvi.data import datasets

    prepared = datasets.prepare(datasets.load("digits"), None, target="same_class_random",
                                seed=0)
    x_test, y_test, labels_test = prepared.eval_splits["test"]
    out = {"epochs": args.style_epochs, "components": 5, "samples": 5, "latent_dim": 2}
    for objective in ("selbo", "siwae"):
        keras.utils.set_random_seed(0)
        model = tfvi.models.VAE(
            tfvi.layers.MixtureEncoder(2, components=5, hidden=(128,) * 4, activation="elu",
                                       covariance="full"),
            tfvi.layers.BernoulliDecoder(64, hidden=(128, 128), activation="elu", skip=True),
            tfvi.priors.MixtureOfGaussians(2, components=20, seed=0), objective=objective,
            samples=5, input_dim=64, seed=0)
        model.compile(keras.optimizers.Adam(1e-3), jit_compile=args.jit)
        t0 = time.time()
        model.fit(prepared.train_dataset(args.batch_size), epochs=args.style_epochs,
                  verbose=0)
        nll = -tfvi.evaluation.iwae_log_likelihood(model, x_test, num_samples=100,
                                                   y=y_test, seed=1).mean()
        m = modes.component_modes(model, x_test, kind="mean")
        alpha, decoded = m["alpha"], m["decoded"]  # [N, K], [N, K, 64]
        # alpha-weighted mean L1 distance between two components' templates (pixels).
        diff = np.abs(decoded[:, :, None] - decoded[:, None, :]).mean(-1)  # [N, K, K]
        spread = float(np.mean(np.einsum("nk,nj,nkj->n", alpha, alpha, diff)))
        eff = float(np.mean(np.exp(-np.sum(alpha * np.log(alpha + 1e-12), axis=1))))
        path = os.path.join(RESULTS, f"mixtures_style_modes_{objective}.png")
        order = np.argsort(labels_test, kind="stable")[::len(labels_test) // 8][:8]
        plots.plot_component_modes(model, x_test[order], (8, 8), targets=x_test[order],
                                   path=path, kind="mean", targets_title="input",
                                   title=f"C.7 style modes (decoder means), "
                                   f"{objective.upper()} K=5")
        out[objective] = {"test_nll_iwae100": float(nll), "template_spread_l1": spread,
                          "effective_components": eff, "plot": os.path.basename(path),
                          "seconds": round(time.time() - t0, 1)}
        print(f"style {objective}: test NLL (IWAE-100, vs a random same-class image) "
              f"{nll:.3f}; alpha-weighted template L1 spread {spread:.4f}; effective "
              f"components exp(H(alpha)) {eff:.2f}; plot {path}", flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="toy,grid,modes")
    parser.add_argument("--epochs", type=int, default=200,
                        help="grid/modes epochs. B.1's 50 MNIST epochs are 30000 steps; 50 "
                             "digits epochs are 1500 and leave every model underfit (train "
                             "accuracy = test accuracy), 200 are 6000")
    parser.add_argument("--ks", default="1,2,5,10")
    parser.add_argument("--ts", default="1,2,5,10")
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--jit", action="store_true", help="XLA (slow to compile "
                        "for these small models on a loaded CPU)")
    parser.add_argument("--predict_samples", type=int, default=1000)
    parser.add_argument("--burn_in_epochs", type=int, default=0)
    parser.add_argument("--seeds", default="0", help="grid seeds, e.g. 0,1")
    parser.add_argument("--baselines", type=int, default=1,
                        help="1: also train the pyramid/bottleneck MLPs per seed")
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--lr_decay_steps", type=int, default=0,
                        help="x0.5 every this many steps (0: halfway, as B.1)")
    parser.add_argument("--grid_out", default="mixtures_grid.json",
                        help="grid JSON name in experiments/results/")
    parser.add_argument("--merge", default="",
                        help="comma-separated grid JSONs in results/ to merge into "
                        "--grid_out (no training)")
    parser.add_argument("--sigma", type=float, default=0.1)
    parser.add_argument("--toy_epochs", type=int, default=60)
    parser.add_argument("--style_epochs", type=int, default=100)
    parser.add_argument("--toy_examples", type=int, default=500)
    parser.add_argument("--toy_components", type=int, default=4)
    parser.add_argument("--toy_samples", type=int, default=5)
    parser.add_argument("--toy_eval_samples", type=int, default=1000)
    args = parser.parse_args()
    args.ks = [int(v) for v in args.ks.split(",")]
    args.ts = [int(v) for v in args.ts.split(",")]
    args.seeds = [int(v) for v in args.seeds.split(",")]
    os.makedirs(RESULTS, exist_ok=True)
    if args.merge:
        merged = merge_grids([os.path.join(RESULTS, p) for p in args.merge.split(",")])
        with open(os.path.join(RESULTS, args.grid_out), "w") as f:
            json.dump(merged, f, indent=1)
        return
    for part, fn in (("toy", run_toy), ("grid", run_grid), ("modes", run_modes),
                     ("style", run_style)):
        if part in args.parts.split(","):
            result = fn(args)
            name = args.grid_out if part == "grid" else f"mixtures_{part}.json"
            with open(os.path.join(RESULTS, name), "w") as f:
                json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
