"""ResnetVAE ELBO training through `model.fit` (28x28, batch 128, latent 40): float32
against `mixed_bfloat16`, XLA on and off, side by side in one run, against the machine's
convolution FLOP ceiling measured in the same run, and the bound each variant reaches.

    python benchmarks/resnet_throughput.py            # 3 rounds x 4 steps per variant
    python benchmarks/resnet_throughput.py --quick    # smoke run: 1 round x 2 steps

Model: Xu et al.'s ResnetVAE networks (`tfvi.networks.resnet_vae_*`) under a Gaussian
encoder head (latent 40) and a Bernoulli 1x1-conv decoder head, ELBO, Adam, binarised
`mnist5k` digits; every variant starts from the same initial weights and trains on the
same batches, so after the run their held-out ELBOs (fixed evaluation seed, float32
log-densities) compare the precisions. `auto` marks the variant tfvi chooses by
default (`tfvi.precision.resolve_precision("auto", "resnet_vae")` and
`compile(jit_compile=None)`). FLOPs per example are counted analytically from the
layer shapes (2 * multiply-adds of every convolution, transposed convolution and dense
layer; a training step is taken as 3x the forward pass). The ceiling is the best
GFLOP/s of a 3x3, 64->64 convolution on [128, 14, 14, 64] (forward only, XLA on and
off, the larger kept). Every round times each variant once, in rotating order, so load
drift on the shared machine hits all alike; medians of wall and process CPU time per
step are reported (CPU time is the robust figure on a loaded machine). Prints a table
and writes `benchmarks/results/resnet_throughput.json`.
"""

import argparse
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

from report_io import finish  # noqa: E402

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


def build_model(latent_dim, policy, jit):
    """The ResnetVAE under Keras policy `policy`, compiled with `jit_compile=jit`."""
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        model = tfvi.models.VAE(
            tfvi.layers.GaussianEncoder(latent_dim, network=networks.resnet_vae_encoder()),
            tfvi.layers.BernoulliDecoder((28, 28, 1), network=networks.resnet_vae_decoder()),
            objective="elbo", input_dim=(28, 28, 1), seed=0)
        model.compile(keras.optimizers.Adam(1e-3), jit_compile=jit)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model


def held_out_elbo(model, x):
    terms = model.log_weight_terms(tf.constant(x), seed=tf.constant([3, 4]))
    return float(tf.reduce_mean(model.bound_values(terms)["elbo"]))


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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="training steps per timing")
    args = parser.parse_args()
    steps, rounds = (2, 1) if args.quick else (args.steps, args.rounds)
    latent_dim = 40
    data = load_mnist5k()
    rng = np.random.default_rng(0)
    probs = data["train_probs"][:args.batch_size * steps]
    x = (rng.random(probs.shape) < probs).astype(np.float32)
    test = data["test_probs"][:256]
    x_test = (rng.random(test.shape) < test).astype(np.float32)
    load_before = os.getloadavg()
    cpu0, wall0 = time.process_time(), time.time()
    auto_policy = tfvi.precision.resolve_precision("auto", "resnet_vae")
    variants, models, first = {}, {}, {}
    for policy in ("float32", "mixed_bfloat16"):
        for jit in (True, False):
            variants[f"{policy}, xla {'on' if jit else 'off'}"] = (policy, jit)
    for name, (policy, jit) in variants.items():
        models[name] = build_model(latent_dim, policy, jit)
        t = time.perf_counter()
        models[name].fit(x, batch_size=args.batch_size, epochs=1, verbose=0, shuffle=False)
        first[name] = time.perf_counter() - t
    auto_jit = tfvi.precision.auto_jit_compile(models["float32, xla on"])
    auto_name = f"{auto_policy}, xla {'on' if auto_jit else 'off'}"
    flops = model_flops(models["float32, xla off"], latent_dim)
    wall = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    ceiling = {True: [], False: []}
    load = []
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            models[name].fit(x, batch_size=args.batch_size, epochs=1, verbose=0,
                             shuffle=False)
            wall[name].append((time.perf_counter() - t) / steps)
            cpu[name].append((time.process_time() - c) / steps)
        for jit in (True, False):
            ceiling[jit].append(conv_ceiling(jit))
        load.append(os.getloadavg()[0])
    best_ceiling = max(statistics.median(v) for v in ceiling.values())
    reference = "float32, xla off"
    elbo = {name: held_out_elbo(model, x_test) for name, model in models.items()}
    rows = {}
    for name in variants:
        s, c = statistics.median(wall[name]), statistics.median(cpu[name])
        rows[name] = dict(
            auto=name == auto_name, step_seconds_median=s, step_seconds_all=wall[name],
            step_cpu_seconds_median=c, step_cpu_seconds_all=cpu[name],
            examples_per_second=args.batch_size / s,
            # the rate this step's CPU time allows on the 2 cores of an idle machine
            examples_per_second_idle_2_cores=args.batch_size * 2 / c,
            gflops_per_second=flops * args.batch_size / s / 1e9,
            fraction_of_conv_ceiling=flops * args.batch_size / s / 1e9 / best_ceiling,
            cpu_speedup_vs_float32_no_xla=statistics.median(cpu[reference]) / c,
            first_epoch_seconds=first[name], held_out_elbo=elbo[name],
            elbo_minus_float32=elbo[name] - elbo[reference])
    report = dict(
        benchmark="resnet_throughput", batch_size=args.batch_size, steps_per_round=steps,
        rounds=rounds, quick=args.quick, training_steps_per_variant=steps * (rounds + 1),
        training_flops_per_example=float(flops), conv_ceiling_gflops=best_ceiling,
        auto=dict(precision=auto_policy, jit_compile=auto_jit), variants=rows,
        load_avg_before=load_before, load_avg_rounds=load,
        load_avg_after=os.getloadavg(), cpu_s=time.process_time() - cpu0,
        wall_s=time.time() - wall0,
        machine=dict(platform=platform.platform(), cpus=os.cpu_count(),
                     tensorflow=tf.__version__))
    print(f"ResnetVAE ELBO through fit, 28x28, batch {args.batch_size}, "
          f"{flops / 1e6:.1f} MFLOP/example/step; conv ceiling {best_ceiling:.1f} GFLOP/s")
    print(f"{'variant':26} {'step s':>7} {'CPU s':>6} {'ex/s':>6} {'ex/s idle':>9} "
          f"{'CPU x':>6} {'ELBO':>8} {'dELBO':>7}")
    for name, row in rows.items():
        label = name + (" (auto)" if row["auto"] else "")
        print(f"{label:26} {row['step_seconds_median']:7.3f} "
              f"{row['step_cpu_seconds_median']:6.3f} {row['examples_per_second']:6.1f} "
              f"{row['examples_per_second_idle_2_cores']:9.1f} "
              f"{row['cpu_speedup_vs_float32_no_xla']:6.2f} {row['held_out_elbo']:8.2f} "
              f"{row['elbo_minus_float32']:+7.3f}")
    name = "resnet_throughput_quick.json" if args.quick else "resnet_throughput.json"
    finish(report, os.path.join(RESULTS, name), load_before)

if __name__ == "__main__":
    main()
