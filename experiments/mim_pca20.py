"""Livne et al.'s Fig. 3 at CPU scale: MIM vs VAE on images projected onto their top 20
principal components, for latent dimensions 2..20.

    python experiments/mim_pca20.py --out runs/mim_pca20
    python experiments/mim_pca20.py --dataset fashion_mnist --data_dir ~/tensorflow_datasets

Livne, Swersky & Fleet, "MIM: Mutual Information Machine", section 5.2, "low-dimensional
image data": 784-D Fashion-MNIST projected onto a 20-D linear subspace (78.5% of the
variance), where the KSG mutual-information estimator still works. Here `mnist5k` (the
offline default; `--dataset fashion_mnist` reads TFDS data where it is installed),
projected by `tfvi.data.projection.apply_view("pca20", ...)`, fitted on the training
split only; the variance kept is in results.json.

Both models: Gaussian encoder and Gaussian decoder (learned shared scale), two tanh
layers of `--hidden` units, a VampPrior with `--pseudo_inputs` pseudo-inputs from
training codes; VAE: -ELBO with the KL weight warmed up over `--warmup` epochs; MIM:
L_MIM (Algorithm 1) with the decoder-weight warm-up. Adam 1e-3, batch 128 (section 5),
a fixed budget of `--epochs` (100, fixed before any result was seen).

`--guards=authors` is a second setting, added after the first seed's MIM codes
collapsed (KSG MI 0.04-0.08 nats against the VAE's 2-3): the two guards of the MIM
authors' code that `experiments/mim_collapse.py` found necessary on digits, the
encoder's log-variance clamp at -6 (`min_scale=exp(-3)`, for both models) and, for
MIM, the weight of log p(z) warmed up from 0 over `--warmup` epochs. Both settings
are reported; the default (`none`) is the one fixed before any result.

Test metrics (the test split): ksg_mi, KSG (k = 5) between the 20-D test codes x and
one z ~ q(z|x), as Livne et al. compute it; ksg_mi_std, the same on x and z rescaled to
unit variance per dimension (the raw estimate falls as codes shrink; cells run before
this column existed show n/a); nll, -IWAE-`--nll_samples` log p(x) in nats of the 20-D view; recon,
RMSE of the decoder mean at one z ~ q(z|x); knn5, 5-NN accuracy from sampled codes.
Cells: model x latent dimension (`--latents`, default 2 5 10 20) x seed; mean +- std
over seeds as in the figure. Resumable per cell.
"""

import os
import sys

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hvae_cells import base_parser, cell_processes, finish, run_cells  # noqa: E402

import tfvi  # noqa: E402
from tfvi.data.projection import apply_view  # noqa: E402
from tfvi.evaluation import (iwae_log_likelihood, knn_accuracy,  # noqa: E402
                             ksg_mutual_information, latent_codes, reconstruction_rmse,
                             reconstructions)
from tfvi.training import KLWarmup  # noqa: E402

MODELS = ("vae", "mim")
AUTHORS_MIN_SCALE = float(np.exp(-3.0))  # the MIM authors' log-variance clamp at -6
METRICS = ("ksg_mi", "ksg_mi_std", "nll", "recon", "knn5")


def load(dataset, data_dir, view):
    """`train_probs`/`test_probs` as `view` codes `[N, K]`, labels, the variance kept."""
    if dataset == "mnist5k":
        arrays = tfvi.data.load_mnist5k()
    else:
        from tfvi.data.datasets import load as load_bundle
        bundle = load_bundle(dataset, data_dir=data_dir)
        (x_train, y_train), (x_test, y_test) = bundle.splits["train"], bundle.splits["test"]
        arrays = {"train_probs": x_train, "train_labels": y_train,
                  "test_probs": x_test, "test_labels": y_test}
    arrays = {k: v for k, v in arrays.items() if k != "test_x"}
    projected, projection = apply_view(view, arrays)
    return projected, projection.variance_fraction


