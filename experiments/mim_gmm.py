"""Livne et al., section 5.1 (Fig. 1 and Fig. 2): MIM versus a VAE on 2-D data from a
mixture of five isotropic Gaussians (std 0.25), 2-D latent, encoder and decoder with
two tanh layers of 5, 20 or 500 units, several seeds.

    python experiments/mim_gmm.py --hidden 5 20 500 --seeds 0 1 2 3 4 --out runs/mim_gmm

(or one process per width, `--hidden 20 --out runs/mim_gmm/h20`, ..., then
`--combine runs/mim_gmm/h5 runs/mim_gmm/h20 runs/mim_gmm/h500 --out runs/mim_gmm`).

Writes `results.json` (every run and the mean/std table), `figure1.png` (data
contours with reconstructions, posterior ellipses with the prior circle; first seed)
and `figure2.png` (MI, NLL, RMSE, 5-NN accuracy versus hidden units), and prints the
table.

The setting follows the paper and, where the paper is silent, the authors' code
(seraphlabs-ca/MIM, `src/vae-as-mim-dataset.py` with `--dataset toy4`, and
`src/auxiliary.py`):
  data (`--layout paper`): five equally weighted components, one at the origin and
    four on the unit circle at 0, 90, 180, 270 degrees, std 0.25 (`GMMDist.factory(4)`:
    neighbouring means are 4 std apart, so the components overlap and even the Bayes
    classifier errs on ~5% of the points). `--layout circle` is tfvi's `data.gmm2d`
    (five means on a circle of radius 2, well separated: every 5-NN accuracy is 1).
    Each seed draws its own 10,000 training, 2,000 validation and `--test_size` test
    points.
  training (section 5): Adam, batch 128, learning rate 1e-3 with the Vaswani et al.
    ("Noam") warm-up the paper cites, stepped per epoch as in the authors' code:
    lr(e) = 1e-3 min(e / W, sqrt(W / e)) for epoch e = 1, 2, ..., W = `--warmup` = 3;
    MIM raises the decoder-sample weight 0 -> 1/2 over the same W epochs; both models
    stop when the validation loss (MIM: eq. 8; VAE: -ELBO) has not improved for W
    epochs after the warm-up, and restore the best weights; at most `--epochs` (50).
Metrics on the test set:
  MI: KSG (k=5) between x and one z ~ q(z|x), on up to `--mi_points` pairs;
  NLL: -IWAE-S log-likelihood (S = --nll_samples) under the encoder, on the first
    `--nll_points` test points;
  RMSE: sqrt(mean (x - x')^2), x' the mean of p(x|z) at one z ~ q(z|x);
  5-NN: accuracy predicting the GMM component of each test point from one sample
    z ~ q(z|x), the classifier fitted on one sample per training point (the authors'
    `test_model`); `knn5_mean` does the same on posterior means E[z|x].

Speed: tracing a Keras `train_step` (TFP distributions in the graph) costs ~20-30 s
per model, more than training one (~1 s per epoch). The script traces one model per
(model, width) and re-initialises its weights, optimizer state and sampling seed for
each further seed instead of building and compiling a new model.
"""

import argparse
import json
import os
import sys
import time

if __package__ in (None, ""):  # run as `python experiments/X.py`: import from the repository
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from experiments.common import check_counts  # noqa: E402
from tfvi import data, layers, models  # noqa: E402
from tfvi.evaluation import (  # noqa: E402
    iwae_log_likelihood, knn_accuracy, ksg_mutual_information, latent_codes,
    mean_and_sd, reconstruction_rmse, reconstructions)
from tfvi.plots import mim as mim_plots  # noqa: E402

MODELS = ("mim", "vae")
METRICS = ("mi", "nll", "rmse", "knn5", "knn5_mean")
# "paper": the authors' toy4 (GMMDist.factory(4)); "circle": tfvi.data.gmm2d's default.
LAYOUTS = data.GMM2D_LAYOUTS
PLOT_EXTENT = {"paper": 2.0, "circle": 3.2}


def sample_gmm(centers, num_examples, seed):
    """`(x [n, 2] float32, labels [n] int32)`: equally weighted isotropic components
    with means `centers` `[C, 2]` and standard deviation 0.25 (`tfvi.data.gmm2d`)."""
    return data.gmm2d(num_examples, seed, layout=centers)


def noam_learning_rate(epoch, warmup, base=1e-3):
    """lr for the 0-based Keras `epoch`: base * min(e / W, sqrt(W / e)), e = epoch + 1
    (the authors' NoamLRScheduler, stepped once per epoch)."""
    e = epoch + 1
    return base * min(e / warmup, (warmup / e) ** 0.5)


def build(name, hidden, seed):
    keras.utils.set_random_seed(seed)
    encoder = layers.GaussianEncoder(2, hidden=(hidden, hidden), activation="tanh")
    decoder = layers.GaussianDecoder(2, hidden=(hidden, hidden), activation="tanh",
                                     scale="per_dimension")
    if name in ("mim", "amim"):
        return models.MIM(encoder, decoder, symmetric=name == "mim", input_dim=2, seed=seed)
    if name == "vae":
        return models.VAE(encoder, decoder, objective="elbo", samples=1, input_dim=2, seed=seed)
    raise ValueError(f"Unknown model {name!r}; expected 'mim', 'amim' or 'vae'.")


