"""Xu et al.'s Table 1, PixelVAE row, at CPU scale: a PixelVAE with the N(0, I) prior
vs with a jointly trained Real NVP prior, on `mnist5k`, 3 seeds.

    python experiments/pixelvae_table1.py --out runs/pixelvae_table1

Xu et al., "On the Necessity and Effectiveness of Learning the Prior of Variational
Auto-Encoder", Table 1 and App. B.2: PixelVAE = the ResnetVAE encoder and decoder
stack (`tfvi.networks.resnet_vae_*`) with the decoder's features as the conditioning
of a PixelCNN likelihood (`tfvi.layers.PixelCNNDecoder`, three gated residual blocks,
dropout 0.5 in training); latent 40; prior N(0, I) or a Real NVP prior of K = 20
blocks trained jointly. The paper's direction: the learned prior lowers the NLL of
every architecture, and the least for the PixelVAE (its autoregressive decoder
already models much of the image).

CPU scale (fixed before any result was seen): 30 epochs of batch 128 over the 4,000
training digits binarised afresh each epoch, Adam with the paper's learning-rate
thirds (1e-3, 1e-4, 1e-5 for 10 epochs each), KL warm-up over the first 10 epochs,
PixelCNN width `--filters` (32). Test NLL: IWAE-`--nll_samples` (1000) on the first
`--nll_images` (200) test digits (fixed binarisation); also the test ELBO (one sample)
and KL(q(z|x) || p(z)) estimated by log q(z|x) - log p(z) at one sample.
Resumable per (prior, seed) cell.
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
from tfvi import networks  # noqa: E402
from tfvi.evaluation import iwae_log_likelihood  # noqa: E402
from tfvi.training import KLWarmup  # noqa: E402

PRIORS = ("normal", "realnvp")
METRICS = ("nll", "elbo", "kl")
IMAGE = tfvi.data.MNIST5K_SHAPE


def build(prior_name, args, seed):
    keras.utils.set_random_seed(seed)
    encoder = tfvi.layers.GaussianEncoder(args.latent, network=networks.resnet_vae_encoder())
    decoder = tfvi.layers.PixelCNNDecoder(IMAGE, network=networks.resnet_vae_decoder(),
                                          filters=args.filters, num_blocks=args.blocks)
    if prior_name == "normal":
        prior = tfvi.priors.StandardNormal(args.latent)
    else:
        prior = tfvi.priors.RealNVPPrior(args.latent, depth=args.depth, seed=seed)
    return tfvi.models.VAE(encoder, decoder, prior, objective="elbo", samples=1,
                           input_dim=IMAGE, seed=seed)


def evaluate(model, x, args, seed):
    log_px = iwae_log_likelihood(model, x[:args.nll_images], num_samples=args.nll_samples,
                                 seed=seed)
    elbo, kl = [], []
    for start in range(0, len(x), 200):
        terms = model.log_weight_terms(tf.constant(x[start:start + 200]), samples=1,
                                       seed=tf.constant([seed, start], tf.int32))
        elbo.append(np.ravel(terms["log_likelihood"] + terms["log_prior"]
                             - terms["log_posterior"]))
        kl.append(np.ravel(terms["log_posterior"] - terms["log_prior"]))
    return {"nll": float(-np.mean(log_px)), "elbo": float(np.mean(np.concatenate(elbo))),
            "kl": float(np.mean(np.concatenate(kl)))}


def main(argv=None):
    parser = base_parser(__doc__.split("\n\n")[0], "runs/pixelvae_table1")
    parser.add_argument("--priors", nargs="+", default=list(PRIORS), choices=PRIORS)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--latent", type=int, default=40)
    parser.add_argument("--depth", type=int, default=20, help="Real NVP blocks K")
    parser.add_argument("--filters", type=int, default=32, help="PixelCNN width")
    parser.add_argument("--blocks", type=int, default=3, help="gated residual blocks")
    parser.add_argument("--nll_samples", type=int, default=1000)
    parser.add_argument("--nll_images", type=int, default=200)
    args = parser.parse_args(argv)
    arrays = tfvi.data.load_mnist5k()
    if args.smoke:
        args.epochs, args.latent, args.depth, args.filters, args.blocks = 1, 2, 2, 4, 1
        args.nll_samples, args.nll_images, args.batch_size = 4, 8, 32
        arrays = {k: v[:32] for k, v in arrays.items()}
    third = max(1, args.epochs // 3)
    steps = -(-len(arrays["train_probs"]) // args.batch_size)

    def run_cell(cell):
        model = build(cell["prior"], args, cell["seed"])
        schedule = keras.optimizers.schedules.ExponentialDecay(
            1e-3, decay_steps=third * steps, decay_rate=0.1, staircase=True)
        model.compile(optimizer=keras.optimizers.Adam(schedule), jit_compile=False)
        row = fit_cell(model, args.out, cell,
                       binarized_batches(arrays["train_probs"], args.batch_size, cell["seed"]),
                       args.epochs, [KLWarmup(third)])
        row.update(evaluate(model, arrays["test_x"], args, cell["seed"]))
        return row

    cells = [{"prior": p, "seed": s} for s in args.seeds for p in args.priors]
    rows = run_cells(args.out, cells, run_cell, report_only=args.report, only=args.cell,
                     child_command=cell_processes(args, __file__, argv))
    if args.cell is not None:  # one cell's process: the parent writes the table
        return rows
    table = finish(args.out, args, rows, ("prior",), METRICS)
    by_prior = {e["prior"]: e for e in table}
    if {"normal", "realnvp"} <= set(by_prior):
        gain = by_prior["normal"]["nll"][0] - by_prior["realnvp"]["nll"][0]
        print(f"NLL gain of the Real NVP prior: {gain:.3f} nats", flush=True)
    return table


if __name__ == "__main__":
    main()