def build(name, latent, args, seed, train):
    keras.utils.set_random_seed(seed)
    hidden = (args.hidden, args.hidden)
    dim = train.shape[1]
    encoder = tfvi.layers.GaussianEncoder(
        latent, hidden=hidden, activation="tanh",
        min_scale=AUTHORS_MIN_SCALE if args.guards == "authors" else None)
    encoder.build((None, dim))
    decoder = tfvi.layers.GaussianDecoder(dim, hidden=hidden, activation="tanh")
    prior = tfvi.priors.VampPrior(encoder, num_pseudo_inputs=args.pseudo_inputs,
                                  init_from_data=train, seed=seed)
    if name == "vae":
        return tfvi.models.VAE(encoder, decoder, prior, objective="elbo", samples=1,
                               input_dim=dim, seed=seed)
    return tfvi.models.MIM(encoder=encoder, decoder=decoder, prior=prior, symmetric=True,
                           input_dim=dim, seed=seed)


def main(argv=None):
    parser = base_parser(__doc__.split("\n\n")[0], "runs/mim_pca20")
    parser.add_argument("--dataset", default="mnist5k",
                        choices=("mnist5k", "fashion_mnist", "mnist"),
                        help="mnist5k (offline) or a TFDS image set (Fashion-MNIST: the "
                        "paper's)")
    parser.add_argument("--data_dir", default=None, help="TFDS data directory")
    parser.add_argument("--view", default="pca20", help="the projection, 'pcaK'")
    parser.add_argument("--latents", type=int, nargs="+", default=[2, 5, 10, 20])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--pseudo_inputs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--nll_samples", type=int, default=1000)
    parser.add_argument("--guards", default="none", choices=("none", "authors"),
                        help="'authors': the MIM authors' scale floor (both models) and "
                        "log p(z) warm-up (MIM); see the module docstring")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs, args.warmup, args.hidden, args.nll_samples = 1, 1, 8, 4
        args.pseudo_inputs = 4
    arrays, kept = load(args.dataset, args.data_dir, args.view)
    if args.smoke:
        arrays = {k: v[:200] for k, v in arrays.items()}
    print(f"{args.view} of {args.dataset}: {kept:.1%} of the training variance kept",
          flush=True)
    train, test = arrays["train_probs"], arrays["test_probs"]

    def run_cell(cell):
        name, latent, seed = cell["model"], cell["latent"], cell["seed"]
        model = build(name, latent, args, seed, train)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
        callbacks = ([KLWarmup(args.warmup)] if name == "vae"
                     else [c for c in tfvi.models.mim_callbacks(args.warmup)
                           if not isinstance(c, keras.callbacks.EarlyStopping)])
        if name == "mim" and args.guards == "authors":
            callbacks.append(KLWarmup(args.warmup, start=0.0))  # MIM's beta weighs log p(z)
        data = tf.data.Dataset.from_tensor_slices(train).shuffle(
            len(train), seed=seed).batch(args.batch_size)
        model.fit(data, epochs=args.epochs, verbose=0, callbacks=callbacks)
        z_test = latent_codes(model, test, sample=True, seed=seed)
        z_train = latent_codes(model, train, sample=True, seed=seed + 7919)
        log_px = iwae_log_likelihood(model, test, num_samples=args.nll_samples, seed=seed)
        return {
            "ksg_mi": ksg_mutual_information(test, z_test, k=5, seed=seed),
            "ksg_mi_std": ksg_mutual_information(test, z_test, k=5, seed=seed,
                                                 standardize=True),
            "nll": float(-np.mean(log_px)),
            "recon": reconstruction_rmse(test, reconstructions(model, test, seed=seed)),
            "knn5": knn_accuracy(z_train, arrays["train_labels"], z_test,
                                 arrays["test_labels"], k=5),
            "variance_kept": kept,
        }

    guards = {} if args.guards == "none" else {"guards": args.guards}
    cells = [{"model": m, "latent": d, "seed": s, **guards}
             for s in args.seeds for d in args.latents for m in args.models]
    rows = run_cells(args.out, cells, run_cell, report_only=args.report, only=args.cell,
                     child_command=cell_processes(args, __file__, argv))
    if args.cell is not None:  # one cell's process: the parent writes the table
        return rows
    return finish(args.out, args, rows, ("model", "latent"), METRICS)


if __name__ == "__main__":
    main()