def reset_to(model, fresh):
    """Give an already compiled (and traced) `model` the state of `fresh`, an
    identically built but uncompiled model, as `compile` would leave it: `fresh`'s
    weights and sampling seed, zero Adam moments and step count. Keeps the traced
    step functions (tracing costs more than training these small models)."""
    model.set_weights(fresh.get_weights())
    model.seed_generator.state.assign(fresh.seed_generator.state)
    for v in model.optimizer.variables:
        if "learning_rate" not in v.path:
            v.assign(tf.zeros(v.shape, v.dtype))
    return model


def reinitialize(model, name, hidden, seed):
    """`model` re-initialised as `build(name, hidden, seed)` + `compile` would be."""
    return reset_to(model, build(name, hidden, seed))


def callbacks_for(name, warmup, lr_schedule):
    cbs = []
    if lr_schedule == "noam":
        cbs.append(keras.callbacks.LearningRateScheduler(
            lambda epoch: noam_learning_rate(epoch, max(warmup, 1))))
    if name in ("mim", "amim"):
        cbs += models.mim_callbacks(warmup)
    else:
        cbs.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=max(warmup, 1), start_from_epoch=warmup,
            restore_best_weights=True))
    return cbs


def train(model, name, x_train, x_val, epochs, warmup, lr_schedule):
    history = model.fit(x_train, batch_size=128, epochs=epochs, verbose=0, shuffle=True,
                        validation_data=(x_val,),
                        callbacks=callbacks_for(name, warmup, lr_schedule))
    return len(history.history["loss"])


def evaluate(model, x_train, y_train, x_test, y_test, args, seed):
    z_test = latent_codes(model, x_test, sample=True, seed=seed)
    z_train = latent_codes(model, x_train, sample=True, seed=seed + 7919)
    x_nll = x_test[:args.nll_points]
    return {
        "mi": ksg_mutual_information(x_test, z_test, k=5, max_points=args.mi_points,
                                     seed=seed),
        "nll": float(-np.mean(iwae_log_likelihood(model, x_nll, num_samples=args.nll_samples,
                                                  seed=seed))),
        "rmse": reconstruction_rmse(x_test, reconstructions(model, x_test, seed)),
        "knn5": knn_accuracy(z_train, y_train, z_test, y_test, k=5),
        "knn5_mean": knn_accuracy(latent_codes(model, x_train), y_train,
                                  latent_codes(model, x_test), y_test, k=5),
    }


def bayes_accuracy(centers, x, y):
    """Accuracy of the Bayes classifier (nearest mean: equal weights and variances)."""
    d = np.sum((x[:, None, :] - centers[None]) ** 2, axis=-1)
    return float(np.mean(np.argmin(d, axis=1) == y))


def summarize(rows):
    table = []
    for hidden in sorted({r["hidden"] for r in rows}):
        for name in sorted({r["model"] for r in rows}):
            sel = [r for r in rows if r["hidden"] == hidden and r["model"] == name]
            if sel:
                entry = {"hidden": hidden, "model": name, "seeds": len(sel),
                         "epochs": float(np.mean([r["epochs"] for r in sel]))}
                for k in METRICS:
                    if all(k in r for r in sel):
                        v = np.array([r[k] for r in sel])
                        entry[k] = list(mean_and_sd(v))
                table.append(entry)
    return table


