"""Fault injection (issue 14): every case of the reliability report as a test that
asserts the clear one-line error or the full recovery, and that no earlier good file
changed (hashes before/after).

Kills, Ctrl-C and full disks land at named instants through `tfvi.training.faults`
(`TFVI_FAULT_KILL_AT`, `TFVI_FAULT_RAISE_AT`, `TFVI_FAULT_WAIT_AT`): no sleep depends
on machine speed. One smoke workdir is trained once per module and copied per test.
Run alone with `pytest -m faults`.
"""

import glob
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import tensorflow as tf

import tfvi
from tests.helpers import parse
from tfvi.launch import evaluate as E
from tfvi.launch import train as T
from tfvi.launch.flags import FlagError
from tfvi.training import atomic, lock

pytestmark = pytest.mark.faults

T.setup()
E.define_flags()
# 2 epochs of 15 steps, a checkpoint after each (not every 30 s, the default);
# checkpoint_keep=2 keeps both.
BASE = ["--preset=smoke", "--jit_compile=false", "--epochs=2", "--eval_iwae_samples=20",
        "--eval_max_examples=60", "--verbose=0", "--noplots", "--checkpoint_every_seconds=0"]
# Metrics of a resumed run equal an uninterrupted one's to this relative tolerance
# (docs/reliability.md; observed: bitwise equal).
RESUME_RTOL = 1e-6


def run_main(capsys, *args, prog="tfvi-train"):
    """Runs a launcher's `main` in-process; returns (exit status, our stderr lines)."""
    capsys.readouterr()
    parse(prog, *args)
    module = T if prog == "tfvi-train" else E
    try:
        module.main([prog])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.startswith(prog)]


# The launcher as a user's terminal starts it: Ctrl-C neither ignored nor blocked. A
# child inherits both from the test process (a pytest worker whose earlier tests may
# have left SIGINT blocked, as loky and multiprocessing do around their spawns), and
# Python then never raises KeyboardInterrupt, so the child is reset before it starts.
_AS_FROM_A_TERMINAL = (
    "import runpy, signal, sys; signal.pthread_sigmask(signal.SIG_UNBLOCK, "
    "{signal.SIGINT}); signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'tfvi-train'; runpy.run_module('tfvi.launch.train', run_name='__main__')")


