"""float32 vs mixed_bfloat16 on the 784-d IWAE (k=50, 784-200-200-50 tanh, batch 128).

    python benchmarks/precision.py [--rounds 5] [--steps 10] [--train_steps 300]

The model is written with plain Keras `Dense` layers under a dtype policy; the
networks' outputs are cast to float32 before any density, so log-densities and the
bound stay float32 (tfvi's own layers do not run under a mixed policy yet, see
docs/performance.md). Measured in one process:

  step time: one Adam step on the IWAE-50 bound, for float32 and mixed_bfloat16, each
             with XLA on and off, timed in turn (A B C D A B C D ...), `--steps` steps
             per timing, median over `--rounds`;
  bound:     the float32 model is trained for `--train_steps` steps on synthetic
             784-d binary data; its weights are copied into the mixed_bfloat16 model
             and both evaluate IWAE-50 on the same 1024 examples with the same noise:
             the mean difference is what bfloat16 compute costs the bound at equal
             weights.

Writes `benchmarks/results/precision.json`.
"""

import argparse
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report_io  # noqa: E402
from train_throughput import binary_784  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
K, LATENT, BATCH = 50, 50, 128


class IWAE(keras.Model):
    def __init__(self, policy):
        super().__init__()
        dense = lambda units, act=None: keras.layers.Dense(  # noqa: E731
            units, activation=act, dtype=policy)
        self.enc = [dense(200, "tanh"), dense(200, "tanh"), dense(2 * LATENT)]
        self.dec = [dense(200, "tanh"), dense(200, "tanh"), dense(784)]
        self.build_all()

    def build_all(self):
        self.bound(tf.zeros([2, 784]), tf.zeros([K, 2, LATENT]))

    def bound(self, x, eps):
        """IWAE-K `[batch]` float32 (networks in the policy's compute dtype)."""
        h = x
        for layer in self.enc:
            h = layer(h)
        loc, raw = tf.split(tf.cast(h, tf.float32), 2, -1)
        scale = tf.nn.softplus(raw) + 1e-5
        z = loc + scale * eps  # [K, B, d]
        h = z
        for layer in self.dec:
            h = layer(h)
        logits = tf.cast(h, tf.float32)
        log_px = tf.reduce_sum(x * logits - tf.nn.softplus(logits), -1)
        log_pz = -0.5 * tf.reduce_sum(z ** 2, -1)
        log_qz = -0.5 * tf.reduce_sum(eps ** 2, -1) - tf.reduce_sum(tf.math.log(scale), -1)
        return tf.reduce_logsumexp(log_px + log_pz - log_qz, 0) - math.log(K)


def make_step(model, optimizer, jit):
    @tf.function(jit_compile=jit)
    def step(x, seed):
        eps = tf.random.stateless_normal([K, tf.shape(x)[0], LATENT], seed)
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(model.bound(x, eps))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--train_steps", type=int, default=300)
    parser.add_argument("--out", default=os.path.join(RESULTS, "precision.json"))
    args = parser.parse_args()
    data = binary_784(4096)
    batches = [tf.constant(data[i:i + BATCH]) for i in range(0, 2048, BATCH)]
    keras.utils.set_random_seed(0)
    models = {p: IWAE(p) for p in ("float32", "mixed_bfloat16")}
    variants = {}
    for policy, model in models.items():
        for jit in (True, False):
            opt = keras.optimizers.Adam(1e-3)
            opt.build(model.trainable_variables)
            variants[f"{policy} xla={'on' if jit else 'off'}"] = make_step(model, opt, jit)
    load0, t_start, c_start = os.getloadavg(), time.perf_counter(), time.process_time()
    seed = tf.constant([0, 0])
    for fn in variants.values():
        fn(batches[0], seed).numpy()
    walls = {k: [] for k in variants}
    cpus = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            c0, t0 = time.process_time(), time.perf_counter()
            for i in range(args.steps):
                loss = fn(batches[i % len(batches)], tf.constant([i, 1]))
            loss.numpy()
            walls[name].append((time.perf_counter() - t0) / args.steps)
            cpus[name].append((time.process_time() - c0) / args.steps)
    # Bound at equal weights: train float32, copy into the bfloat16 model.
    f32, bf16 = models["float32"], models["mixed_bfloat16"]
    train = make_step(f32, keras.optimizers.Adam(1e-3), True)
    for i in range(args.train_steps):
        train(batches[i % len(batches)], tf.constant([i, 2]))
    for a, b in zip(f32.weights, bf16.weights):
        b.assign(a)
    x_eval = tf.constant(data[2048:3072])
    eps = tf.random.stateless_normal([K, 1024, LATENT], [5, 5])
    bounds = {name: float(tf.reduce_mean(
        tf.function(m.bound, jit_compile=True)(x_eval, eps))) for name, m in models.items()}
    med = {k: statistics.median(v) for k, v in walls.items()}
    report = dict(
        step_ms={k: 1e3 * v for k, v in med.items()},
        step_cpu_ms={k: 1e3 * statistics.median(v) for k, v in cpus.items()},
        examples_per_s={k: BATCH / v for k, v in med.items()},
        bf16_speedup_xla=med["float32 xla=on"] / med["mixed_bfloat16 xla=on"],
        bf16_speedup_no_xla=med["float32 xla=off"] / med["mixed_bfloat16 xla=off"],
        iwae50_bound=bounds, bound_difference=bounds["mixed_bfloat16"] - bounds["float32"],
        train_steps=args.train_steps, rounds=args.rounds, steps=args.steps,
        wall_s=time.perf_counter() - t_start, cpu_s=time.process_time() - c_start,
        load_avg_before=load0, load_avg_after=os.getloadavg())
    print(f"{'variant':<26}{'step ms':>9}{'cpu ms':>9}{'examples/s':>12}")
    for k in variants:
        print(f"{k:<26}{report['step_ms'][k]:>9.1f}{report['step_cpu_ms'][k]:>9.1f}"
              f"{report['examples_per_s'][k]:>12.0f}")
    print(f"bfloat16 speed-up: XLA {report['bf16_speedup_xla']:.2f}x, no XLA "
          f"{report['bf16_speedup_no_xla']:.2f}x; IWAE-50 at equal weights: float32 "
          f"{bounds['float32']:.3f}, bfloat16 {bounds['mixed_bfloat16']:.3f} "
          f"(difference {report['bound_difference']:+.3f} nats)")
    report_io.finish(report, args.out, load0)


if __name__ == "__main__":
    main()