def print_table(table):
    keys = [k for k in METRICS if all(k in e for e in table)]
    heads = {"mi": "MI", "nll": "NLL", "rmse": "RMSE", "knn5": "5-NN (z~q)",
             "knn5_mean": "5-NN (E[z])"}
    print(f"{'hidden':>6} {'model':>5} {'seeds':>5} {'epochs':>6} "
          + " ".join(f"{heads[k]:>15}" for k in keys))
    for e in table:
        cells = " ".join(f"{e[k][0]:7.3f}+-{e[k][1]:5.3f}" for k in keys)
        print(f"{e['hidden']:>6} {e['model']:>5} {e['seeds']:>5} {e['epochs']:>6.1f} {cells}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[5, 20, 500],
                        help="hidden units per layer (two tanh layers), one run each")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                        help="random seeds (data, model init, sampling, data order)")
    parser.add_argument("--models", nargs="+", default=list(MODELS),
                        choices=["mim", "amim", "vae"], help="models to compare")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="paper",
                        help="GMM means: 'paper' (origin + 4 on the unit circle, the "
                        "authors' toy4) or 'circle' (tfvi.data.gmm2d, radius 2)")
    parser.add_argument("--train_size", type=int, default=10000,
                        help="training points per epoch (paper: 10,000)")
    parser.add_argument("--test_size", type=int, default=10000,
                        help="test points (MI, RMSE, 5-NN); the authors use 10,000")
    parser.add_argument("--epochs", type=int, default=50,
                        help="maximum epochs (the authors' default: 50)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="warm-up epochs (learning rate and MIM decoder weight) = "
                        "early-stopping patience (paper: 3)")
    parser.add_argument("--lr_schedule", choices=["noam", "constant"], default="noam",
                        help="'noam': lr 1e-3 min(e/W, sqrt(W/e)) per epoch (authors' "
                        "code); 'constant': 1e-3")
    parser.add_argument("--nll_samples", type=int, default=500,
                        help="importance samples for the test NLL")
    parser.add_argument("--nll_points", type=int, default=1000,
                        help="test points the NLL is averaged over")
    parser.add_argument("--mi_points", type=int, default=10000,
                        help="at most this many (x, z) pairs for the KSG estimate")
    parser.add_argument("--jit_compile", action="store_true",
                        help="XLA-compile the steps (faster steps, slower first epoch)")
    parser.add_argument("--out", default="runs/mim_gmm", help="output directory")
    parser.add_argument("--combine", nargs="+", default=None, metavar="DIR",
                        help="do not train: merge the runs.jsonl of earlier --out "
                        "directories (e.g. one per --hidden run in parallel) into --out")
    args = parser.parse_args(argv)
    check_counts(parser, args, positive=("train_size", "test_size", "epochs", "nll_samples",
                                         "nll_points", "mi_points"),
                 non_negative=("warmup",))
    if args.combine:
        rows, sources = [], []
        for directory in args.combine:
            with open(os.path.join(directory, "runs.jsonl")) as f:
                rows += [json.loads(line) for line in f if line.strip()]
            results = os.path.join(directory, "results.json")
            if os.path.exists(results):
                with open(results) as f:
                    sources.append({"dir": directory, "args": json.load(f).get("args")})
        os.makedirs(args.out, exist_ok=True)
        table = summarize(rows)
        print_table(table)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"combined": sources or args.combine, "runs": rows, "table": table},
                      f, indent=1)
        mim_plots.figure2(rows, os.path.join(args.out, "figure2.png"),
                          metrics=("mi", "nll", "rmse", "knn5", "knn5_mean"))
        return table
    os.makedirs(args.out, exist_ok=True)
    if os.path.exists(os.path.join(args.out, "runs.jsonl")):
        os.remove(os.path.join(args.out, "runs.jsonl"))

    centers = LAYOUTS[args.layout]
    datasets = {}
    for seed in args.seeds:
        base = 1000 * (seed + 1)
        datasets[seed] = (sample_gmm(centers, args.train_size, base),
                          sample_gmm(centers, 2000, base + 1),
                          sample_gmm(centers, args.test_size, base + 2))
    bayes = [bayes_accuracy(centers, *datasets[s][2]) for s in args.seeds]
    bayes = mean_and_sd(bayes)
    print(f"Bayes classifier accuracy on the test sets: {bayes[0]:.4f} +- {bayes[1]:.4f}",
          flush=True)
    rows, fig1_models, compiled = [], {}, {}
    # Seeds outermost: every (model, width) cell gets its first seeds early, so an
    # interrupted run still fills the whole table (runs.jsonl is appended per run).
    for seed in args.seeds:
        (x_train, y_train), (x_val, _), (x_test, y_test) = datasets[seed]
        for hidden in args.hidden:
            for name in args.models:
                start = time.time()
                model = compiled.get((name, hidden))
                if model is None:
                    model = compiled[(name, hidden)] = build(name, hidden, seed)
                    model.compile(keras.optimizers.Adam(1e-3), jit_compile=args.jit_compile)
                else:
                    reinitialize(model, name, hidden, seed)
                epochs = train(model, name, x_train, x_val, args.epochs, args.warmup,
                               args.lr_schedule)
                row = {"model": name, "hidden": hidden, "seed": seed, "epochs": epochs}
                row.update(evaluate(model, x_train, y_train, x_test, y_test, args, seed))
                row["seconds"] = time.time() - start
                rows.append(row)
                print(json.dumps(row), flush=True)
                with open(os.path.join(args.out, "runs.jsonl"), "a") as f:
                    f.write(json.dumps(row) + "\n")
                if seed == args.seeds[0]:
                    # `model` is re-used for the next seeds: keep an untraced copy.
                    frozen = build(name, hidden, seed)
                    frozen.set_weights(model.get_weights())
                    fig1_models[f"{name.upper()} h={hidden}"] = frozen
    table = summarize(rows)
    print_table(table)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"args": vars(args), "bayes_accuracy": list(bayes),
                   "runs": rows, "table": table}, f, indent=1)
    mim_plots.figure1(fig1_models, datasets[args.seeds[0]][2][0][:500],
                      os.path.join(args.out, "figure1.png"), centers=centers,
                      extent=PLOT_EXTENT[args.layout])
    mim_plots.figure2(rows, os.path.join(args.out, "figure2.png"),
                      metrics=("mi", "nll", "rmse", "knn5", "knn5_mean"))
    return table


if __name__ == "__main__":
    main()
