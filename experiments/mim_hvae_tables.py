"""Livne et al.'s Tables 4-6 at CPU scale: VAE, MIM and A-MIM on the two-level
convolutional HVAE with a VampPrior on z2, on `mnist5k`.

    python experiments/mim_hvae_tables.py --out runs/mim_hvae_tables

Livne, Swersky & Fleet, "MIM: Mutual Information Machine", section 5.2 (convHVAE (VP)
of Tomczak & Welling, "VAE with a VampPrior"; built by `tfvi.layers.conv_hvae`, whose
docstring lists the layout and where it departs from the paper). The three models
share the architecture and prior and differ in the loss:
  vae:  -ELBO, KL weight warmed up 0 -> 1 over `--warmup` epochs;
  mim:  L_MIM (Algorithm 1: encoding and decoding samples, decoder marginal q(x)),
        decoder weight warmed up (`tfvi.models.mim_callbacks`);
  amim: L_A-MIM (Algorithm 2: encoding samples only).
Training: Adam `--lr`, batch `--batch_size`, the 4,000 training digits binarised afresh
each epoch, a fixed budget of `--epochs` epochs (no early stopping; fixed before any
result was seen: 30 epochs, warm-up 10).

Test metrics (the 1,000 test digits, fixed binarisation):
  nll: -IWAE-S log p(x) (S = `--nll_samples`, 1000) on the first `--nll_images` (200)
       test digits;
  mi_q: I_q(x; z) of the encoder over the test digits (at most log 1000 = 6.91 nats);
  knn5: 5-NN accuracy of the label from one sampled code z ~ q(z|x) (classifier fitted
       on one sampled code per training digit, one fixed binarisation);
  recon: RMSE between the test digits and the decoder's mean at one z ~ q(z|x).
Resumable: each (model, seed) cell writes `cells/*.json` when done; rerunning skips it.
"""

import os
import sys

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hvae_cells import (base_parser, binarized_batches, cell_processes, finish,  # noqa: E402
                        fit_cell, run_cells)

import tfvi  # noqa: E402
from tfvi.evaluation import (encoder_mutual_information, iwae_log_likelihood,  # noqa: E402
                             knn_accuracy, latent_codes, reconstruction_rmse, reconstructions)
from tfvi.layers.hierarchical import conv_hvae  # noqa: E402
from tfvi.training import KLWarmup  # noqa: E402

MODELS = ("vae", "mim", "amim")
METRICS = ("nll", "mi_q", "knn5", "recon", "epochs")
IMAGE = tfvi.data.MNIST5K_SHAPE


def load(smoke):
    arrays = tfvi.data.load_mnist5k()
    arrays["train_x"] = tfvi.data.binarize(arrays["train_probs"], 2)
    if smoke:
        arrays = {k: v[:64] for k, v in arrays.items()}
    return arrays


def build(name, args, seed, train_probs):
    keras.utils.set_random_seed(seed)
    encoder, decoder, prior = conv_hvae(
        IMAGE, lower_dim=args.lower_dim, upper_dim=args.upper_dim, width=args.width,
        num_pseudo_inputs=args.pseudo_inputs, init_from_data=train_probs, seed=seed)
    if name == "vae":
        return tfvi.models.VAE(encoder, decoder, prior, objective="elbo", samples=1,
                               input_dim=IMAGE, seed=seed)
    return tfvi.models.MIM(encoder=encoder, decoder=decoder, prior=prior,
                           symmetric=name == "mim", input_dim=IMAGE, seed=seed)


def evaluate(model, arrays, args, seed):
    x_test, y_test = arrays["test_x"], arrays["test_labels"]
    z_test = latent_codes(model, x_test, batch_size=200, sample=True, seed=seed)
    z_train = latent_codes(model, arrays["train_x"], batch_size=200, sample=True,
                           seed=seed + 7919)
    nll_x = x_test[:args.nll_images]
    log_px = iwae_log_likelihood(model, nll_x, num_samples=args.nll_samples, seed=seed)
    return {
        "nll": float(-np.mean(log_px)),
        "mi_q": encoder_mutual_information(model, x_test, seed=seed),
        "knn5": knn_accuracy(z_train, arrays["train_labels"], z_test, y_test, k=5),
        "recon": reconstruction_rmse(x_test, reconstructions(model, x_test, seed=seed,
                                                             batch_size=200)),
    }


def parse_args(argv=None):
    """The grid's arguments (`--smoke` shrinks the models and the evaluation)."""
    parser = base_parser(__doc__.split("\n\n")[0], "runs/mim_hvae_tables")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (fixed)")
    parser.add_argument("--warmup", type=int, default=10,
                        help="warm-up epochs (VAE KL weight, MIM decoder weight)")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate "
                        "(Tomczak & Welling's code: 5e-4)")
    parser.add_argument("--width", type=float, default=0.5,
                        help="channel/unit scale of the convHVAE (1.0 = the paper)")
    parser.add_argument("--lower_dim", type=int, default=16, help="size of z1")
    parser.add_argument("--upper_dim", type=int, default=16, help="size of z2")
    parser.add_argument("--pseudo_inputs", type=int, default=100, help="VampPrior M")
    parser.add_argument("--nll_samples", type=int, default=1000)
    parser.add_argument("--nll_images", type=int, default=200)
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs, args.warmup, args.width, args.nll_samples = 1, 1, 0.125, 4
        args.nll_images, args.pseudo_inputs, args.batch_size = 16, 4, 32
        args.lower_dim = args.upper_dim = 2
    return args


def main(argv=None):
    args = parse_args(argv)
    arrays = load(args.smoke)

    def run_cell(cell):
        name, seed = cell["model"], cell["seed"]
        model = build(name, args, seed, arrays["train_probs"])
        model.compile(optimizer=keras.optimizers.Adam(args.lr), jit_compile=False)
        callbacks = ([KLWarmup(args.warmup)] if name == "vae"
                     else tfvi.models.mim_callbacks(args.warmup))
        callbacks = [c for c in callbacks
                     if not isinstance(c, keras.callbacks.EarlyStopping)]
        row = fit_cell(model, args.out, cell,
                       binarized_batches(arrays["train_probs"], args.batch_size, seed),
                       args.epochs, callbacks)
        row.update(evaluate(model, arrays, args, seed))
        return row

    cells = [{"model": m, "seed": s} for s in args.seeds for m in args.models]
    rows = run_cells(args.out, cells, run_cell, report_only=args.report, only=args.cell,
                     child_command=cell_processes(args, __file__, argv))
    if args.cell is not None:  # one cell's process: the parent writes the table
        return rows
    return finish(args.out, args, rows, ("model",), METRICS)


if __name__ == "__main__":
    main()
