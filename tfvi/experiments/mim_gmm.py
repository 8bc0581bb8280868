"""Seed 003, section 5.1: MIM versus a VAE on 2-D data from a mixture of five
isotropic Gaussians (std 0.25), 2-D latent, encoder and decoder with two tanh
layers of 5, 20 or 500 units, several seeds.

    python -m tfvi.experiments.mim_gmm --hidden 5 20 500 --seeds 0 1 2 --out runs/mim_gmm

(or one process per width, `--hidden 20 --out runs/mim_gmm/h20`, ..., then
`--combine runs/mim_gmm/h5 runs/mim_gmm/h20 runs/mim_gmm/h500 --out runs/mim_gmm`).

Writes `results.json` (every run and the mean/std table), `figure1.png` (data
contours with reconstructions, posterior ellipses with the prior circle; seed 0) and
`figure2.png` (MI, NLL, RMSE, 5-NN accuracy versus hidden units), and prints the
table. Metrics on the test set:
  MI: KSG (k=5) between x and one z ~ q(z|x);
  NLL: -IWAE-S log-likelihood (S = --nll_samples) under the encoder;
  RMSE: reconstruction x -> z ~ q(z|x) -> mean of p(x|z);
  5-NN: accuracy predicting the GMM component from posterior means (k-NN fitted on
  the training codes).
Training (section 5): Adam 1e-3, batch 128; MIM with the decoder-weight warm-up over
--warmup epochs and early stopping on the validation MIM loss with the same patience;
the VAE (ELBO) with early stopping on its validation loss, same patience and cap.
"""

import argparse
import json
import os
import time

import keras
import numpy as np

from tfvi import data, layers, mim_plots, models
from tfvi.evaluation import (iwae_log_likelihood, knn_accuracy, ksg_mutual_information,
                             latent_codes, reconstruction_rmse)

MODELS = ("mim", "vae")


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


def train(model, name, x_train, x_val, epochs, warmup, jit_compile):
    model.compile(keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    if name in ("mim", "amim"):
        callbacks = models.mim_callbacks(warmup)
    else:
        callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=max(warmup, 1),
                                                   restore_best_weights=True)]
    history = model.fit(x_train, batch_size=128, epochs=epochs, verbose=0, shuffle=True,
                        validation_data=(x_val,), callbacks=callbacks)
    return len(history.history["loss"])


def evaluate(model, x_train, y_train, x_test, y_test, nll_samples, seed):
    z_sample = latent_codes(model, x_test, sample=True, seed=seed)
    return {
        "mi": ksg_mutual_information(x_test, z_sample, k=5, max_points=3000, seed=seed),
        "nll": float(-np.mean(iwae_log_likelihood(model, x_test, num_samples=nll_samples,
                                                  seed=seed))),
        "rmse": reconstruction_rmse(x_test, mim_plots.reconstruct(model, x_test, seed)),
        "knn5": knn_accuracy(latent_codes(model, x_train), y_train,
                             latent_codes(model, x_test), y_test, k=5),
    }


def summarize(rows):
    table = []
    keys = ("mi", "nll", "rmse", "knn5")
    for hidden in sorted({r["hidden"] for r in rows}):
        for name in sorted({r["model"] for r in rows}):
            sel = [r for r in rows if r["hidden"] == hidden and r["model"] == name]
            if sel:
                entry = {"hidden": hidden, "model": name, "seeds": len(sel)}
                for k in keys:
                    v = np.array([r[k] for r in sel])
                    entry[k] = [float(v.mean()), float(v.std())]
                table.append(entry)
    return table


def print_table(table):
    print(f"{'hidden':>6} {'model':>5} {'seeds':>5} {'MI':>15} {'NLL':>15} "
          f"{'RMSE':>15} {'5-NN acc':>15}")
    for e in table:
        cells = " ".join(f"{e[k][0]:7.3f}+-{e[k][1]:5.3f}" for k in ("mi", "nll", "rmse", "knn5"))
        print(f"{e['hidden']:>6} {e['model']:>5} {e['seeds']:>5} {cells}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[5, 20, 500],
                        help="hidden units per layer (two tanh layers), one run each")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="random seeds (model init, sampling, data order)")
    parser.add_argument("--models", nargs="+", default=list(MODELS),
                        choices=["mim", "amim", "vae"], help="models to compare")
    parser.add_argument("--train_size", type=int, default=10000,
                        help="training points per epoch (paper: 10,000)")
    parser.add_argument("--test_size", type=int, default=2000, help="test points")
    parser.add_argument("--epochs", type=int, default=60, help="maximum epochs")
    parser.add_argument("--warmup", type=int, default=3,
                        help="decoder-weight warm-up epochs = early-stopping patience (paper: 3)")
    parser.add_argument("--nll_samples", type=int, default=500,
                        help="importance samples for the test NLL")
    parser.add_argument("--jit_compile", action="store_true",
                        help="XLA-compile the steps (faster steps, slower first epoch)")
    parser.add_argument("--out", default="runs/mim_gmm", help="output directory")
    parser.add_argument("--combine", nargs="+", default=None, metavar="DIR",
                        help="do not train: merge the runs.jsonl of earlier --out "
                        "directories (e.g. one per --hidden run in parallel) into --out")
    args = parser.parse_args(argv)
    if args.combine:
        rows = []
        for directory in args.combine:
            with open(os.path.join(directory, "runs.jsonl")) as f:
                rows += [json.loads(line) for line in f if line.strip()]
        os.makedirs(args.out, exist_ok=True)
        table = summarize(rows)
        print_table(table)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"combined": args.combine, "runs": rows, "table": table}, f, indent=1)
        mim_plots.figure2(rows, os.path.join(args.out, "figure2.png"))
        return table
    os.makedirs(args.out, exist_ok=True)
    if os.path.exists(os.path.join(args.out, "runs.jsonl")):
        os.remove(os.path.join(args.out, "runs.jsonl"))

    x_train, y_train = data.gmm2d(args.train_size, seed=100)
    x_val, _ = data.gmm2d(2000, seed=101)
    x_test, y_test = data.gmm2d(args.test_size, seed=102)
    rows, fig1_models = [], {}
    for hidden in args.hidden:
        for seed in args.seeds:
            for name in args.models:
                start = time.time()
                model = build(name, hidden, seed)
                epochs = train(model, name, x_train, x_val, args.epochs, args.warmup,
                               args.jit_compile)
                row = {"model": name, "hidden": hidden, "seed": seed, "epochs": epochs}
                row.update(evaluate(model, x_train, y_train, x_test, y_test,
                                    args.nll_samples, seed))
                row["seconds"] = time.time() - start
                rows.append(row)
                print(json.dumps(row), flush=True)
                with open(os.path.join(args.out, "runs.jsonl"), "a") as f:
                    f.write(json.dumps(row) + "\n")
                if seed == args.seeds[0]:
                    fig1_models[f"{name.upper()} h={hidden}"] = model
    table = summarize(rows)
    print_table(table)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"args": vars(args), "runs": rows, "table": table}, f, indent=1)
    mim_plots.figure1(fig1_models, x_test[:500], os.path.join(args.out, "figure1.png"))
    mim_plots.figure2(rows, os.path.join(args.out, "figure2.png"))
    return table


if __name__ == "__main__":
    main()
