"""ResnetVAE ELBO training throughput (28x28, batch 128), XLA on and off, against the
machine's convolution FLOP ceiling measured in the same run.

    python benchmarks/resnet_throughput.py            # 3 rounds x 5 steps per variant
    python benchmarks/resnet_throughput.py --quick    # smoke run: 1 round x 2 steps

Model: Xu et al.'s ResnetVAE networks (`tfvi.networks.resnet_vae_*`) under a Gaussian
encoder head (latent 40) and a Bernoulli 1x1-conv decoder head, ELBO, Adam, binarised
`mnist5k` digits. FLOPs per example are counted analytically from the layer shapes
(2 * multiply-adds of every convolution, transposed convolution and dense layer;
a training step is taken as 3x the forward pass: forward, and two backward products).
The ceiling is the best GFLOP/s of a 3x3, 64->64 convolution on [128, 14, 14, 64]
(forward only, XLA on and off, the larger kept). Every round times each variant once,
in rotating order, so load drift on the shared machine hits all alike; medians are
reported. Prints a table and writes `benchmarks/results/resnet_throughput.json`.
"""

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfvi  # noqa: E402
from tfvi import networks  # noqa: E402
from tfvi.data.mnist5k import load_mnist5k  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def layer_flops(layer, in_shape):
    """(forward FLOPs per example, output shape) of a Keras layer, recursively."""
    if isinstance(layer, keras.Sequential):
        total = 0
        for sub in layer.layers:
            f, in_shape = layer_flops(sub, in_shape)
            total += f
        return total, in_shape
    if isinstance(layer, networks.ResidualBlock):
        f1, mid = layer_flops(layer.conv1, in_shape)
        f2, out = layer_flops(layer.conv2, mid)
        f3 = layer_flops(layer.shortcut, in_shape)[0] if layer.shortcut is not None else 0
        return f1 + f2 + f3, out
    out = tuple(layer.compute_output_shape((1,) + tuple(in_shape)))[1:]
    if isinstance(layer, keras.layers.Conv2DTranspose):
        k = np.prod(layer.kernel_size)
        return 2 * np.prod(in_shape[:2]) * k * in_shape[-1] * layer.filters, out
    if isinstance(layer, keras.layers.Conv2D):
        k = np.prod(layer.kernel_size)
        return 2 * np.prod(out[:2]) * k * in_shape[-1] * layer.filters, out
    if isinstance(layer, keras.layers.Dense):
        return 2 * np.prod(in_shape) * layer.units, out
    return 0, out


def build_model(latent_dim, jit):
    keras.utils.set_random_seed(0)
    model = tfvi.models.VAE(
        tfvi.layers.GaussianEncoder(latent_dim, network=networks.resnet_vae_encoder()),
        tfvi.layers.BernoulliDecoder((28, 28, 1), network=networks.resnet_vae_decoder()),
        objective="elbo", input_dim=(28, 28, 1), seed=0)
    model.compile(keras.optimizers.Adam(1e-3), jit_compile=jit)
    return model


def model_flops(model, latent_dim):
    enc, _ = layer_flops(model.encoder.network, (28, 28, 1))
    dec, feat = layer_flops(model.decoder.network, (latent_dim,))
    heads = 2 * 784 * 2 * latent_dim + 2 * 28 * 28 * feat[-1]
    return 3 * (enc + dec + heads)


def conv_ceiling(jit, repeats=5):
    x = tf.random.normal([128, 14, 14, 64])
    w = tf.random.normal([3, 3, 64, 64])
    fn = tf.function(lambda a: tf.nn.conv2d(a, w, 1, "SAME"), jit_compile=jit)
    fn(x).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        y = fn(x)
    y.numpy()
    seconds = (time.perf_counter() - start) / repeats
    return 2 * 128 * 14 * 14 * 9 * 64 * 64 / seconds / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch_size", type=int, default=128)
    args = parser.parse_args()
    steps, rounds = (2, 1) if args.quick else (5, 3)
    latent_dim = 40
    probs = load_mnist5k()["train_probs"][:args.batch_size * steps]
    x = (np.random.default_rng(0).random(probs.shape) < probs).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices(x).batch(args.batch_size).repeat()
    cpu0, wall0 = time.process_time(), time.time()
    models, first = {}, {}
    for jit in (True, False):
        models[jit] = build_model(latent_dim, jit)
        t = time.perf_counter()
        models[jit].fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
        first[jit] = time.perf_counter() - t
    flops = model_flops(models[True], latent_dim)
    step_s = {True: [], False: []}
    ceiling = {True: [], False: []}
    load = []
    for r in range(rounds):
        for jit in ((True, False) if r % 2 == 0 else (False, True)):
            t = time.perf_counter()
            models[jit].fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
            step_s[jit].append((time.perf_counter() - t) / steps)
            ceiling[jit].append(conv_ceiling(jit))
        load.append(os.getloadavg()[0])
    best_ceiling = max(statistics.median(v) for v in ceiling.values())
    rows = {}
    for jit in (True, False):
        s = statistics.median(step_s[jit])
        rows["xla_on" if jit else "xla_off"] = dict(
            step_seconds_median=s, step_seconds_min=min(step_s[jit]),
            step_seconds_max=max(step_s[jit]), examples_per_second=args.batch_size / s,
            gflops_per_second=flops * args.batch_size / s / 1e9,
            fraction_of_conv_ceiling=flops * args.batch_size / s / 1e9 / best_ceiling,
            first_epoch_seconds=first[jit],
            conv_ceiling_gflops_median=statistics.median(ceiling[jit]))
    result = dict(
        benchmark="resnet_throughput", batch_size=args.batch_size, steps_per_round=steps,
        rounds=rounds, quick=args.quick, training_flops_per_example=float(flops),
        conv_ceiling_gflops=best_ceiling, variants=rows,
        load_average_1min=dict(median=statistics.median(load), max=max(load)),
        cpu_seconds=time.process_time() - cpu0, wall_seconds=time.time() - wall0,
        machine=dict(platform=platform.platform(), cpus=os.cpu_count(),
                     tensorflow=tf.__version__))
    print(f"ResnetVAE ELBO training, 28x28, batch {args.batch_size}, "
          f"{flops / 1e6:.1f} MFLOP/example/step; conv ceiling {best_ceiling:.1f} GFLOP/s")
    print(f"{'variant':8} {'step s':>8} {'ex/s':>8} {'GFLOP/s':>8} {'of ceiling':>10}")
    for name, row in rows.items():
        print(f"{name:8} {row['step_seconds_median']:8.3f} {row['examples_per_second']:8.1f} "
              f"{row['gflops_per_second']:8.2f} {row['fraction_of_conv_ceiling']:10.1%}")
    print(f"load average {result['load_average_1min']['median']:.1f}, CPU "
          f"{result['cpu_seconds']:.0f} s, wall {result['wall_seconds']:.0f} s")
    os.makedirs(RESULTS, exist_ok=True)
    name = "resnet_throughput_quick.json" if args.quick else "resnet_throughput.json"
    with open(os.path.join(RESULTS, name), "w") as fh:
        json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