def cli(args, env=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    return subprocess.Popen([sys.executable, "-c", _AS_FROM_A_TERMINAL, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def signal_state(pid):
    """The child's signal masks and, if py-spy is installed, its stacks: what a test
    that waited in vain for it to exit reports."""
    try:
        with open(f"/proc/{pid}/status") as f:
            state = "".join(line for line in f if line.startswith(("SigPnd", "ShdPnd",
                                                                    "SigBlk", "SigIgn")))
    except OSError as err:
        state = str(err)
    if shutil.which("py-spy"):
        spy = subprocess.run(["py-spy", "dump", "--pid", str(pid)], capture_output=True,
                             text=True, timeout=60, check=False)
        state += spy.stdout[-4000:] + spy.stderr[-500:]
    return state


def tree_hashes(path, skip=()):
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path)
            if not rel.startswith(skip):
                with open(full, "rb") as f:
                    out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out


def temporaries(path):
    return [p for p in glob.glob(os.path.join(path, "**", ".tmp-*"), recursive=True)]


def strict_json(path):
    def refuse(token):
        raise ValueError(f"non-strict JSON token {token}")

    with open(path) as f:
        return json.loads(f.read(), parse_constant=refuse)


def assert_same_metrics(a, b):
    assert a["history"] == b["history"]  # bitwise: same batches, same noise
    for split in ("train", "test"):
        for key in ("nll", "elbo", "loss"):
            assert math.isclose(a[split][key], b[split][key], rel_tol=RESUME_RTOL), (
                split, key, a[split][key], b[split][key])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    w = str(tmp_path_factory.mktemp("faults") / "base")
    metrics = T.train(parse("tfvi-train", *BASE, f"--workdir={w}"))
    return w, metrics


@pytest.fixture
def work(finished, tmp_path):
    w = str(tmp_path / "w")
    shutil.copytree(finished[0], w, symlinks=True)
    return w


# ------------------------------------------------ 1. corrupt checkpoints and flags
def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 3)


def _zero(path):
    size = os.path.getsize(path)
    with open(path, "wb") as f:
        f.write(b"\0" * size)


def _nan_weights(path):
    with h5py.File(path, "r+") as f:
        def poison(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" and obj.size:
                obj[...] = np.nan

        f.visititems(poison)


def _garbage_state(path):
    with open(os.path.join(os.path.dirname(path), "state.json"), "w") as f:
        f.write("{not json")


def _state_without_epoch(path):
    state_path = os.path.join(os.path.dirname(path), "state.json")
    state = json.load(open(state_path))
    del state["epoch"]
    json.dump(state, open(state_path, "w"))


@pytest.mark.parametrize("corrupt, reason", [
    (_truncate, "does not load"), (_zero, "does not load"), (_nan_weights, "non-finite"),
    (_garbage_state, "does not parse"), (_state_without_epoch, "has epoch None"),
])
def test_corrupt_newest_checkpoint_falls_back_to_an_older_one(finished, work, capsys,
                                                              corrupt, reason):
    os.remove(os.path.join(work, "metrics.json"))  # as if killed before the outputs
    ckpts = os.path.join(work, "checkpoints")
    good_before = tree_hashes(os.path.join(ckpts, "epoch-00001"))
    corrupt(os.path.join(ckpts, "epoch-00002", "model.weights.h5"))
    bad_before = tree_hashes(os.path.join(ckpts, "epoch-00002"))
    code, lines = run_main(capsys, *BASE, "--noexport", f"--workdir={work}")
    assert code == 0
    assert len(lines) == 1 and "skipped checkpoint epoch-00002" in lines[0], lines
    assert reason in lines[0] and "corrupt-epoch-00002" in lines[0]
    # The bad checkpoint is kept byte for byte, the good one untouched.
    assert tree_hashes(os.path.join(ckpts, "corrupt-epoch-00002")) == bad_before
    assert tree_hashes(os.path.join(ckpts, "epoch-00001")) == good_before
    # Epoch 2 was retrained from epoch 1: exactly the original run's numbers.
    assert_same_metrics(strict_json(os.path.join(work, "metrics.json")), finished[1])


def test_an_xla_run_resumed_after_epoch_2_ends_as_an_uninterrupted_one(tmp_path, capsys):
    """The launcher's XLA path (its stream fused into one block of 15 steps per
    epoch): a run resumed from its epoch-2 checkpoint skips exactly the finished
    epochs' batches and noise, so its history and metrics equal the uninterrupted
    run's bitwise. (A fault variable would force one step per call; here the kill is
    simulated by removing what a run killed during epoch 3 would not have written.)"""
    args = [a for a in BASE if not a.startswith("--jit_compile")] + [
        "--jit_compile=true", "--epochs=3", "--checkpoint_keep=3", "--noexport"]
    ref = str(tmp_path / "ref")
    code, _ = run_main(capsys, *args, f"--workdir={ref}")
    assert code == 0
    reference = strict_json(os.path.join(ref, "metrics.json"))
    assert reference["runtime"]["jit_compile"] is True
    w = str(tmp_path / "w")
    shutil.copytree(ref, w)
    os.remove(os.path.join(w, "metrics.json"))
    shutil.rmtree(os.path.join(w, "checkpoints", "epoch-00003"))
    code, _ = run_main(capsys, *args, f"--workdir={w}")
    assert code == 0
    resumed = strict_json(os.path.join(w, "metrics.json"))
    state = strict_json(os.path.join(w, "checkpoints", "epoch-00003", "state.json"))
    assert len(state["fit_epoch_seconds"]) == 1  # only epoch 3 was trained again
    assert_same_metrics(resumed, reference)


def test_early_stopped_run_resumed_from_any_checkpoint_ends_as_an_uninterrupted_one(
        tmp_path, capsys):
    """Early stopping's best epoch, wait and best weights are saved with each
    checkpoint: a run resumed after its best epoch stops at the same epoch (not
    `patience` epochs after the resume), one resumed after it stopped (killed during
    the evaluation) trains no further, and both evaluate the best epoch's weights, not
    the last. (Kills simulated as in the XLA test above: later checkpoints and the
    outputs removed.)"""
    args = [*BASE, "--epochs=8", "--checkpoint_keep=8", "--noexport",
            "--validation_fraction=0.2", "--early_stopping_patience=1",
            "--learning_rate=0.1"]  # a rate at which the validation loss soon rises
    ref = str(tmp_path / "ref")
    code, _ = run_main(capsys, *args, f"--workdir={ref}")
    assert code == 0
    reference = strict_json(os.path.join(ref, "metrics.json"))
    stopped_after = reference["epochs_trained"]
    best = int(np.argmin(reference["history"]["val_loss"])) + 1
    assert best < stopped_after < 8, (best, stopped_after)  # the test's premise
    for kept in range(1, stopped_after + 1):
        w = str(tmp_path / f"resumed_from_{kept}")
        shutil.copytree(ref, w)
        os.remove(os.path.join(w, "metrics.json"))
        os.remove(os.path.join(w, "model.keras"))
        for later in range(kept + 1, stopped_after + 1):
            shutil.rmtree(os.path.join(w, "checkpoints", f"epoch-{later:05d}"))
        code, _ = run_main(capsys, *args, f"--workdir={w}")
        assert code == 0
        resumed = strict_json(os.path.join(w, "metrics.json"))
        assert resumed["epochs_trained"] == stopped_after, kept
        assert sorted(os.listdir(os.path.join(w, "checkpoints"))) == sorted(
            os.listdir(os.path.join(ref, "checkpoints")))
        assert_same_metrics(resumed, reference)


def test_reevaluating_an_early_stopped_run_without_saved_state_is_refused(tmp_path,
                                                                         capsys):
    """A workdir stopped early by a tfvi whose checkpoints did not hold early stopping's
    state: its best weights are only in model.keras, so --reevaluate (which reads the
    checkpoints) refuses in one line and changes nothing, instead of training on."""
    args = [*BASE, "--epochs=8", "--noexport", "--validation_fraction=0.2",
            "--early_stopping_patience=1", "--learning_rate=0.1"]
    w = str(tmp_path / "w")
    code, _ = run_main(capsys, *args, f"--workdir={w}")
    assert code == 0 and strict_json(os.path.join(w, "metrics.json"))["epochs_trained"] < 8
    for ckpt in glob.glob(os.path.join(w, "checkpoints", "epoch-*")):  # as an older tfvi
        state = strict_json(os.path.join(ckpt, "state.json"))
        del state["early_stopping"]
        with open(os.path.join(ckpt, "state.json"), "w") as f:
            json.dump(state, f)
        for npz in glob.glob(os.path.join(ckpt, "*.npz")):
            os.remove(npz)
    before = tree_hashes(w)
    code, lines = run_main(capsys, *args, "--reevaluate", f"--workdir={w}")
    assert code != 0 and len(lines) == 1, lines
    assert "--reevaluate" in lines[0] and "tfvi-eval --path=" in lines[0]
    assert tree_hashes(w) == before


@pytest.mark.parametrize("content", ["{garbage", "[]"])
def test_garbage_flags_json_is_one_line_and_changes_nothing(work, capsys, content):
    with open(os.path.join(work, "flags.json"), "w") as f:
        f.write(content)
    before = tree_hashes(work)
    code, lines = run_main(capsys, *BASE, f"--workdir={work}")
    assert code == 1 and len(lines) == 1 and "flags.json" in lines[0]
    assert "--overwrite" in lines[0]
    assert tree_hashes(work) == before


# --------------------------------------------------------------- 2. the lock
def test_live_run_locks_out_a_second_run_overwrite_and_eval(finished, tmp_path, capsys):
    w = str(tmp_path / "live")
    release = str(tmp_path / "release")
    proc = cli([*BASE, "--noexport", f"--workdir={w}"],
               env={"TFVI_FAULT_WAIT_AT": f"train_batch@1.2:{release}"})
    deadline = time.time() + 600
    while not os.path.exists(release + ".reached") and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    before = tree_hashes(w)
    owner = lock.holder(w)
    assert owner["pid"] == proc.pid
    for extra in ([], ["--overwrite"]):
        code, lines = run_main(capsys, *BASE, "--noexport", f"--workdir={w}", *extra)
        assert code == 1 and len(lines) == 1, lines
        assert f"in use by a live run (pid {proc.pid}" in lines[0]
    code, lines = run_main(capsys, f"--path={finished[0]}", "--num_samples=5",
                           "--max_examples=5", f"--output={w}/eval_test.json",
                           prog="tfvi-eval")
    assert code == 1 and "live tfvi-train run holds" in lines[0]
    assert tree_hashes(w) == before
    open(release, "w").close()
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    assert strict_json(os.path.join(w, "metrics.json"))["epochs_trained"] == 2
    assert not os.path.exists(os.path.join(w, lock.LOCK_NAME))  # released


# ------------------------------------------- 3. temporaries, Ctrl-C, full disk
def test_sigint_during_export_is_one_line_exit_130_and_leaves_nothing(work, tmp_path):
    release = str(tmp_path / "never")
    export_before = tree_hashes(os.path.join(work, "export"))
    proc = cli([*BASE, f"--workdir={work}", "--reevaluate"],
               env={"TFVI_FAULT_WAIT_AT": f"export.before_rename:{release}"})
    deadline = time.time() + 600
    while not os.path.exists(release + ".reached") and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    assert temporaries(work)  # the new export is complete in its temporary directory
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        state = signal_state(proc.pid)
        proc.kill()
        pytest.fail(f"no exit 300 s after SIGINT:\n{state}\n{proc.communicate()[1][-2000:]}")
    assert proc.returncode == 130
    assert "Traceback" not in err
    ours = [line for line in err.splitlines() if line.startswith("tfvi-train")]
    assert len(ours) == 1 and "interrupted" in ours[0]
    assert temporaries(work) == []
    assert tree_hashes(os.path.join(work, "export")) == export_before


def test_sigkill_during_export_leaves_a_temporary_that_the_rerun_sweeps(work, capsys):
    export_before = tree_hashes(os.path.join(work, "export"))
    proc = cli([*BASE, f"--workdir={work}", "--reevaluate"],
               env={"TFVI_FAULT_KILL_AT": "export.before_rename"})
    proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL
    assert temporaries(work) and os.path.exists(os.path.join(work, lock.LOCK_NAME))
    assert tree_hashes(os.path.join(work, "export")) == export_before
    code, _ = run_main(capsys, *BASE, f"--workdir={work}")  # stale lock taken over
    assert code == 0 and temporaries(work) == []
    assert not os.path.exists(os.path.join(work, lock.LOCK_NAME))


def test_disk_full_during_export_names_path_and_bytes(finished, work, capsys,
                                                      monkeypatch):
    export_before = tree_hashes(os.path.join(work, "export"))
    monkeypatch.setenv("TFVI_FAULT_RAISE_AT", "export.before_rename:enospc")
    code, lines = run_main(capsys, *BASE, f"--workdir={work}", "--reevaluate")
    assert code == 1 and len(lines) == 1, lines
    assert "no space left" in lines[0] and os.path.join(work, "export") in lines[0]
    needed = int(lines[0].split("needs at least ")[1].split()[0])
    assert needed > 100_000  # the SavedModel's size, not a placeholder
    assert temporaries(work) == []  # the partial export does not keep the disk full
    assert tree_hashes(os.path.join(work, "export")) == export_before
    monkeypatch.delenv("TFVI_FAULT_RAISE_AT")
    code, _ = run_main(capsys, *BASE, f"--workdir={work}", "--reevaluate")
    assert code == 0
    assert_same_metrics(strict_json(os.path.join(work, "metrics.json")), finished[1])


def test_failing_optional_step_warns_and_keeps_the_metrics(finished, work, capsys,
                                                          monkeypatch):
    import tfvi.export

    def broken(*args, **kwargs):
        raise RuntimeError("simulated export failure")

    monkeypatch.setattr(tfvi.export, "export_model", broken)
    os.remove(os.path.join(work, "metrics.json"))
    code, lines = run_main(capsys, *BASE, f"--workdir={work}")
    assert code == 0 and len(lines) == 1
    assert "warning: export/ was not written" in lines[0] and "kept metrics.json" in lines[0]
    metrics = strict_json(os.path.join(work, "metrics.json"))
    assert metrics["run_complete"] is True
    assert_same_metrics(metrics, finished[1])


# --------------------------------------------------- 4. reruns and strict JSON
def test_finished_workdir_is_reported_and_left_unchanged(work, capsys):
    before = tree_hashes(work)
    code, lines = run_main(capsys, *BASE, f"--workdir={work}")
    assert code == 0 and len(lines) == 1 and "is finished" in lines[0]
    assert "--reevaluate" in lines[0]
    assert tree_hashes(work) == before


def test_reevaluate_rewrites_outputs_from_the_same_weights(finished, work, capsys):
    ckpts_before = tree_hashes(os.path.join(work, "checkpoints"))
    code, _ = run_main(capsys, *BASE, f"--workdir={work}", "--reevaluate")
    assert code == 0
    assert_same_metrics(strict_json(os.path.join(work, "metrics.json")), finished[1])
    assert tree_hashes(os.path.join(work, "checkpoints")) == ckpts_before


def test_reevaluating_the_test_split_alone_gives_the_same_test_metrics(finished, work,
                                                                       capsys):
    # --eval_splits is run control: the same weights, only the test split evaluated
    # (the Table 1 grid's saving), and each split's figures do not depend on the others.
    code, _ = run_main(capsys, *BASE, f"--workdir={work}", "--reevaluate", "--noexport",
                       "--eval_splits=test")
    assert code == 0
    metrics = strict_json(os.path.join(work, "metrics.json"))
    assert "train" not in metrics and "validation" not in metrics
    assert metrics["flags"]["eval_splits"] == ["test"]
    for key in ("nll", "elbo", "loss", "active_units", "knn5_accuracy"):
        assert math.isclose(metrics["test"][key], finished[1]["test"][key],
                            rel_tol=RESUME_RTOL), key


def test_non_finite_trained_weights_write_nothing(work, capsys, monkeypatch):
    from tfvi.training import workdir as workdir_lib

    before = tree_hashes(work)
    real, calls = workdir_lib.weights_finite, []

    def finite_checkpoint_then_nan(model):
        # 1st call: the restored checkpoint's check (valid); 2nd: the check before
        # any output is written, as if the weights had become NaN in between.
        calls.append(model)
        return real(model) if len(calls) == 1 else ["dense/kernel"]

    monkeypatch.setattr(workdir_lib, "weights_finite", finite_checkpoint_then_nan)
    code, lines = run_main(capsys, *BASE, f"--workdir={work}", "--reevaluate")
    assert code == 1 and "non-finite" in lines[-1] and "nothing was written" in lines[-1]
    assert tree_hashes(work) == before


# ------------------------------------------------------ 5. exported signatures
@pytest.fixture(scope="module")
def loaded(finished):
    return tf.saved_model.load(os.path.join(finished[0], "export"))


@pytest.mark.parametrize("num_samples, rule", [
    (0, "`num_samples` must be >= 1"), (-7, "`num_samples` must be >= 1"),
    (10**9, "`num_samples` must be <= MAX_NUM_SAMPLES = 100000")])
def test_export_refuses_bad_num_samples(loaded, num_samples, rule):
    x = tf.zeros([2, 64])
    with pytest.raises(tf.errors.InvalidArgumentError, match=rule):
        loaded.log_likelihood(x, tf.constant(num_samples))
    ok = loaded.log_likelihood(x, tf.constant(4))["log_likelihood"].numpy()
    assert ok.shape == (2,) and np.all(np.isfinite(ok))


def test_export_refuses_negative_n_and_data_outside_the_support(loaded):
    with pytest.raises(tf.errors.InvalidArgumentError, match="`n` must be >= 0"):
        loaded.sample(tf.constant(-1), tf.constant([1, 2]))
    assert loaded.sample(tf.constant(0), tf.constant([1, 2]))["z"].shape[0] == 0
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`x` .*\[0, 1\]"):
        loaded.elbo(tf.fill([2, 64], 5.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="`x` has a non-finite"):
        loaded.log_likelihood(tf.fill([2, 64], np.nan), tf.constant(4))


# ------------------------------------------------------------ 7. filesystem
def test_unusable_workdirs_are_one_line_before_anything_is_built(tmp_path, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    cases = [(str(a_file), "is a file"), ("", "is empty"),
             (str(a_file / "w"), "which is a file")]
    for workdir, match in cases:
        with pytest.raises(FlagError, match=match):
            T.train(parse("tfvi-train", *BASE, f"--workdir={workdir}"))
    assert a_file.read_text() == "mine"
    # Running as root, os.access always grants: simulate a read-only parent.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(FlagError, match="is not writable"):
        T.train(parse("tfvi-train", *BASE, f"--workdir={tmp_path / 'ro' / 'w'}"))
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_eval_bad_paths_are_one_line(finished, tmp_path, capsys):
    w = finished[0]
    args = ["--num_samples=5", "--max_examples=5"]
    code, lines = run_main(capsys, f"--path={w}", *args, f"--output={tmp_path}",
                           prog="tfvi-eval")
    assert code == 2 and "is a directory" in lines[0] and os.listdir(tmp_path) == []
    code, lines = run_main(capsys, f"--path={w}", "--max_examples=-1", prog="tfvi-eval")
    assert code == 2 and "--max_examples=-1" in lines[0]
    for damage, match in [("missing", "tfvi.json is missing"),
                          ("garbage_meta", "tfvi.json is not readable JSON"),
                          ("garbage_pb", "saved_model.pb does not load")]:
        export = str(tmp_path / damage)
        shutil.copytree(os.path.join(w, "export"), export)
        if damage == "missing":
            os.remove(os.path.join(export, "tfvi.json"))
        elif damage == "garbage_meta":
            open(os.path.join(export, "tfvi.json"), "w").write("{oops")
        else:
            open(os.path.join(export, "saved_model.pb"), "wb").write(b"\x00garbage")
        code, lines = run_main(capsys, f"--path={export}", *args, prog="tfvi-eval")
        assert code == 2 and len(lines) == 1 and match in lines[0], lines
        assert not os.path.exists(os.path.join(export, "eval_test.json"))
        assert temporaries(str(tmp_path)) == []


# ---------------------------------------------------------------- 8. smaller
@pytest.mark.parametrize("flag, rule", [
    ("--learning_rate=inf", "finite"), ("--beta=inf", "finite"),
    ("--checkpoint_every_seconds=nan", "finite"),
    ("--checkpoint_every_seconds=-1", "numbers >= 0"),
    ("--eval_splits=test,tset", "distinct names of train, validation, test"),
    ("--eval_splits=test,test", "distinct names")])
def test_bad_number_and_list_flags_are_refused(tmp_path, flag, rule):
    with pytest.raises(FlagError, match=flag.split("=")[0] + ".*" + rule):
        T.train(parse("tfvi-train", *BASE, flag, f"--workdir={tmp_path / 'w'}"))
    assert not (tmp_path / "w").exists()


def test_permissions_follow_the_umask(finished, tmp_path):
    mask = os.umask(0o027)
    try:
        atomic.write_json(str(tmp_path / "a.json"), {"x": 1})
        with atomic.directory(str(tmp_path / "d")) as tmp:
            open(os.path.join(tmp, "f"), "w").write("x")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "d" / "f").stat().st_mode & 0o777 == 0o640
    # The fixture's export and metrics were written under this process's umask.
    export = os.path.join(finished[0], "export")
    assert os.stat(export).st_mode & 0o777 == 0o777 & ~mask
    assert os.stat(os.path.join(export, "tfvi.json")).st_mode & 0o777 == 0o666 & ~mask
    metrics = os.path.join(finished[0], "metrics.json")
    assert os.stat(metrics).st_mode & 0o777 == 0o666 & ~mask


# ------------------------------------------------ the chain of eight SIGKILLs
KILLS = ["train_batch@1.3", "checkpoint.weights_written@1", "checkpoint.before_rename@1",
         "checkpoint.after_rename@2", "train_batch@3.15", "checkpoint.before_rename@3",
         "metrics.before_rename", "model.before_rename"]


def test_eight_sigkills_then_the_same_metrics_as_an_uninterrupted_run(tmp_path):
    args = [*BASE, "--epochs=3", "--noexport"]
    reference = T.train(parse("tfvi-train", *args, f"--workdir={tmp_path / 'ref'}"))
    w = str(tmp_path / "w")
    for point in KILLS:
        proc = cli([*args, f"--workdir={w}"], env={"TFVI_FAULT_KILL_AT": point})
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == -signal.SIGKILL, (point, err[-2000:])
        for ckpt in glob.glob(os.path.join(w, "checkpoints", "epoch-*")):
            state = strict_json(os.path.join(ckpt, "state.json"))
            assert state["epoch"] == int(ckpt[-5:])
            assert os.path.getsize(os.path.join(ckpt, "model.weights.h5")) > 0
        if os.path.exists(os.path.join(w, "metrics.json")):
            strict_json(os.path.join(w, "metrics.json"))
    proc = cli([*args, f"--workdir={w}"])
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    final = strict_json(os.path.join(w, "metrics.json"))
    assert final["run_complete"] and final["epochs_trained"] == 3
    assert_same_metrics(final, reference)
    assert temporaries(w) == [] and not glob.glob(os.path.join(w, "checkpoints", "corrupt-*"))
    model, spec = tfvi.load_workdir(w)
    assert spec["input_dim"] == 64 and model.latent_dim == 2
