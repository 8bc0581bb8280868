"""MultiWorkerMirroredStrategy with two worker processes on 127.0.0.1 through the
launcher (`tfvi-train --strategy=multi_worker`, TF_CONFIG per process).

Ports are chosen free at test time, every process runs under `timeout` and is reaped
in a `finally`. Shows: two workers train and the chief's checkpoint resumes in a
single process; killing one worker makes the other stop with a clear error within a
bounded time, leaving the last complete checkpoint intact and resumable; two
`tfvi-eval --strategy=multi_worker` workers shard the AIS and IWAE evaluation of the
trained workdir and get the single-process numbers.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tfvi.launch import train as T

ARGS = ["--preset=smoke", "--noplots", "--noexport", "--eval_iwae_samples=10",
        "--eval_max_examples=40", "--batch_size=64"]
TIMEOUT = 420
KILL_EPOCHS = 12  # enough that the workers are still training at the kill


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _start_workers(workdir, tmpdir, extra, command=("tfvi.launch.train", "--workdir")):
    return _start_processes(tmpdir, lambda index: [
        "-m", command[0], "--strategy=multi_worker", f"{command[1]}={workdir}", *extra])


def _start_processes(tmpdir, args_of):
    """Two Python processes `python *args_of(i)`, worker i of one loopback cluster."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = dict(os.environ, TMPDIR=str(tmpdir), TF_CPP_MIN_LOG_LEVEL="2",
                   CUDA_VISIBLE_DEVICES="",
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            ["timeout", "-s", "KILL", str(TIMEOUT), sys.executable, *args_of(index)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True))  # own process group: kill reaches python, not only timeout
    return procs


def _kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(procs):
    for p in procs:
        _kill(p)
    for p in procs:
        p.communicate()


if "strategy" not in T.FLAGS:  # test_launch_train may have defined the flags already
    T.setup()


