"""The cost of `model.fit` around the training step, on small models.

    python benchmarks/fit_overhead.py [--rounds 5] [--epochs 4] [--workloads digits,iwae784]

Workloads (the models of benchmarks/train_throughput.py):
  digits:   VAE ELBO, 64-d binarised digits (1500 training examples), 2x200 tanh,
            latent 8, batch 100 (15 steps per epoch);
  iwae784:  IWAE k=50, 784-d synthetic binary data (2560 examples), 784-200-200-50
            tanh, batch 128 (20 steps per epoch).
Variants, each its own model, timed in turn within every round (A B C A B C ...):
  bare:       `model.train_step` in one `tf.function` (XLA), called from Python on
              pre-batched tensors: the step without fit's machinery;
  fit_spe1:   `model.fit(arrays, batch_size, shuffle=True)` with steps_per_execution=1
              (Keras' own default);
  fit_auto:   `model.fit(arrays, ...)` with tfvi's defaults (`compile()` without
              `steps_per_execution`: tfvi chooses it; `fit` routes arrays through
              `tfvi.input_pipeline`).
  matmul:     (iwae784) a [4096, 784] x [784, 784] float32 XLA matmul loop: the FLOP
              ceiling; the IWAE's examples/s at that rate is `rate / flops_per_example`
              (forward MACs x 2 FLOPs x 3 for forward + backward).
Per variant: median over rounds of examples/s, process CPU time, the load average.
Writes `benchmarks/results/fit_overhead.json`.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_throughput import CONFIGS, binary_784, build_model  # noqa: E402

import report_io  # noqa: E402
import tfvi  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
WORKLOADS = {"digits": ("digits_elbo", None), "iwae784": ("iwae50_784", 2560)}


def data_for(name, n):
    if name == "digits":
        return tfvi.data.binarize(tfvi.data.load_digits()["train_probs"], 0)
    return binary_784(n)


def iwae_flops_per_example(cfg):
    h1, h2 = cfg["hidden"]
    d, x, k = cfg["latent_dim"], cfg["input_dim"], cfg["samples"]
    encoder = x * h1 + h1 * h2 + h2 * 2 * d
    decoder = d * h2 + h2 * h1 + h1 * x
    return 2 * 3 * (encoder + k * decoder)


def make_variants(name, cfg, x, epochs):
    batch = cfg["batch_size"]
    steps = len(x) // batch
    variants = {}

    keras.utils.set_random_seed(0)
    bare_model = build_model(cfg)
    bare_model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    step = tf.function(bare_model.train_step, jit_compile=True)
    batches = [tf.constant(x[i * batch:(i + 1) * batch]) for i in range(steps)]

    def bare():
        for _ in range(epochs):
            for b in batches:
                out = step(b)
        float(out["loss"])
    variants["bare"] = (bare, steps * batch * epochs)

    for label, spe in (("fit_spe1", 1), ("fit_auto", None)):
        keras.utils.set_random_seed(0)
        model = build_model(cfg)
        kwargs = {} if spe is None else {"steps_per_execution": spe}
        model.compile(optimizer=keras.optimizers.Adam(1e-3), **kwargs)

        def fit(model=model):
            model.fit(x, batch_size=batch, epochs=epochs, shuffle=True, verbose=0)
        variants[label] = (fit, steps * batch * epochs)

    if name == "iwae784":
        a = tf.random.normal([4096, 784])
        w = tf.random.normal([784, 784]) * 0.03
        reps = 20

        @tf.function(jit_compile=True, autograph=False)
        def matmul_loop(a):
            return tf.while_loop(lambda i, a: i < reps,
                                 lambda i, a: (i + 1, tf.tanh(a @ w)), (0, a))[1]

        def matmul():
            matmul_loop(a).numpy()
        variants["matmul"] = (matmul, None)
        variants["matmul"] += (2.0 * 4096 * 784 * 784 * reps,)
    return variants


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workloads", default="digits,iwae784")
    parser.add_argument("--out", default=os.path.join(RESULTS, "fit_overhead.json"))
    args = parser.parse_args()
    report = dict(rounds=args.rounds, epochs_per_timing=args.epochs, workloads={})
    load0, t_start, c_start = os.getloadavg(), time.perf_counter(), time.process_time()
    for name in args.workloads.split(","):
        cfg_name, n = WORKLOADS[name]
        cfg = CONFIGS[cfg_name]
        x = data_for(name, n)
        variants = make_variants(name, cfg, x, args.epochs)
        for fn, *_ in variants.values():
            fn()  # trace, compile, warm the input pipelines
        walls = {k: [] for k in variants}
        cpus = {k: [] for k in variants}
        for _ in range(args.rounds):
            for label, (fn, *_) in variants.items():
                c0, t0 = time.process_time(), time.perf_counter()
                fn()
                walls[label].append(time.perf_counter() - t0)
                cpus[label].append(time.process_time() - c0)
        rows = {}
        for label, (fn, examples, *flops) in variants.items():
            wall = statistics.median(walls[label])
            row = dict(median_s=wall, median_cpu_s=statistics.median(cpus[label]),
                       walls=walls[label])
            if examples:
                row["examples_per_s"] = examples / wall
            if flops:
                row["gflops_per_s"] = flops[0] / wall / 1e9
                row["ceiling_examples_per_s"] = (flops[0] / wall
                                                 / iwae_flops_per_example(cfg))
            rows[label] = row
        bare = rows["bare"]["examples_per_s"]
        summary = dict(fit_auto_over_bare=rows["fit_auto"]["examples_per_s"] / bare,
                       fit_spe1_over_bare=rows["fit_spe1"]["examples_per_s"] / bare,
                       fit_auto_over_spe1=rows["fit_auto"]["examples_per_s"]
                       / rows["fit_spe1"]["examples_per_s"])
        if "matmul" in rows:
            summary["fit_auto_over_ceiling"] = (rows["fit_auto"]["examples_per_s"]
                                                / rows["matmul"]["ceiling_examples_per_s"])
        report["workloads"][name] = dict(label=cfg["label"], rows=rows, summary=summary)
        print(f"\n{cfg['label']}")
        print(f"{'variant':<10}{'examples/s':>12}{'wall s':>9}{'cpu s':>8}")
        for label, row in rows.items():
            rate = row.get("examples_per_s") or row.get("ceiling_examples_per_s")
            extra = (f"  (ceiling at {row['gflops_per_s']:.0f} GFLOP/s)"
                     if "gflops_per_s" in row else "")
            print(f"{label:<10}{rate:>12.0f}{row['median_s']:>9.2f}"
                  f"{row['median_cpu_s']:>8.2f}{extra}")
        print("  " + ", ".join(f"{k} {v:.2f}" for k, v in summary.items()))
    report.update(wall_s=time.perf_counter() - t_start, cpu_s=time.process_time() - c_start,
                  load_avg_before=load0, load_avg_after=os.getloadavg())
    report_io.finish(report, args.out, load0)


if __name__ == "__main__":
    main()
