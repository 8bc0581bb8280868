"""Livne et al., section 5.2 / Tables 4 and 6 in small: MIM, A-MIM and a VAE with the same
architecture and a VampPrior on the binarised 8x8 digits (scikit-learn's bundled set,
the offline stand-in for MNIST).

    python experiments/mim_digits.py --seeds 0 1 2 --out runs/mim_digits

Every model: Gaussian encoder q(z|x) and Bernoulli decoder p(x|z), two tanh layers
of `--hidden` units, `--latent` latent dimensions, VampPrior p(z) = (1/M) sum_m
q(z|u_m) with M = `--pseudo_inputs` pseudo-inputs initialised from training images
(Livne et al., section 5.2). The models differ only in the loss:
  vae:  -ELBO, with the KL weight warmed up 0 -> 1 over `--warmup` epochs;
  mim:  L_MIM (eq. 8): encoding samples x ~ data, z ~ q(z|x) and decoding samples
        z ~ P(z) = N(0, I), x ~ p(x|z) (binary x: score-function gradient, Appendix
        D.2); q(x) the decoder marginal (Algorithm 2); decoder weight 0 -> 1/2 over
        `--warmup` epochs;
  amim: L_A-MIM (eq. 13), encoding samples only.
Training (section 5): Adam 1e-3, batch 128, training images binarised afresh each
epoch; 10% of the training images (fixed binarisation) are the validation set;
early stopping when the validation loss has not improved for `--warmup` epochs after
the warm-up, restoring the best weights; at most `--epochs`.

Test metrics (297 test images, fixed binarisation):
  nll: -IWAE-S log p(x) with the encoder as proposal (S = `--nll_samples`);
  elbo: the ELBO (one sample, averaged over the test set);
  mi_q: I_q(x; z) of the encoder with x uniform over the test images
    (`tfvi.evaluation.encoder_mutual_information`, at most log 297 = 5.69 nats);
  mi: KSG (k=5) between the 64 binary pixels and one z ~ q(z|x), as the authors'
    code computes it on raw pixels. Degenerate here: with the max-norm every two
    distinct binary images are at distance 1, so the x-neighbour counts carry no
    information and the estimate is ~0 for every model (the paper reports no image
    MI; kept to show it);
  knn5: 5-NN accuracy of the digit label from one z ~ q(z|x) (classifier fitted on
    one sample per training image); knn5_mean: the same on posterior means E[z|x];
  nmi: k-means (10 clusters) normalised mutual information on posterior means.
Writes `results.json` (args, every run, the mean/std table, load average) and prints
the table.
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
from experiments.mim_gmm import reset_to  # noqa: E402
from tfvi import data, layers, models, priors  # noqa: E402
from tfvi.evaluation import (  # noqa: E402
    cluster_scores, encoder_mutual_information, iwae_log_likelihood, knn_accuracy,
    ksg_mutual_information, latent_codes, mean_and_sd)
from tfvi.training import KLWarmup  # noqa: E402

MODELS = ("vae", "mim", "amim")
METRICS = ("nll", "elbo", "mi_q", "mi", "knn5", "knn5_mean", "nmi")


def split_digits(validation_fraction=0.1, seed=0):
    """The bundled digits with a validation split carved from the training images.

    Returns a dict: `train_probs`/`train_labels` (grey levels, binarised per epoch),
    `val_x` (fixed binarisation), `test_x`/`test_labels` (the fixed test binarisation
    of `tfvi.data.load_digits`), and `train_x` (one fixed binarisation of the training
    images, for the k-NN classifier's training codes).
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"`validation_fraction` must be in (0, 1); got {validation_fraction!r}.")
    arrays = data.load_digits()
    n = len(arrays["train_probs"])
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(validation_fraction * n)))
    val, train = order[:n_val], order[n_val:]
    return {
        "train_probs": arrays["train_probs"][train],
        "train_labels": arrays["train_labels"][train],
        "train_x": data.binarize(arrays["train_probs"][train], seed + 2),
        "val_x": data.binarize(arrays["train_probs"][val], seed + 3),
        "test_x": arrays["test_x"],
        "test_labels": arrays["test_labels"],
    }


def build(name, args, seed, train_probs):
    """An uncompiled model `name` (vae, mim or amim) with a VampPrior."""
    keras.utils.set_random_seed(seed)
    hidden = (args.hidden, args.hidden)
    encoder = layers.GaussianEncoder(args.latent, hidden=hidden, activation="tanh")
    decoder = layers.BernoulliDecoder(data.DIGITS_DIM, hidden=hidden, activation="tanh")
    encoder.build((None, data.DIGITS_DIM))
    prior = priors.VampPrior(encoder, num_pseudo_inputs=args.pseudo_inputs,
                             init_from_data=train_probs, seed=seed)
    if name == "vae":
        return models.VAE(encoder, decoder, prior, objective="elbo", samples=1,
                          input_dim=data.DIGITS_DIM, seed=seed)
    if name in ("mim", "amim"):
        return models.MIM(encoder, decoder, prior, symmetric=name == "mim",
                          input_dim=data.DIGITS_DIM, seed=seed)
    raise ValueError(f"Unknown model {name!r}; expected one of {', '.join(MODELS)}.")


def callbacks_for(name, warmup):
    if name == "vae":
        return [KLWarmup(warmup),
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=max(warmup, 1),
                                              start_from_epoch=warmup,
                                              restore_best_weights=True)]
    return models.mim_callbacks(warmup)


