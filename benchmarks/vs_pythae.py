"""tfvi against Pythae side by side in one run: `model.fit`, `tfvi-train`, the bare step,
Pythae's trainer and the FLOP ceiling, in alternating rounds (issue 16).

    python benchmarks/vs_pythae.py                     # (a), (b), (c); ~10 min idle
    python benchmarks/vs_pythae.py --quick             # smoke run, ~3 min
    python benchmarks/vs_pythae.py --workloads digits --rounds 5

Workloads:
  (a) digits:  VAE ELBO, binarised 8x8 digits (1500 x 64), MLP 2x200 tanh, latent 8,
               batch 100 (15 steps per epoch);
  (b) iwae784: IWAE k=50, binarised mnist5k (2560 x 784), 784-200-200-50 tanh both
               ways, batch 128 (20 steps per epoch), plus the FLOP ceiling: every matrix
               product of one step at the model's shapes, alone (`vs_pythae_tf.py`);
  (c) resnet:  Xu et al.'s ResnetVAE (B.2; `tfvi.networks`), 28x28x1 mnist5k (512),
               batch 128, latent 40, ELBO; tfvi with its default precision and XLA choice.
Variants (`vs_pythae_tf.py`, `vs_pythae_torch.py`): tfvi_fit, tfvi_bare[_graph],
gemm_xla/gemm_graph, pythae_trainer (Pythae's `BaseTrainer.train_step`, its own loop
and DataLoader), pythae_step (the bare torch step), and tfvi_train: a `tfvi-train`
process per round (the launcher's own data pipeline, callbacks, checkpoints and
TensorBoard writes), timed over its steady-state epochs only (epoch 3 to the last,
from the per-epoch wall and CPU times `tfvi.training.TrainTiming` keeps in the
checkpoint state; start-up, compilation, the first TensorBoard writes and the final
evaluation are excluded).

Method: TensorFlow and torch run in two long-lived worker processes (one per framework
and workload; torch with 2 threads) driven over pipes, so every variant is warmed up
once (tracing, XLA, allocator) and then timed in rounds in rotating order (A B C, B C A,
...); only one variant runs at a time. Per variant: median examples/s over rounds,
min-max, process CPU seconds per 1000 examples, and the load average per round.
Without torch and pythae installed (`pip install .[pythae]`) it prints why and exits 0.
Writes `benchmarks/results/vs_pythae.json` (`vs_pythae_quick.json` with --quick).
"""

import argparse
import glob
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
MLP = dict(kind="mlp", hidden=(200, 200))
WORKLOADS = {
    "digits": dict(MLP, label="(a) VAE ELBO, digits 64-d, 2x200 tanh, latent 8, batch 100",
                   data="digits", input_dim=64, latent_dim=8, objective="elbo", samples=1,
                   batch_size=100, epochs=20, train_epochs=60, rounds=4,
                   tf_variants=("tfvi_fit", "tfvi_bare", "tfvi_bare_graph"),
                   train_flags=["--dataset=digits", "--objective=elbo", "--samples=1",
                                "--latent_dim=8", "--batch_size=100"]),
    "iwae784": dict(MLP, label="(b) IWAE k=50, mnist5k 784-d, 784-200-200-50 tanh, batch 128",
                    data="mnist5k", examples=2560, input_dim=784, latent_dim=50,
                    objective="iwae", samples=50, batch_size=128, epochs=1, train_epochs=4,
                    rounds=3, tf_variants=("tfvi_fit", "tfvi_bare", "gemm_xla", "gemm_graph"),
                    train_flags=["--dataset=mnist5k", "--architecture=mlp",
                                 "--objective=iwae", "--samples=50", "--latent_dim=50",
                                 "--batch_size=128"]),
    "resnet": dict(kind="resnet", label="(c) ResnetVAE (Xu et al. B.2), 28x28, batch 128, "
                   "latent 40, ELBO", data="mnist5k", examples=512, latent_dim=40,
                   objective="elbo", samples=1, batch_size=128, epochs=1, rounds=3,
                   tf_variants=("tfvi_fit",), train_flags=None),
}
COMMON_TRAIN_FLAGS = ["--model=vae", "--components=1", "--encoder_hidden=200,200",
                      "--decoder_hidden=200,200", "--activation=tanh",
                      "--learning_rate=0.001", "--eval_iwae_samples=1",
                      "--eval_max_examples=64", "--verbose=0", "--seed=0"]


