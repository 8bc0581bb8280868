"""Scaling benchmark: training examples/s of a digits VAE for 1 vs 2 replicas (logical
CPU devices, MirroredStrategy) and 1 vs 2 workers (MultiWorkerMirroredStrategy on
127.0.0.1), plus the per-step communication cost (one all-reduce of the gradient); and
the sharded AIS evaluation (`tfvi.distribute.distributed_ais_log_likelihood`): examples/s
for 1 vs 2 replicas and workers, with a check that every configuration returns the same
estimates.

    python benchmarks/scaling.py [--steps 60] [--batch 128] [--ais_temperatures 100]
                                 [--parts train,ais]

`--parts ais` reruns only the AIS part and keeps the training rows already in the JSON.

Each configuration runs in its own process (devices must be configured before any TF
op). Prints a table and writes benchmarks/results/scaling.json. On this 2-core shared
machine the numbers measure the overhead of the distributed code path, not a speed-up.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def child(args):
    from tfvi import distribute

    if args.mode in ("replicas", "ais_replicas"):
        distribute.configure_logical_cpus(args.n)
    import keras
    import numpy as np
    import tensorflow as tf

    import tfvi
    from tfvi.data import load_digits

    if args.mode in ("replicas", "ais_replicas"):
        strategy = distribute.create_strategy(
            "mirrored", devices=[f"/cpu:{i}" for i in range(args.n)])
    else:
        strategy = distribute.create_strategy("multi_worker", timeout_seconds=120)
    x = (load_digits()["train_probs"] > 0.5).astype(np.float32)
    if args.mode.startswith("ais"):
        return ais_child(args, strategy, x)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = tfvi.models.VAE(tfvi.layers.GaussianEncoder(8, hidden=(200, 200)),
                                tfvi.layers.BernoulliDecoder(x.shape[1], hidden=(200, 200)),
                                objective="iwae", samples=5, input_dim=x.shape[1], seed=0)
        model.compile(keras.optimizers.Adam(1e-3), jit_compile=False)
        model.optimizer.build(model.trainable_variables)
    distribute.apply_multi_worker_workarounds(model, strategy)
    ds = tf.data.Dataset.from_tensor_slices(x).repeat().batch(args.batch, drop_remainder=True)
    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    ds = ds.with_options(opts)
    model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)  # trace + warm up
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start

    grads_size = sum(int(np.prod(v.shape)) for v in model.trainable_variables)

    @tf.function
    def all_reduce():
        def fn():
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce("SUM", tf.ones([grads_size]))
        return strategy.run(fn)

    all_reduce()
    reps = 50
    t0 = time.perf_counter()
    for _ in range(reps):
        out = all_reduce()
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t,
                          strategy.experimental_local_results(out))
    comm = (time.perf_counter() - t0) / reps
    print(json.dumps({"examples_per_second": args.steps * args.batch / seconds,
                      "step_ms": 1e3 * seconds / args.steps, "all_reduce_ms": 1e3 * comm,
                      "parameters": grads_size}))


AIS_CHUNK, AIS_WARMUP, AIS_EXAMPLES = 16, 32, 160


def ais_child(args, strategy, x):
    """Examples/s of the sharded AIS evaluation, compilation excluded: a first call on
    AIS_WARMUP examples compiles the loop (reused by the next call with the same
    protocol), the second call on AIS_EXAMPLES examples is timed."""
    import keras

    import tfvi
    from tfvi import distribute

    def build():
        keras.utils.set_random_seed(0)
        return tfvi.models.VAE(tfvi.layers.GaussianEncoder(8, hidden=(200, 200)),
                               tfvi.layers.BernoulliDecoder(x.shape[1], hidden=(200, 200)),
                               input_dim=x.shape[1], seed=0)

    # The same weights in every configuration (initialisers draw differently under
    # MirroredStrategy and MultiWorkerMirroredStrategy scopes).
    weights = build().get_weights()
    with strategy.scope():  # mirrored variables: XLA on each device reads its own copy
        model = build()
        model.set_weights(weights)
    kw = dict(preset="quick", num_temperatures=args.ais_temperatures, num_chains=4,
              num_leapfrog_steps=10, batch_size=AIS_CHUNK, seed=0, verbose=0)
    times, estimates = [], None
    for n in (AIS_WARMUP, AIS_EXAMPLES):
        start = time.perf_counter()
        est = distribute.distributed_ais_log_likelihood(model, x[:n], strategy, **kw)
        times.append(time.perf_counter() - start)
        estimates = est.log_likelihood
    print(json.dumps({"examples_per_second": AIS_EXAMPLES / times[1],
                      "first_call_seconds": times[0], "seconds": times[1],
                      "mean_log_likelihood": float(estimates.mean()),
                      "estimates": [float(v) for v in estimates]}))


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run(mode, n, steps, batch, ais_temperatures):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", f"--mode={mode}",
           f"--n={n}", f"--steps={steps}", f"--batch={batch}",
           f"--ais_temperatures={ais_temperatures}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join(filter(None, [os.path.dirname(HERE),
                                                        os.environ.get("PYTHONPATH")])))
    if mode in ("replicas", "ais_replicas"):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        if out.returncode:
            raise RuntimeError(out.stderr[-3000:])
        return json.loads(out.stdout.strip().splitlines()[-1])
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(n)]}
    procs = []
    try:
        for i in range(n):
            wenv = dict(env, TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": i}}))
            procs.append(subprocess.Popen(["timeout", "-s", "KILL", "900", *cmd], env=wenv,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, start_new_session=True))
        outs = [p.communicate(timeout=960) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait()
    for p, (_, err) in zip(procs, outs):
        if p.returncode:
            raise RuntimeError(err[-3000:])
    return json.loads(outs[0][0].strip().splitlines()[-1])  # the chief's numbers


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=128, help="global batch size")
    parser.add_argument("--ais_temperatures", type=int, default=100,
                        help="AIS part: temperatures (4 chains, 10 leapfrog steps)")
    parser.add_argument("--parts", default="train,ais",
                        help="comma-separated: train, ais (a part not run keeps its rows "
                             "from the existing JSON)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="replicas", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    parts = set(args.parts.split(","))
    if not parts or parts - {"train", "ais"}:
        parser.error(f"--parts must be a comma-separated subset of train,ais; got {args.parts!r}")
    path = os.path.join(HERE, "results", "scaling.json")
    previous = {}
    if parts != {"train", "ais"} and os.path.exists(path):
        with open(path) as fh:
            previous = json.load(fh)
    load = os.getloadavg()
    rows = [] if "train" in parts else previous.get("rows", [])
    for mode, n in ((("replicas", 1), ("replicas", 2), ("workers", 1), ("workers", 2))
                    if "train" in parts else ()):
        r = run(mode, n, args.steps, args.batch, args.ais_temperatures)
        r.update(mode=mode, n=n)
        rows.append(r)
        print(f"{mode:>9} x{n}: {r['examples_per_second']:9.0f} ex/s  "
              f"step {r['step_ms']:7.1f} ms  all-reduce {r['all_reduce_ms']:6.2f} ms",
              flush=True)
    ais_rows = []
    for mode, n in ((("ais_replicas", 1), ("ais_replicas", 2), ("ais_workers", 1),
                     ("ais_workers", 2)) if "ais" in parts else ()):
        r = run(mode, n, args.steps, args.batch, args.ais_temperatures)
        r.update(mode=mode, n=n)
        ais_rows.append(r)
        print(f"{mode:>12} x{n}: {r['examples_per_second']:7.2f} ex/s (AIS)  "
              f"mean log p(x) {r['mean_log_likelihood']:.6f}", flush=True)
    if ais_rows:
        ref = ais_rows[0]["estimates"]
        max_diff = max(abs(a - b) for r in ais_rows for a, b in zip(r["estimates"], ref))
        for r in ais_rows:
            del r["estimates"]
        print(f"AIS: max |difference| of the per-example estimates across configurations "
              f"{max_diff:.2e} nats")
        ais = {"num_temperatures": args.ais_temperatures, "schedule": "sigmoid",
               "num_chains": 4, "num_leapfrog_steps": 10, "chunk": AIS_CHUNK,
               "examples": AIS_EXAMPLES, "warmup_examples": AIS_WARMUP, "rows": ais_rows,
               "max_abs_difference_across_configurations": max_diff,
               "model": "VAE 64-200-200-8 / 8-200-200-64 (untrained), XLA",
               "load_average_at_start": load, "load_average_at_end": os.getloadavg()}
    else:
        ais = previous.get("ais")
    result = dict(previous)
    result.update({"cpu_count": os.cpu_count(), "rows": rows, "ais": ais})
    if "train" in parts:
        result.update({"global_batch": args.batch, "steps": args.steps,
                       "model": "VAE 64-200-200-8 / 8-200-200-64, IWAE k=5",
                       "train_load_average_at_start": load,
                       "train_load_average_at_end": os.getloadavg()})
    result["note"] = ("2 physical cores shared with other jobs; logical devices and "
                      "workers share them, so this measures overhead, not speed-up")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(result, fh, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
