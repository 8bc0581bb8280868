"""Scaling benchmark: training examples/s of a digits VAE for 1 vs 2 replicas (logical
CPU devices, MirroredStrategy) and 1 vs 2 workers (MultiWorkerMirroredStrategy on
127.0.0.1), plus the per-step communication cost (one all-reduce of the gradient).

    python benchmarks/scaling.py [--steps 60] [--batch 128]

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

    if args.mode == "replicas":
        distribute.configure_logical_cpus(args.n)
    import keras
    import numpy as np
    import tensorflow as tf

    import tfvi
    from tfvi.data import load_digits

    if args.mode == "replicas":
        strategy = distribute.create_strategy(
            "mirrored", devices=[f"/cpu:{i}" for i in range(args.n)])
    else:
        strategy = distribute.create_strategy("multi_worker", timeout_seconds=120)
    x = (load_digits()["train_probs"] > 0.5).astype(np.float32)
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


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run(mode, n, steps, batch):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", f"--mode={mode}",
           f"--n={n}", f"--steps={steps}", f"--batch={batch}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    if mode == "replicas":
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
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="replicas", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    rows = []
    for mode, n in (("replicas", 1), ("replicas", 2), ("workers", 1), ("workers", 2)):
        r = run(mode, n, args.steps, args.batch)
        r.update(mode=mode, n=n)
        rows.append(r)
        print(f"{mode:>9} x{n}: {r['examples_per_second']:9.0f} ex/s  "
              f"step {r['step_ms']:7.1f} ms  all-reduce {r['all_reduce_ms']:6.2f} ms",
              flush=True)
    result = {"global_batch": args.batch, "steps": args.steps, "cpu_count": os.cpu_count(),
              "model": "VAE 64-200-200-8 / 8-200-200-64, IWAE k=5", "rows": rows,
              "note": "2 physical cores shared with other jobs; logical devices and workers "
                      "share them, so this measures overhead, not speed-up"}
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "scaling.json"), "w") as fh:
        json.dump(result, fh, indent=2)
    print(f"wrote {os.path.join(HERE, 'results', 'scaling.json')}")


if __name__ == "__main__":
    main()
