"""Training throughput of `tfvi.models.VAE` (examples/s), with and without XLA.

    python benchmarks/train_throughput.py            # full run, about 3-5 min on 2 cores
    python benchmarks/train_throughput.py --quick    # a smoke run, under a minute

Configurations (issue 2, "Benchmark"):
  (a) digits_elbo:  VAE, ELBO, 64-d binarized digits, MLP 2x200 tanh, latent 8, batch 100;
  (b) iwae50_784:   IWAE k=50, 784-d synthetic binary data, the IWAE paper's MLP
                    (784-200-200-50, tanh, both directions), batch 128;
  (c) siwae5x10_784: SIWAE K=5 components x T=10 samples (diagonal mixture encoder),
                    the same model and data as (b): K*T = 50 likelihood evaluations too.
Each runs `model.fit` with `jit_compile=True` and `False`. Timing: every run gets a
warm-up epoch (tracing + XLA compilation, reported as `first_epoch_s`, excluded), then
`repeats` rounds in which each run fits one epoch of a fixed number of steps on an
in-memory repeated dataset, round-robin in a rotating order, so that load drift on a
shared machine affects every run alike; the steady-state step time is the median over
the rounds (min and max are kept in the JSON too).

Prints a table and writes `benchmarks/results/train_throughput.json`.
With `--breakdown`, also times the parts of one (b)/(c) step in isolation (encoder +
sampling, decoder + likelihood, prior/posterior densities, forward bound, forward +
backward) to show where the step's time goes.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfvi  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

CONFIGS = {
    "digits_elbo": dict(
        label="(a) VAE ELBO, digits 64-d, 2x200 tanh, d=8, batch 100",
        data="digits", input_dim=64, latent_dim=8, hidden=(200, 200), batch_size=100,
        objective="elbo", components=1, samples=1, steps=100),
    "iwae50_784": dict(
        label="(b) IWAE k=50, 784-d binary, 784-200-200-50, batch 128",
        data="binary784", input_dim=784, latent_dim=50, hidden=(200, 200), batch_size=128,
        objective="iwae", components=1, samples=50, steps=10),
    "siwae5x10_784": dict(
        label="(c) SIWAE K=5 x T=10, same model/data as (b)",
        data="binary784", input_dim=784, latent_dim=50, hidden=(200, 200), batch_size=128,
        objective="siwae", components=5, samples=10, steps=10),
}


def binary_784(n=2048, seed=0):
    """Synthetic 784-d binary images (the content does not matter for throughput;
    a low-rank structure keeps the model's gradients realistic)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 10)) @ rng.normal(size=(10, 784)) - 1.0
    return (rng.uniform(size=logits.shape) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def dataset_array(name):
    if name == "digits":
        return tfvi.data.binarize(tfvi.data.load_digits()["train_probs"], 0)
    return binary_784()


def build_model(cfg, seed=0):
    encoder = tfvi.layers.MixtureEncoder(
        latent_dim=cfg["latent_dim"], components=cfg["components"], hidden=cfg["hidden"],
        activation="tanh", covariance="diag")
    decoder = tfvi.layers.BernoulliDecoder(
        output_dim=cfg["input_dim"], hidden=cfg["hidden"], activation="tanh")
    return tfvi.models.VAE(
        encoder=encoder, decoder=decoder, prior=tfvi.priors.StandardNormal(cfg["latent_dim"]),
        objective=cfg["objective"], samples=cfg["samples"], input_dim=cfg["input_dim"],
        seed=seed)


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def measure_all(runs, repeats, steps_scale, seed=0):
    """Round-robin timing of every (config, XLA) run: a warm-up epoch each (tracing and
    compilation), then `repeats` rounds of one epoch per run, in a rotating order, so
    load drift on a shared machine hits every run alike and the ratios stay fair."""
    models, datasets, steps, first_epoch, times, losses = {}, {}, {}, {}, {}, {}
    arrays = {}
    for name, jit in runs:
        cfg = CONFIGS[name]
        keras.utils.set_random_seed(seed)
        steps[name, jit] = max(2, int(round(cfg["steps"] * steps_scale)))
        if cfg["data"] not in arrays:
            arrays[cfg["data"]] = dataset_array(cfg["data"])
        datasets[name, jit] = (
            tf.data.Dataset.from_tensor_slices(arrays[cfg["data"]]).repeat()
            .batch(cfg["batch_size"], drop_remainder=True).prefetch(tf.data.AUTOTUNE))
        model = build_model(cfg, seed)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit)
        models[name, jit] = model
        times[name, jit], losses[name, jit] = [], []

    def epoch(key):
        timer = EpochTimer()
        history = models[key].fit(datasets[key], epochs=1, steps_per_epoch=steps[key],
                                  verbose=0, callbacks=[timer])
        losses[key].append(float(history.history["loss"][-1]))
        if not np.isfinite(losses[key][-1]):
            raise FloatingPointError(f"{key}: non-finite loss {losses[key][-1]}")
        return timer.times[-1]

    for key in runs:
        first_epoch[key] = epoch(key)
        print(f"  warm-up {key[0]:<14} XLA {'on ' if key[1] else 'off'} "
              f"{first_epoch[key]:6.1f} s", file=sys.stderr, flush=True)
    for r in range(repeats):
        order = runs[r % len(runs):] + runs[:r % len(runs)]
        for key in order:
            times[key].append(epoch(key) / steps[key])
        print(f"  round {r + 1}/{repeats} done", file=sys.stderr, flush=True)

    rows = []
    for key in runs:
        name, jit = key
        cfg, step_times = CONFIGS[name], times[key]
        step = statistics.median(step_times)
        rows.append({
            "config": name, "label": cfg["label"], "jit_compile": jit,
            "batch_size": cfg["batch_size"], "steps_per_epoch": steps[key],
            "epochs_timed": repeats,
            "step_ms_median": 1e3 * step, "step_ms_min": 1e3 * min(step_times),
            "step_ms_max": 1e3 * max(step_times),
            "examples_per_s": cfg["batch_size"] / step,
            "first_epoch_s": first_epoch[key],
            "loss_first_epoch": losses[key][0], "loss_last_epoch": losses[key][-1],
        })
    return rows


def _time_fn(fn, repeats=20):
    fn()  # trace/compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def breakdown(name, cfg, jit_compile, seed=0):
    """Median ms of the parts of one training step, each compiled on its own."""
    model = build_model(cfg, seed)
    x = tf.constant(dataset_array(cfg["data"])[: cfg["batch_size"]])
    seed_t = tf.constant([1, 2], tf.int32)
    fn = lambda f: tf.function(f, jit_compile=jit_compile)  # noqa: E731

    @fn
    def encode_sample():
        q = model.encoder(x)
        return tfvi.distributions.stratified_sample(q, cfg["samples"], seed=seed_t)[0]

    z = encode_sample()

    @fn
    def decode_loglik():
        return model.decoder(z).log_prob(x)

    @fn
    def prior_posterior():
        q = model.encoder(x)
        return model.prior().log_prob(z) + q.log_prob(z)

    @fn
    def forward():
        terms = model.log_weight_terms(x, seed=seed_t)
        return tf.reduce_mean(model.bound_values(terms)[model.objective])

    @fn
    def forward_backward():
        with tf.GradientTape() as tape:
            terms = model.log_weight_terms(x, seed=seed_t)
            loss = -tf.reduce_mean(model.bound_values(terms)[model.objective])
        return tape.gradient(loss, model.trainable_variables)

    parts = {
        "encoder+sample": encode_sample, "decoder+log p(x|z)": decode_loglik,
        "log r(z)+log q(z|x) (incl. encoder)": prior_posterior,
        "forward (all metrics)": forward, "forward+backward": forward_backward,
    }
    return {part: _time_fn(f) for part, f in parts.items()}


def print_table(rows):
    header = f"{'configuration':<52} {'XLA':>4} {'examples/s':>11} {'step ms':>8} " \
             f"{'min-max ms':>13} {'1st epoch s':>11}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['label']:<52} {'on' if r['jit_compile'] else 'off':>4} "
              f"{r['examples_per_s']:>11.0f} {r['step_ms_median']:>8.2f} "
              f"{r['step_ms_min']:>6.1f}-{r['step_ms_max']:<6.1f} {r['first_epoch_s']:>11.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated subset of {list(CONFIGS)}")
    parser.add_argument("--xla", default="on,off", help="'on', 'off' or 'on,off'")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed epochs per measurement (median reported)")
    parser.add_argument("--steps_scale", type=float, default=1.0,
                        help="multiplies each configuration's steps per epoch")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: --repeats 2 --steps_scale 0.2")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the parts of one step of each configuration")
    parser.add_argument("--output", default=os.path.join(RESULTS, "train_throughput.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.steps_scale = 2, 0.2
    names = [n for n in args.configs.split(",") if n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise ValueError(f"--configs: unknown {unknown}; expected a subset of {list(CONFIGS)}")
    modes = {"on": True, "off": False}
    if not args.xla or any(m not in modes for m in args.xla.split(",")):
        raise ValueError(f"--xla must be 'on', 'off' or 'on,off'; got {args.xla!r}")
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1; got {args.repeats}")

    load_before = os.getloadavg()
    runs = [(name, modes[mode]) for name in names for mode in args.xla.split(",")]
    rows = measure_all(runs, args.repeats, args.steps_scale)
    result = {
        "benchmark": "train_throughput",
        "command": " ".join(["python", "benchmarks/train_throughput.py", *(argv or sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "tensorflow": tf.__version__,
                    "keras": keras.__version__,
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "repeats": args.repeats, "steps_scale": args.steps_scale, "rows": rows,
    }
    print()
    print_table(rows)
    by_key = {(r["config"], r["jit_compile"]): r for r in rows}
    ratios = {}
    for jit in (True, False):
        b, c = by_key.get(("iwae50_784", jit)), by_key.get(("siwae5x10_784", jit))
        if b and c:
            ratios["xla" if jit else "no_xla"] = c["step_ms_median"] / b["step_ms_median"]
    if ratios:
        result["siwae_over_iwae_step_time"] = ratios
        print("\n(c)/(b) step time: " + ", ".join(
            f"{k}: {v:.2f}x" for k, v in ratios.items()) + "  (target: <= 1.2x)")
    speedups = {n: by_key[(n, False)]["step_ms_median"] / by_key[(n, True)]["step_ms_median"]
                for n in names if (n, True) in by_key and (n, False) in by_key}
    if speedups:
        result["xla_speedup"] = speedups
        print("XLA speed-up (step time off/on): " + ", ".join(
            f"{k}: {v:.2f}x" for k, v in speedups.items()))
    if args.breakdown:
        result["breakdown_ms"] = {}
        for name in names:
            parts = breakdown(name, CONFIGS[name], jit_compile=True)
            result["breakdown_ms"][name] = parts
            print(f"\nbreakdown of one {name} step (XLA, ms, each part compiled alone):")
            for part, ms in parts.items():
                print(f"  {part:<38} {ms:8.2f}")
    print(f"\nload average before/after: {load_before[0]:.1f} / {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs (a shared machine: compare within one run)")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, args.output)
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