def _parse(*args):
    T.FLAGS.unparse_flags()
    T.FLAGS(["tfvi-train", *args])
    return T.FLAGS


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two workers train 2 epochs (with the SavedModel export, for tfvi-eval below)."""
    root = tmp_path_factory.mktemp("mw")
    workdir, tmpdir = root / "w", root / "tmp"
    tmpdir.mkdir()
    args = [a for a in ARGS if a != "--noexport"]
    procs = _start_workers(workdir, tmpdir, [*args, "--epochs=2", "--verbose=0"])
    try:
        outs = [p.communicate(timeout=TIMEOUT + 30) for p in procs]
    finally:
        _reap(procs)
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return workdir, tmpdir


def test_two_workers_train_and_chief_checkpoint_resumes_in_one_process(trained):
    workdir, tmpdir = trained
    ckpts = sorted(os.listdir(workdir / "checkpoints"))
    assert ckpts[-1] == "epoch-00002" and (workdir / "tensorboard").exists()
    assert (workdir / "export" / "saved_model.pb").exists()  # written by the chief
    assert os.listdir(tmpdir) == []  # the non-chief's temporary workdir is gone
    # Same flags, one process, default strategy: restores the chief's epoch-2 checkpoint.
    chief = json.loads((workdir / "metrics.json").read_text())
    metrics = T.train(_parse(f"--workdir={workdir}", *ARGS, "--epochs=2", "--verbose=0"))
    assert metrics["epochs_trained"] == 2
    # Same weights, same evaluation seeds: the same IWAE NLL as the chief computed.
    assert abs(metrics["test"]["nll"] - chief["test"]["nll"]) < 1e-3


# AIS at a tiny budget, in graph mode (an XLA compilation of the AIS loop costs ~30 s
# per process here; benchmarks/scaling.py runs the XLA path on two workers);
# --batch_size=4 over 10 examples: 3 AIS chunks and 3 IWAE batches per split, spread
# over the 2 workers (the last round padded).
EVAL_ARGS = ["--ais_temperatures=4", "--ais_chains=3", "--ais_leapfrog_steps=2",
             "--jit_compile=false", "--max_examples=10", "--batch_size=4",
             "--num_samples=12", "--metrics=elbo", "--verbose=0"]


def test_two_workers_shard_the_ais_and_iwae_evaluation_like_one_process(trained):
    """tfvi-eval --strategy=multi_worker: every worker gets the Ding & Freedman table (AIS
    NLL and IWAE NVLB on test and train, sharded over the workers); the chief's equals
    the single-process table computed with the same seeds."""
    from tfvi.launch import evaluate as E

    workdir, tmpdir = trained
    out = workdir / "eval_mw.json"
    procs = _start_workers(workdir, tmpdir, [*EVAL_ARGS, f"--output={out}"],
                           command=("tfvi.launch.evaluate", "--path"))
    try:
        E.define_flags()
        T.FLAGS.unparse_flags()
        T.FLAGS(["tfvi-eval", f"--path={workdir}", *EVAL_ARGS,
                 f"--output={workdir / 'eval_single.json'}"])
        single = E.evaluate(T.FLAGS)  # meanwhile, on one device in this process
        outs = [p.communicate(timeout=TIMEOUT + 30) for p in procs]
    finally:
        _reap(procs)
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    sharded = json.loads(out.read_text())
    assert sharded["settings"]["strategy"] == "multi_worker"
    assert sharded["settings"]["num_replicas"] == 2
    table, ref = sharded["ais_gap_table"], single["ais_gap_table"]
    for row in ("nll_test", "nll_train", "nvlb_test", "nvlb_train", "active_units"):
        assert np.isfinite(ref[row])
        assert table[row] == pytest.approx(ref[row], abs=1e-5), row
    assert table["ais_mean_acceptance"] == pytest.approx(ref["ais_mean_acceptance"],
                                                         rel=1e-5)
    assert sharded["metrics"]["ais_nll"] == pytest.approx(single["metrics"]["ais_nll"],
                                                          abs=1e-5)
    # Only the chief wrote; the non-chief's output is not anywhere in the workdir.
    assert sorted(p.name for p in workdir.glob("eval_*.json")) == ["eval_mw.json",
                                                                   "eval_single.json"]


def test_killed_worker_stops_the_other_with_a_clear_error(tmp_path):
    workdir, tmpdir = tmp_path / "w", tmp_path / "tmp"
    tmpdir.mkdir()
    procs = _start_workers(workdir, tmpdir, [*ARGS, f"--epochs={KILL_EPOCHS}", "--verbose=0",
                                             "--batch_size=16",
                                             "--worker_timeout_seconds=30"])
    try:
        ckpt_dir = workdir / "checkpoints"
        deadline = time.time() + TIMEOUT
        while time.time() < deadline and all(p.poll() is None for p in procs):
            if ckpt_dir.exists() and any(
                    (ckpt_dir / n / "state.json").exists() for n in os.listdir(ckpt_dir)):
                break
            time.sleep(0.5)
        assert all(p.poll() is None for p in procs), "a worker ended before the kill"
        _kill(procs[1])
        killed_at = time.time()
        _, err = procs[0].communicate(timeout=180)
        elapsed = time.time() - killed_at
    finally:
        _reap(procs)
    assert procs[0].returncode == 1, err[-3000:]
    # TF's heartbeat check ends it in about 25 s here; the backstop would at 60 s.
    assert elapsed < 90
    last = err.strip().splitlines()[-1]
    assert last.startswith("tfvi-train: error: training stopped: a worker") and \
        "checkpoint" in last and "resume" in last, err[-3000:]
    from tfvi.training.checkpointing import CheckpointManager

    done = CheckpointManager(str(workdir / "checkpoints")).checkpoints()
    assert done, "no complete checkpoint"
    assert done[-1][0] < KILL_EPOCHS
    # Resumes from the last complete checkpoint in one process and finishes the run.
    metrics = T.train(_parse(f"--workdir={workdir}", *ARGS, f"--epochs={KILL_EPOCHS}",
                             "--verbose=0", "--batch_size=16"))
    assert metrics["epochs_trained"] == KILL_EPOCHS


def test_two_workers_train_a_conv_vae_and_shard_its_iwae_like_one_device(tmp_path):
    """Issue 19 with --strategy=multi_worker: a conv VAE on 14x14 digit crops trains on
    two loopback workers (its loss on a fixed sample falls by more than 5 nats, the
    criterion of tests/test_images_vae.py), both end with the same weights, and the
    IWAE estimate sharded over the workers equals, on each worker, the one-device
    estimate of the trained weights in this process (same seeds: float round-off)."""
    from test_distribute import IMAGE_SAMPLES, conv_vae, image_data

    from tfvi.evaluation import iwae_log_likelihood

    outs = [tmp_path / f"worker{i}.npz" for i in range(2)]
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_distribute.py")
    procs = _start_processes(tmp_path, lambda i: [script, "image_worker", str(outs[i])])
    try:
        errs = [p.communicate(timeout=TIMEOUT + 30)[1] for p in procs]
    finally:
        _reap(procs)
    for p, err in zip(procs, errs):
        assert p.returncode == 0, err[-3000:]
    results = [dict(np.load(o)) for o in outs]
    assert all(int(r["num_replicas"]) == 2 for r in results)
    before, after = results[0]["losses"]
    assert np.isfinite(after) and after < before - 5.0, (before, after)
    weights = [[r[f"w{i}"] for i in range(sum(k.startswith("w") for k in r))]
               for r in results]
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    model = conv_vae()
    model.set_weights(weights[0])
    _, x_test = image_data()
    single = iwae_log_likelihood(model, x_test, num_samples=IMAGE_SAMPLES, batch_size=16,
                                 seed=0)
    assert np.all(np.isfinite(single))
    for r in results:
        np.testing.assert_allclose(r["estimate"], single, rtol=0, atol=1e-4)
