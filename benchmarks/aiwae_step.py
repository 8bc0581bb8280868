"""AIWAE training step vs its own gradient evaluations done bare.

    python benchmarks/aiwae_step.py [--repeats 7] [--steps 20]

Model: Ding & Freedman's digits setting, 64-200-200-8 tanh encoder/decoder, Bernoulli
likelihood, N(0, I) prior, K=5 chains, T=5 temperatures, L=5 leapfrog steps, batch 100.

  step: `model.train_step` compiled the way `fit` compiles it (`tf.function`,
        `jit_compile` as `compile()` chose), called on one fixed batch.
  bare: the AIS transitions' gradient evaluations alone: K x (T - 1) x L calls of
        `value_and_gradient` of log p(x, z) on `[K, batch, d]`, as (T - 1) x L
        iterations of one XLA `tf.while_loop` (state carried so nothing is hoisted).

Both are timed alternately (step, bare, step, bare, ...) in one process, `--steps`
calls per timing; the ratio of medians is the target (<= 1.3). Writes
`benchmarks/results/aiwae_step.json`.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import tfvi  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report_io  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def build(k, t, leapfrog, latent=8, hidden=200):
    keras.utils.set_random_seed(0)
    model = tfvi.models.AIWAE(
        tfvi.layers.GaussianEncoder(latent, hidden=(hidden, hidden), activation="tanh"),
        tfvi.layers.BernoulliDecoder(64, hidden=(hidden, hidden), activation="tanh"),
        samples=k, temperatures=t, leapfrog_steps=leapfrog, input_dim=64, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def bare_fn(model, x, k, iterations):
    targets = model.decoder.prepare_targets(x)
    z0 = tf.random.normal([k, x.shape[0], model.latent_dim], seed=1)

    def log_joint(z):
        return model.decoder(z).log_prob(targets) + model.prior().log_prob(z)

    @tf.function(jit_compile=True, autograph=False)
    def run(z):
        def body(i, z):
            value, grad = tfp.math.value_and_gradient(log_joint, z)
            # A leapfrog-like update so every evaluation depends on the last.
            return i + 1, z + 1e-3 * grad + 1e-6 * value[..., tf.newaxis]
        return tf.while_loop(lambda i, z: i < iterations, body, (0, z))[1]

    return lambda: run(z0)


def timed(fn, steps):
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(steps):
        out = fn()
    tf.nest.map_structure(lambda v: v.numpy() if hasattr(v, "numpy") else v, out)
    return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--temperatures", type=int, default=5)
    parser.add_argument("--leapfrog", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(RESULTS, "aiwae_step.json"))
    args = parser.parse_args()
    model = build(args.samples, args.temperatures, args.leapfrog)
    x = tf.constant(tfvi.data.load_digits()["train_probs"][:args.batch])
    x = tf.cast(x > 0.5, tf.float32)
    step_fn = tf.function(model.train_step, jit_compile=model.jit_compile)
    evaluations = args.samples * (args.temperatures - 1) * args.leapfrog
    variants = {"step": lambda: step_fn(x),
                "bare": bare_fn(model, x, args.samples,
                                (args.temperatures - 1) * args.leapfrog)}
    for fn in variants.values():
        timed(fn, 2)  # trace + compile
    load0 = os.getloadavg()
    times = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            wall, c = timed(fn, args.steps)
            times[name].append(wall)
            cpu[name].append(c)
    med = {k: float(np.median(v)) for k, v in times.items()}
    med_cpu = {k: float(np.median(v)) for k, v in cpu.items()}
    report = dict(
        setting=dict(batch=args.batch, samples=args.samples, temperatures=args.temperatures,
                     leapfrog=args.leapfrog, bare_gradient_evaluations=evaluations,
                     jit_compile=bool(model.jit_compile)),
        median_ms=dict((k, 1e3 * v) for k, v in med.items()),
        median_cpu_ms=dict((k, 1e3 * v) for k, v in med_cpu.items()),
        ratio=med["step"] / med["bare"], cpu_ratio=med_cpu["step"] / med_cpu["bare"],
        times_s=times, load_avg_before=load0, load_avg_after=os.getloadavg())
    print(f"AIWAE K={args.samples} T={args.temperatures} L={args.leapfrog} batch "
          f"{args.batch}: {evaluations} bare value_and_gradient evaluations per step")
    print(f"{'variant':<8}{'median ms':>11}{'cpu ms':>9}")
    for k in variants:
        print(f"{k:<8}{1e3 * med[k]:>11.2f}{1e3 * med_cpu[k]:>9.2f}")
    print(f"step / bare = {report['ratio']:.2f} (cpu {report['cpu_ratio']:.2f}); load "
          f"average {load0[0]:.1f} -> {report['load_avg_after'][0]:.1f}")
    report_io.finish(report, args.out)


if __name__ == "__main__":
    main()