def evaluate(model, arrays, args, seed):
    x_test, y_test = arrays["test_x"], arrays["test_labels"]
    x_train, y_train = arrays["train_x"], arrays["train_labels"]
    z_test = latent_codes(model, x_test, sample=True, seed=seed)
    z_train = latent_codes(model, x_train, sample=True, seed=seed + 7919)
    mean_test = latent_codes(model, x_test)
    terms = model.log_weight_terms(tf.constant(x_test), samples=1,
                                   seed=tf.constant([seed, 11], tf.int32))
    log_w = terms["log_likelihood"] + terms["log_prior"] - terms["log_posterior"]
    return {
        "nll": float(-np.mean(iwae_log_likelihood(model, x_test, num_samples=args.nll_samples,
                                                  seed=seed))),
        "elbo": float(np.mean(log_w)),
        "mi_q": encoder_mutual_information(model, x_test, seed=seed),
        "mi": ksg_mutual_information(x_test, z_test, k=5, seed=seed),
        "knn5": knn_accuracy(z_train, y_train, z_test, y_test, k=5),
        "knn5_mean": knn_accuracy(latent_codes(model, x_train), y_train, mean_test, y_test,
                                  k=5),
        "nmi": cluster_scores(mean_test, y_test, seed=seed)["nmi"],
    }


def summarize(rows):
    table = []
    for name in [m for m in MODELS if any(r["model"] == m for r in rows)]:
        sel = [r for r in rows if r["model"] == name]
        entry = {"model": name, "seeds": len(sel),
                 "epochs": float(np.mean([r["epochs"] for r in sel]))}
        for k in METRICS:
            v = np.array([r[k] for r in sel if k in r])
            if v.size:
                entry[k] = list(mean_and_sd(v))
        table.append(entry)
    return table


def format_table(table):
    heads = {"nll": "NLL", "elbo": "ELBO", "mi_q": "MI (I_q)", "mi": "MI (KSG)",
             "knn5": "5-NN (z~q)",
             "knn5_mean": "5-NN (E[z])", "nmi": "k-means NMI"}
    keys = [k for k in METRICS if all(k in e for e in table)]
    lines = [f"{'model':>5} {'seeds':>5} {'epochs':>6} "
             + " ".join(f"{heads[k]:>16}" for k in keys)]
    for e in table:
        cells = " ".join(f"{e[k][0]:8.3f}+-{e[k][1]:6.3f}" for k in keys)
        lines.append(f"{e['model']:>5} {e['seeds']:>5} {e['epochs']:>6.1f} {cells}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                        help="models to compare (same architecture and prior)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="random seeds (initialisation, sampling, data order)")
    parser.add_argument("--latent", type=int, default=8, help="latent dimensions")
    parser.add_argument("--hidden", type=int, default=128,
                        help="units of each of the two tanh layers (encoder and decoder)")
    parser.add_argument("--pseudo_inputs", type=int, default=100,
                        help="VampPrior pseudo-inputs M (initialised from training images)")
    parser.add_argument("--epochs", type=int, default=200, help="maximum epochs")
    parser.add_argument("--warmup", type=int, default=20,
                        help="warm-up epochs (MIM decoder weight / VAE KL weight) = "
                        "early-stopping patience")
    parser.add_argument("--batch_size", type=int, default=128, help="batch size (paper: 128)")
    parser.add_argument("--nll_samples", type=int, default=1000,
                        help="importance samples of the test NLL")
    parser.add_argument("--steps", type=int, default=None,
                        help="if set, train this many steps per epoch (a smoke test)")
    parser.add_argument("--out", default="runs/mim_digits", help="output directory")
    parser.add_argument("--append", action="store_true",
                        help="add this run's rows to an existing --out/results.json "
                        "(e.g. further seeds run in another process)")
    args = parser.parse_args(argv)
    check_counts(parser, args, positive=("latent", "hidden", "pseudo_inputs", "epochs",
                                         "batch_size", "nll_samples", "steps"),
                 non_negative=("warmup",))
    os.makedirs(args.out, exist_ok=True)

    arrays = split_digits()
    rows, compiled = [], {}
    results_path = os.path.join(args.out, "results.json")
    if args.append and os.path.exists(results_path):
        with open(results_path) as f:
            rows = json.load(f)["runs"]
    for seed in args.seeds:
        train_ds = data.digits_dataset("train", batch_size=args.batch_size, seed=seed,
                                       arrays={"train_probs": arrays["train_probs"],
                                               "train_labels": arrays["train_labels"]})
        if args.steps is not None:
            train_ds = train_ds.repeat().take(args.steps)
        val_ds = tf.data.Dataset.from_tensor_slices(arrays["val_x"]).batch(args.batch_size)
        for name in args.models:
            start = time.time()
            fresh = build(name, args, seed, arrays["train_probs"])
            model = compiled.get(name)
            if model is None:
                model = compiled[name] = fresh
                model.compile(keras.optimizers.Adam(1e-3), jit_compile=False)
            else:
                reset_to(model, fresh)
            history = model.fit(train_ds, epochs=args.epochs, validation_data=val_ds,
                                verbose=0, callbacks=callbacks_for(name, args.warmup))
            row = {"model": name, "seed": seed, "epochs": len(history.history["loss"])}
            row.update(evaluate(model, arrays, args, seed))
            row["seconds"] = time.time() - start
            rows.append(row)
            print(json.dumps(row), flush=True)
            table = summarize(rows)  # rewritten after every run: an interrupted
            with open(os.path.join(args.out, "results.json"), "w") as f:  # run keeps it
                json.dump({"args": vars(args), "runs": rows, "table": table,
                           "load_average": os.getloadavg()}, f, indent=1)
    print(format_table(table))
    return table


if __name__ == "__main__":
    main()
