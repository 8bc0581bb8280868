"""`tfvi-train` of two versions of tfvi side by side: steady-state examples/s of the
same run, alternating (A B A B ...), so a change to the launcher's path is measured
against its predecessor in one run on the same machine state.

    python benchmarks/launcher_versions.py --before 23d2746            # digits, 4 rounds
    python benchmarks/launcher_versions.py --before HEAD~3 --rounds 6 --epochs 60

`--before` is any git revision of this repository; it is checked out into a temporary
worktree (removed at the end) and run with `PYTHONPATH` pointing at it, the current
tree the same way. Each round starts one `tfvi-train` process per version on the
digits VAE of `vs_pythae.py` (2x200 tanh, latent 8, batch 100, ELBO) for `--epochs`
epochs with the launcher's default checkpointing and summaries, and times epochs 3 to
the last from the checkpoint states: the per-epoch records `TrainTiming` keeps
(`fit_epoch_seconds`), or, in versions before them, the cumulative `train_seconds`
of a checkpoint written after every epoch (`--checkpoint_keep` = epochs). Prints a
table (median examples/s, min-max, CPU s per 1000 examples) and writes
`benchmarks/results/launcher_versions.json`.
"""

import argparse
import glob
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
sys.path.insert(0, HERE)
from vs_pythae import COMMON_TRAIN_FLAGS, WORKLOADS  # noqa: E402

FLAGS = COMMON_TRAIN_FLAGS + WORKLOADS["digits"]["train_flags"]


def steady(workdir, epochs, batch_size):
    """(examples, wall s, CPU s) of epochs 3..epochs of a finished workdir."""
    paths = sorted(glob.glob(os.path.join(workdir, "checkpoints", "epoch-*", "state.json")))
    states = [json.load(open(p)) for p in paths]
    last = states[-1]
    steps = last["global_step"] // epochs
    if "fit_epoch_seconds" in last:
        wall, cpu = last["fit_epoch_seconds"][2:], last["fit_epoch_cpu_seconds"][2:]
        return steps * batch_size * len(wall), sum(wall), sum(cpu)
    by_epoch = {s["epoch"]: s for s in states}
    if sorted(by_epoch) != list(range(1, epochs + 1)):
        raise RuntimeError(f"{workdir}: wanted a checkpoint per epoch, got {sorted(by_epoch)}")
    first = by_epoch[2]
    return (steps * batch_size * (epochs - 2), last["train_seconds"] - first["train_seconds"],
            last["fit_cpu_seconds"] - first["fit_cpu_seconds"])


def run(tree, epochs, log):
    with tempfile.TemporaryDirectory(prefix="launcher_versions_") as tmp:
        workdir = os.path.join(tmp, "run")
        cmd = [sys.executable, "-m", "tfvi.launch.train", *FLAGS, f"--epochs={epochs}",
               f"--checkpoint_keep={epochs}", "--export=false", "--plots=false",
               f"--workdir={workdir}"]
        env = dict(os.environ, PYTHONPATH=tree, TF_CPP_MIN_LOG_LEVEL="2")
        subprocess.run(cmd, check=True, stdout=log, stderr=log, env=env, cwd=tree)
        return steady(workdir, epochs, WORKLOADS["digits"]["batch_size"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=60, help="epochs per run (>= 3)")
    parser.add_argument("--out", default=os.path.join(HERE, "results",
                                                      "launcher_versions.json"))
    args = parser.parse_args(argv)
    if args.epochs < 3:
        parser.error(f"--epochs must be at least 3; got {args.epochs}")
    if args.rounds < 1:
        parser.error(f"--rounds must be a positive integer; got {args.rounds}")
    try:
        rev = subprocess.run(["git", "rev-parse", "--verify", args.before + "^{commit}"],
                             cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    except subprocess.CalledProcessError:
        parser.error(f"--before={args.before} is not a git revision of {ROOT}")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    worktree = tempfile.mkdtemp(prefix="launcher_before_")
    subprocess.run(["git", "worktree", "add", "--detach", worktree, rev], cwd=ROOT,
                   check=True, capture_output=True)
    trees = {"before": worktree, "after": ROOT}
    blocks = {name: [] for name in trees}
    loads, t0 = [], time.perf_counter()
    log_path = os.path.join(tempfile.mkdtemp(prefix="launcher_versions_"), "runs.log")
    try:
        with open(log_path, "w") as log:
            for r in range(args.rounds):
                for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
                    ex, wall, cpu = run(trees[name], args.epochs, log)
                    blocks[name].append(dict(examples=ex, wall=wall, cpu=cpu))
                    print(f"  round {r + 1} {name:6} {ex / wall:9.0f} ex/s", file=sys.stderr,
                          flush=True)
                loads.append(os.getloadavg())
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", worktree], cwd=ROOT,
                       capture_output=True)
    rows = {}
    for name, bs in blocks.items():
        rates = [b["examples"] / b["wall"] for b in bs]
        rows[name] = dict(examples_per_s=statistics.median(rates), min=min(rates),
                          max=max(rates), cpu_s_per_1000=statistics.median(
                              1e3 * b["cpu"] / b["examples"] for b in bs), blocks=bs)
    ratio = rows["after"]["examples_per_s"] / rows["before"]["examples_per_s"]
    print(f"\ntfvi-train, digits VAE, epochs 3..{args.epochs}, {args.rounds} rounds")
    print(f"{'version':<28}{'ex/s':>9}{'min-max':>18}{'CPU s/1000 ex':>15}")
    for name, commit in (("before", rev), ("after", head)):
        row = rows[name]
        print(f"{name + ' ' + commit[:10]:<28}{row['examples_per_s']:>9.0f}"
              f"{row['min']:>9.0f}-{row['max']:<8.0f}{row['cpu_s_per_1000']:>15.3f}")
    print(f"after/before {ratio:.2f}")
    report = dict(benchmark="launcher_versions", before=rev, after=head,
                  after_dirty=bool(subprocess.run(["git", "status", "--porcelain"], cwd=ROOT,
                                                  capture_output=True, text=True).stdout),
                  epochs=args.epochs, rounds=args.rounds, rows=rows,
                  after_over_before=ratio, load_avg_per_round=loads,
                  wall_s=time.perf_counter() - t0,
                  machine=dict(platform=platform.platform(), cpus=os.cpu_count()))
    import report_io

    report_io.finish(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