# ---------------------------------------------------------------- workers
def worker(kind):
    """A worker process: JSON requests on stdin, JSON replies on the original stdout
    (library output goes to stderr)."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.path.insert(0, HERE)
    workload = None
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["cmd"] == "setup":
                spec = WORKLOADS[req["workload"]]
                if kind == "tf":
                    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
                    import numpy as np
                    from vs_pythae_tf import TfWorkload, make_data

                    x = make_data(spec)
                    np.save(req["data_path"], x)
                    workload = TfWorkload(spec, x)
                else:
                    import numpy as np
                    from vs_pythae_torch import TorchWorkload

                    workload = TorchWorkload(spec, np.load(req["data_path"]))
                for v in workload.variants():  # warm-up: trace, compile, allocate
                    workload.run(v, 1)
                epoch_s = {v: workload.run(v, 1)[1] for v in workload.variants()}
                reply = dict(variants=workload.variants(), info=workload.info(),
                             epoch_s=epoch_s)
            elif req["cmd"] == "run":
                examples, wall, cpu = workload.run(req["variant"], req["epochs"])
                reply = dict(examples=examples, wall=wall, cpu=cpu)
            else:
                return
        except Exception as err:  # reported to the driver, which stops with it
            import traceback

            traceback.print_exc()
            reply = dict(error=f"{type(err).__name__}: {err}")
        out.write(json.dumps(reply) + "\n")


class Worker:
    def __init__(self, kind, log):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   TF_CPP_MIN_LOG_LEVEL="2")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", kind],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log, text=True, env=env, cwd=ROOT)

    def ask(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited (status {self.proc.wait()}); see the log")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


# ---------------------------------------------------------------- tfvi-train
def tfvi_train_block(spec, epochs, log):
    """One `tfvi-train` process; returns (examples, wall s, CPU s) of its steady-state
    epochs (3..epochs), from the per-epoch times `TrainTiming` keeps in the last
    checkpoint's state (`fit_epoch_seconds`, `fit_epoch_cpu_seconds`: from one epoch's
    end to the next, with every callback's work). Epoch 1 compiles the step; the end of
    epoch 1 (counted in epoch 2) writes the first TensorBoard images and traces the
    scalar writer, a one-off of about 0.2 s. Checkpoints (every 30 s and after the last
    epoch) and image summaries (every 30 s) keep the launcher's defaults."""
    with tempfile.TemporaryDirectory(prefix="vs_pythae_train_") as workdir:
        cmd = [sys.executable, "-m", "tfvi.launch.train", *COMMON_TRAIN_FLAGS,
               *spec["train_flags"], f"--epochs={epochs}", "--export=false",
               "--plots=false", f"--workdir={workdir}/run"]
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        subprocess.run(cmd, check=True, stdout=log, stderr=log, env=env, cwd=ROOT)
        paths = sorted(glob.glob(f"{workdir}/run/checkpoints/epoch-*/state.json"))
        with open(paths[-1]) as f:
            state = json.load(f)
    wall, cpu = state.get("fit_epoch_seconds", []), state.get("fit_epoch_cpu_seconds", [])
    if len(wall) != epochs or state["epoch"] != epochs:
        raise RuntimeError(f"tfvi-train's last checkpoint has {len(wall)} epoch times at "
                           f"epoch {state['epoch']}; wanted {epochs}")
    steps = state["global_step"] // epochs
    return (steps * spec["batch_size"] * (epochs - 2), sum(wall[2:]), sum(cpu[2:]))


# ---------------------------------------------------------------- driver
def run_workload(name, spec, rounds, quick, log, skip=(), block_s=2.0):
    tmp = tempfile.mkdtemp(prefix="vs_pythae_")
    data_path = os.path.join(tmp, "x.npy")
    epochs = 1 if quick else spec["epochs"]
    tfw = Worker("tf", log)
    try:
        t0 = time.perf_counter()
        tf_info = tfw.ask(cmd="setup", workload=name, data_path=data_path)
        torchw = Worker("torch", log)
        try:
            torch_info = torchw.ask(cmd="setup", workload=name, data_path=data_path)
            setup_s = time.perf_counter() - t0
            # tfvi_fit: the workload's epochs per fit call; the others as many epochs
            # as take about `block_s` (Pythae under load: one epoch can take seconds).
            epoch_s = dict(tf_info["epoch_s"], **torch_info["epoch_s"])
            per_block = {v: epochs if v == "tfvi_fit" or quick else
                         max(1, min(epochs, round(block_s / max(t, 1e-6))))
                         for v, t in epoch_s.items()}
            owners = {v: tfw for v in tf_info["variants"]}
            owners.update({v: torchw for v in torch_info["variants"]})
            if spec["train_flags"]:
                owners["tfvi_train"] = None
            names = [v for v in owners if v not in skip]
            blocks = {v: [] for v in names}
            loads = []
            for r in range(rounds):
                for v in names[r % len(names):] + names[:r % len(names)]:
                    if v == "tfvi_train":
                        e = 3 if quick else spec["train_epochs"]
                        ex, wall, cpu = tfvi_train_block(spec, e, log)
                    else:
                        reply = owners[v].ask(cmd="run", variant=v, epochs=per_block[v])
                        ex, wall, cpu = reply["examples"], reply["wall"], reply["cpu"]
                    blocks[v].append(dict(examples=ex, wall=wall, cpu=cpu))
                    print(f"  {name} round {r + 1} {v:16} {ex / wall:9.0f} ex/s "
                          f"(cpu {cpu:.2f} s)", file=sys.stderr, flush=True)
                loads.append(os.getloadavg())
        finally:
            torchw.close()
    finally:
        tfw.close()
    rows = {}
    for v, bs in blocks.items():
        rates = [b["examples"] / b["wall"] for b in bs]
        rows[v] = dict(examples_per_s=statistics.median(rates), min=min(rates),
                       max=max(rates),
                       cpu_s_per_1000=statistics.median(1e3 * b["cpu"] / b["examples"]
                                                        for b in bs),
                       blocks=bs)
    result = dict(label=spec["label"], rows=rows, load_avg_per_round=loads,
                  setup_s=setup_s, tf=tf_info["info"], torch=torch_info["info"],
                  epochs_per_block=per_block, warm_epoch_s=epoch_s)
    result["ratios"] = ratios(rows, tf_info["info"], spec)
    return result


