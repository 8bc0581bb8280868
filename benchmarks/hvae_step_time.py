"""Training-step time of the PixelVAE and of Livne et al.'s convHVAE against Xu et al.'s
ResnetVAE, and sampling time per image, side by side, on 28x28 binary digits.

Models (batch `--batch`, ELBO with one sample, Adam):
  resnet_vae:  Xu et al.'s ResnetVAE (latent 40, Bernoulli head);
  pixel_vae:   the same encoder and decoder stack as the conditioning of a PixelCNN
               likelihood (three gated residual blocks of 32 filters);
  conv_hvae:   `tfvi.layers.conv_hvae` (VampPrior on z2, width 0.5, d1 = d2 = 16);
  pixel_hvae:  its PixelCNN variant.
Per model: wall and process CPU ms per training step (median of `--steps` steps after
a compiled warm-up; CPU time is the steadier figure on a shared machine), and wall/CPU
ms per sampled image from z ~ p(z) (`--samples` images in one call, after a warm-up
call; the PixelCNN draws its 784 pixels in one compiled `tf.while_loop`).

    python benchmarks/hvae_step_time.py [--steps 10] [--batch 100] [--xla]

Writes `benchmarks/results/hvae_step_time.json` and prints the table.
"""

import argparse
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

import tfvi
from tfvi import networks
from tfvi.layers.hierarchical import conv_hvae

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report_io import finish  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
IMAGE = (28, 28, 1)
MODELS = ("resnet_vae", "pixel_vae", "conv_hvae", "pixel_hvae")


def build(name, x):
    keras.utils.set_random_seed(0)
    if name.endswith("hvae"):
        parts = conv_hvae(IMAGE, init_from_data=x, seed=0,
                          likelihood="pixelcnn" if name == "pixel_hvae" else "bernoulli")
    else:
        encoder = tfvi.layers.GaussianEncoder(40, network=networks.resnet_vae_encoder())
        if name == "pixel_vae":
            decoder = tfvi.layers.PixelCNNDecoder(IMAGE, network=networks.resnet_vae_decoder())
        else:
            decoder = tfvi.layers.BernoulliDecoder(IMAGE, network=networks.resnet_vae_decoder())
        parts = (encoder, decoder, tfvi.priors.StandardNormal(40))
    return tfvi.models.VAE(*parts, objective="elbo", samples=1, input_dim=IMAGE, seed=0)


def timed(fn, repeats):
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return float(np.median(walls)), float(np.median(cpus))


def measure(name, x, args):
    model = build(name, x)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=args.xla)
    batch = tf.constant(x[:args.batch])
    model.train_on_batch(batch)  # trace and compile
    step_wall, step_cpu = timed(lambda: model.train_on_batch(batch), args.steps)

    @tf.function(jit_compile=args.xla)
    def sample(seed):
        z = model.prior().sample(args.samples, seed=seed)
        return model.decoder(z).sample(seed=seed)

    sample(tf.constant([0, 1]))  # trace and compile
    sample_wall, sample_cpu = timed(lambda: sample(tf.constant([2, 3])).numpy(), 2)
    return {"model": name, "params": int(model.count_params()),
            "step_wall_ms": 1e3 * step_wall, "step_cpu_ms": 1e3 * step_cpu,
            "sample_wall_ms_per_image": 1e3 * sample_wall / args.samples,
            "sample_cpu_ms_per_image": 1e3 * sample_cpu / args.samples}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--batch", type=int, default=100, help="training batch size")
    parser.add_argument("--samples", type=int, default=16, help="images per sampling call")
    parser.add_argument("--xla", action="store_true", help="jit_compile=True (XLA)")
    parser.add_argument("--out", default=os.path.join(RESULTS, "hvae_step_time.json"))
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    wall, cpu = time.time(), time.process_time()
    x = tfvi.data.binarize(tfvi.data.load_mnist5k()["train_probs"][:max(args.batch, 100)], 0)
    rows = []
    print(f"{'model':>11} {'params':>8} {'step wall ms':>13} {'step cpu ms':>12} "
          f"{'sample wall ms/img':>19} {'sample cpu ms/img':>18}")
    for name in args.models:
        row = measure(name, x, args)
        rows.append(row)
        print(f"{name:>11} {row['params']:>8} {row['step_wall_ms']:>13.0f} "
              f"{row['step_cpu_ms']:>12.0f} {row['sample_wall_ms_per_image']:>19.1f} "
              f"{row['sample_cpu_ms_per_image']:>18.1f}", flush=True)
    report = {"args": vars(args), "rows": rows, "wall_s": time.time() - wall,
              "cpu_s": time.process_time() - cpu, "load_avg_before": list(load_before),
              "load_avg_after": list(os.getloadavg())}
    finish(report, args.out, load_before)
    return rows


if __name__ == "__main__":
    main()