def ratios(rows, info, spec):
    rate = lambda v: rows[v]["examples_per_s"] if v in rows else None  # noqa: E731
    out = {}
    pairs = [("tfvi_fit", "pythae_trainer"), ("tfvi_fit", "pythae_step"),
             ("tfvi_train", "pythae_trainer"), ("tfvi_fit", "tfvi_bare"),
             ("tfvi_train", "tfvi_bare"), ("tfvi_bare", "pythae_step"),
             ("tfvi_bare_graph", "tfvi_bare")]
    for a, b in pairs:
        if rate(a) and rate(b):
            out[f"{a}/{b}"] = rate(a) / rate(b)
    gemm = [rate(v) for v in ("gemm_xla", "gemm_graph") if rate(v)]
    if gemm:
        ceiling = max(gemm)
        out["ceiling_examples_per_s"] = ceiling
        out["ceiling_gflops"] = ceiling / spec["batch_size"] * info["step_flops"] / 1e9
        for v in ("tfvi_fit", "tfvi_train", "tfvi_bare", "pythae_trainer"):
            if rate(v):
                out[f"{v}/ceiling"] = rate(v) / ceiling
    return out


def print_table(name, result):
    print(f"\n{result['label']}")
    print(f"{'variant':<17}{'ex/s':>9}{'min-max':>16}{'CPU s/1000 ex':>15}")
    for v, row in result["rows"].items():
        print(f"{v:<17}{row['examples_per_s']:>9.0f}"
              f"{row['min']:>8.0f}-{row['max']:<7.0f}{row['cpu_s_per_1000']:>15.3f}")
    print("  " + ", ".join(f"{k} {v:.2f}" if v < 100 else f"{k} {v:.0f}"
                           for k, v in result["ratios"].items()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="digits,iwae784,resnet")
    parser.add_argument("--rounds", type=int, default=0, help="0: each workload's default")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds, 1 epoch")
    parser.add_argument("--worker", choices=("tf", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--torch_threads", type=int, default=2,
                        help="torch intra-op threads (2: the machine's cores)")
    parser.add_argument("--skip", default="", help="variants not to time (comma separated)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    missing = [m for m in ("torch", "pythae") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"skipped: {' and '.join(missing)} not installed; Pythae is optional "
              "(pip install '.[pythae]' to compare).")
        return 0
    if args.torch_threads < 1:
        parser.error(f"--torch_threads must be a positive integer; got {args.torch_threads}")
    os.environ["VS_PYTHAE_TORCH_THREADS"] = str(args.torch_threads)
    names = args.workloads.split(",")
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"--workloads: unknown {unknown}; expected some of {list(WORKLOADS)}")
    out = args.out or os.path.join(RESULTS, "vs_pythae_quick.json" if args.quick
                                   else "vs_pythae.json")
    sys.path.insert(0, HERE)
    import report_io

    log_path = os.path.join(tempfile.mkdtemp(prefix="vs_pythae_"), "workers.log")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    report = dict(benchmark="vs_pythae", quick=args.quick, workloads={},
                  machine=dict(platform=platform.platform(), cpus=os.cpu_count()))
    load0, t0, c0 = os.getloadavg(), time.perf_counter(), time.process_time()
    with open(log_path, "w") as log:
        for name in names:
            spec = WORKLOADS[name]
            rounds = 2 if args.quick else (args.rounds or spec["rounds"])
            report["workloads"][name] = run_workload(name, spec, rounds, args.quick, log,
                                                      args.skip.split(","))
            print_table(name, report["workloads"][name])
            report_io.finish(dict(report, partial=True), out)  # kept if a later one fails
    children = os.times()
    report.update(wall_s=time.perf_counter() - t0,
                  cpu_s=children.children_user + children.children_system
                  + time.process_time() - c0,
                  load_avg_before=load0, load_avg_after=os.getloadavg())
    report_io.finish(report, out, load0)
    print(f"wrote {out} (worker logs: {log_path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
