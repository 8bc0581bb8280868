"""tfvi-train: flags, workdir contents, refusal of foreign workdirs, resume after
SIGKILL, one-line errors for bad flags."""

import glob
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from absl import flags

from tests.helpers import parse as parse_flags
from tfvi.launch import train as T
from tfvi.launch.flags import FlagError

T.setup()
FLAGS = flags.FLAGS
TINY = ["--preset=smoke", "--jit_compile=false", "--eval_iwae_samples=50",
        "--eval_max_examples=200"]


def parse(*args):
    return parse_flags("tfvi-train", *args)


def run_cli(args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen([sys.executable, "-m", "tfvi.launch.train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """Starts a 12-epoch run, SIGKILLs it after its 2nd checkpoint, reruns it."""
    workdir = str(tmp_path_factory.mktemp("resume") / "w")
    args = TINY + ["--epochs=12", f"--workdir={workdir}", "--verbose=0",
                   "--checkpoint_every_seconds=0"]
    proc = run_cli(args + ["--noexport", "--noplots"])  # run-control flags only
    first = os.path.join(workdir, "checkpoints", "epoch-00002", "state.json")
    deadline = time.time() + 400
    while not os.path.exists(first) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    ckpt_dirs = glob.glob(os.path.join(workdir, "checkpoints", "epoch-*"))
    complete_after_kill = all(os.path.exists(os.path.join(d, "state.json")) and
                              os.path.exists(os.path.join(d, "model.weights.h5"))
                              for d in ckpt_dirs)
    states = [json.load(open(os.path.join(d, "state.json"))) for d in sorted(ckpt_dirs)]
    killed_epoch = max(s["epoch"] for s in states)
    rerun = run_cli(args)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-3000:]
    return dict(workdir=workdir, states=states, killed_epoch=killed_epoch, out=out,
                complete_after_kill=complete_after_kill, args=args)


def test_sigkill_leaves_only_complete_checkpoints(killed_and_resumed):
    assert killed_and_resumed["complete_after_kill"]
    assert 2 <= killed_and_resumed["killed_epoch"] < 12


def test_rerun_resumes_and_finishes(killed_and_resumed):
    metrics = json.load(open(os.path.join(killed_and_resumed["workdir"], "metrics.json")))
    assert metrics["epochs_trained"] == 12
    last = max(killed_and_resumed["states"], key=lambda s: s["epoch"])
    k = last["epoch"]
    # The history up to the kill is the killed run's own: training continued, not restarted.
    assert metrics["history"]["loss"][:k] == last["history"]["loss"]
    assert killed_and_resumed["out"] == ""  # --verbose=0 is quiet


def test_workdir_has_every_item(killed_and_resumed):
    w = killed_and_resumed["workdir"]
    metrics = json.load(open(os.path.join(w, "metrics.json")))
    for split in ("train", "test"):
        m = metrics[split]
        for key in ("loss", "siwae", "elbo", "reconstruction", "kl", "nll",
                    "iwae_50_log_likelihood", "active_units", "num_examples"):
            assert key in m, (split, key)
        assert m["nll"] > 0 and m["elbo"] <= -m["nll"] + 0.5
    assert metrics["estimators"]["nll"]["num_samples"] == 50
    assert metrics["versions"]["tensorflow"].startswith("2.")
    assert metrics["flags"]["epochs"] == 12 and metrics["flags"]["workdir"] == w
    assert metrics["wall_time_seconds"]["train"] > 0
    assert os.path.exists(os.path.join(w, "model.keras")) and metrics["run_complete"]
    assert sorted(os.listdir(os.path.join(w, "plots"))) == [
        "component_modes.png", "latent.png", "posterior_density.png", "reconstructions.png",
        "samples.png", "training_curves.png"]  # smoke: a 2-component mixture posterior
    assert glob.glob(os.path.join(w, "tensorboard", "train", "events.out.tfevents.*"))
    assert glob.glob(os.path.join(w, "tensorboard", "images", "events.out.tfevents.*"))
    assert os.path.exists(os.path.join(w, "export", "saved_model.pb"))
    assert os.path.exists(os.path.join(w, "export", "tfvi.json"))
    assert len(glob.glob(os.path.join(w, "checkpoints", "epoch-*"))) == 2  # --checkpoint_keep
    assert not glob.glob(os.path.join(w, "checkpoints", ".tmp-*"))


def test_resumed_run_matches_an_uninterrupted_one(killed_and_resumed, tmp_path, capsys):
    args = [a for a in killed_and_resumed["args"] if not a.startswith(("--workdir",
                                                                       "--verbose"))]
    metrics = T.train(parse(*args, f"--workdir={tmp_path / 'w'}", "--verbose=1",
                            "--noexport", "--noplots"))
    assert "Epoch 12/12" in capsys.readouterr().out  # Keras progress bar by default
    resumed = json.load(open(os.path.join(killed_and_resumed["workdir"], "metrics.json")))
    # Resume is exact (docs/reliability.md): state.json holds the sampling seed state
    # and the resumed run skips the seeded batch stream to its epoch, so the killed and
    # resumed run saw the same batches and noise as this one. 1e-6 relative allows
    # only float rounding (observed: bitwise equal); any lost or repeated step moves
    # the loss by ~0.1 nats.
    assert metrics["history"] == resumed["history"]
    for split in ("train", "test"):
        for key in ("nll", "elbo", "loss"):
            assert math.isclose(metrics[split][key], resumed[split][key], rel_tol=1e-6)
    first_loss = metrics["history"]["loss"][0]
    assert resumed["test"]["nll"] < first_loss  # both trained


@pytest.mark.parametrize("args, flag", [
    (["--epochs=-1"], "--epochs"),
    (["--latent_dim=0"], "--latent_dim"),
    (["--dataset=nope"], "--dataset"),
    (["--objective=iwae"], "--objective"),        # a 5-component mixture posterior
    (["--objective=nope"], "--objective"),
    (["--model=nope"], "--model"),
    (["--strategy=nope"], "--strategy"),
    (["--dataset=abs_toy", "--view=single_column"], "--view"),
    (["--dataset=mnist", "--data_dir={tmp}"], "--data_dir"),
    (["--encoder_hidden=10,x"], "--encoder_hidden"),
    (["--posterior=gaussian", "--components=3"], "--components"),
    (["--strategy=mirrored", "--jit_compile=true"], "--jit_compile"),
])
def test_bad_flags_name_the_flag_and_write_nothing(tmp_path, args, flag):
    workdir = tmp_path / "w"
    args = [a.format(tmp=tmp_path / "tfds") for a in args]
    with pytest.raises((FlagError, T.LaunchError)) as info:
        T.train(parse(*TINY, f"--workdir={workdir}", *args))
    message = str(info.value)
    assert flag in message and "\n" not in message
    assert "accepted" in message or "not found" in message
    assert not workdir.exists()


def test_cli_error_is_one_line_and_non_zero(tmp_path):
    workdir = tmp_path / "w"
    proc = run_cli([f"--workdir={workdir}", "--dataset=nope", "--epochs=2"])
    _, err = proc.communicate(timeout=300)
    ours = [line for line in err.splitlines() if line.startswith("tfvi-train")]
    assert proc.returncode == 2
    assert ours == [err.strip().splitlines()[-1]] and "--dataset='nope'" in ours[0]
    assert "digits" in ours[0] and not workdir.exists()


def test_unparsable_flag_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        T.parse_flags(["tfvi-train", "--epochs=abc"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1
    assert err.startswith("tfvi-train: error: flag --epochs=abc")


def test_workdir_with_other_flags_is_refused_unless_overwrite(tmp_path):
    workdir = tmp_path / "w"
    base = TINY + [f"--workdir={workdir}", "--epochs=1", "--verbose=0", "--noexport",
                   "--noplots"]
    T.train(parse(*base))
    with pytest.raises(T.LaunchError, match=r"different flags .*--latent_dim: 2 -> 3.*"
                                            r"--overwrite"):
        T.train(parse(*base, "--latent_dim=3"))
    metrics = T.train(parse(*base, "--latent_dim=3", "--overwrite"))
    assert metrics["flags"]["latent_dim"] == 3
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(T.LaunchError, match="not a tfvi workdir"):
        T.train(parse(*TINY, f"--workdir={tmp_path / 'other'}", "--overwrite"))
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_mirrored_strategy_trains_and_checkpoints(tmp_path):
    metrics = T.train(parse("--preset=smoke", "--strategy=mirrored", "--epochs=1",
                            "--eval_iwae_samples=20", "--eval_max_examples=50",
                            "--verbose=0", "--noplots", "--noexport",
                            f"--workdir={tmp_path / 'w'}"))
    assert metrics["epochs_trained"] == 1 and np.isfinite(metrics["test"]["nll"])
    assert len(list((tmp_path / "w" / "checkpoints").glob("epoch-*"))) == 1


def test_presets_fill_only_unset_flags():
    f = parse("--preset=smoke", "--epochs=5")
    T.tfvi_flags.apply_preset(f)
    assert f.epochs == 5 and f.latent_dim == 2 and f.encoder_hidden == ["32"]


def test_flagfile_is_read(tmp_path):
    path = tmp_path / "run.cfg"
    path.write_text("--epochs=3\n--latent_dim=4\n--objective=selbo\n")
    f = parse(f"--flagfile={path}")
    assert (f.epochs, f.latent_dim, f.objective) == (3, 4, "selbo")


def test_every_flag_has_help_text():
    for name in T.tfvi_flags.flag_dict(parse(), include_run_control=True):
        assert len(FLAGS[name].help) > 10, name


def test_learning_rate_schedules():
    from tfvi.launch import components

    f = parse("--lr_schedule=step", "--learning_rate=0.01", "--lr_decay_steps=100")
    lr = components.learning_rate(f, steps_per_epoch=10)
    assert np.isclose(float(lr(99)), 0.01) and np.isclose(float(lr(100)), 0.005)
    boundaries, values = components.burda_boundaries(1e-3)
    assert boundaries == [1, 4, 13, 40, 121, 364, 1093]  # 3^i passes, cumulative
    np.testing.assert_allclose(values, [1e-3 * 10 ** (-i / 7) for i in range(8)])
    lr = components.learning_rate(parse("--lr_schedule=burda"), steps_per_epoch=10)
    # one epoch (10 steps) at 1e-3, then 3 epochs at 1e-3 * 10^(-1/7), then 9 ...
    # (PiecewiseConstantDecay: a boundary step still has the earlier value)
    assert np.isclose(float(lr(10)), 1e-3) and np.isclose(float(lr(11)), 1e-3 * 10 ** (-1 / 7))
    assert np.isclose(float(lr(40)), 1e-3 * 10 ** (-1 / 7))
    assert np.isclose(float(lr(41)), 1e-3 * 10 ** (-2 / 7))


@pytest.mark.parametrize("preset,extra,plot", [
    ("single_column_digits_vib", ["--components=2", "--samples=2"], "reliability.png"),
    ("style_modality_digits", ["--components=2", "--samples=2", "--prior_components=2",
                               "--decoder_hidden=16"], "component_modes.png"),
])
def test_mixture_presets_write_their_figures(tmp_path, preset, extra, plot):
    """The VIB writes its reliability diagram and a mixture-posterior VAE its decoded
    component templates (Morningstar et al. B.1, C.3/C.7) into plots/."""
    workdir = tmp_path / "w"
    metrics = T.train(parse(f"--preset={preset}", *extra, "--epochs=1", "--verbose=0",
                            "--encoder_hidden=16", "--predict_samples=20",
                            "--eval_iwae_samples=10", "--eval_max_examples=40",
                            "--jit_compile=false", "--noexport", f"--workdir={workdir}"))
    assert f"plots/{plot}" in metrics["plots"]
    assert (workdir / "plots" / plot).stat().st_size > 1000


def test_abs_toy_command_exports_and_load_workdir_returns_the_trained_model(tmp_path):
    """The README's `tfvi-train --dataset=abs_toy --latent_dim=2 --components=4` (a
    known likelihood, no decoder parameters) completes its export, and
    `tfvi.load_workdir` gives back the trained model: its posterior equals the
    SavedModel's `encode` and the checkpoint-rebuilt model's (no model.keras)."""
    import shutil

    import tensorflow as tf

    import tfvi

    workdir = tmp_path / "w"
    metrics = T.train(parse("--dataset=abs_toy", "--latent_dim=2", "--components=4",
                            "--epochs=1", "--eval_iwae_samples=10",
                            "--eval_max_examples=50", "--jit_compile=false",
                            "--verbose=0", "--noplots", f"--workdir={workdir}"))
    assert metrics["run_complete"] and (workdir / "export" / "saved_model.pb").exists()
    loaded = tf.saved_model.load(str(workdir / "export"))
    draw = loaded.sample(tf.constant(5), tf.constant([1, 2]))
    assert draw["x"].shape == (5, 2) and np.all(np.isfinite(draw["x"].numpy()))
    model, spec = tfvi.load_workdir(str(workdir))
    assert spec["dataset"] == "abs_toy" and spec["likelihood"] == "known"
    x = np.random.default_rng(0).standard_normal((6, spec["input_dim"])).astype(np.float32)
    ours = model.encoder.posterior_parameters(tf.constant(x))
    exported = loaded.encode(tf.constant(x))
    shutil.move(str(workdir / "model.keras"), str(tmp_path / "aside.keras"))
    rebuilt, _ = tfvi.load_workdir(str(workdir))
    theirs = rebuilt.encoder.posterior_parameters(tf.constant(x))
    for k, v in ours.items():
        np.testing.assert_allclose(v.numpy(), exported[k].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(v.numpy(), theirs[k].numpy(), rtol=1e-5, atol=1e-6)


def test_mim_early_stopping_is_section_5s_through_the_resumable_callback():
    """--model=mim with a validation split stops with patience = the warm-up length,
    counted from the warm-up's end (Livne et al., section 5), by the launcher's
    checkpointed early stopping; --early_stopping_patience overrides the patience."""
    from types import SimpleNamespace

    from tfvi.launch.families import mim
    from tfvi.training import objective_settled_epoch

    with_validation = SimpleNamespace(eval_splits={"train": None, "validation": None})
    without = SimpleNamespace(eval_splits={"train": None})
    f = parse(*TINY, "--model=mim", "--mim_warmup_epochs=3")
    assert T.resumed_early_stopping(f, with_validation, None, {}).patience == 3
    assert objective_settled_epoch(mim.mim_callbacks(None, with_validation, f)) == 3
    assert T.resumed_early_stopping(f, without, None, {}) is None
    f = parse(*TINY, "--model=mim", "--mim_warmup_epochs=3", "--early_stopping_patience=5")
    assert T.resumed_early_stopping(f, with_validation, None, {}).patience == 5
    assert T.resumed_early_stopping(parse(*TINY), with_validation, None, {}) is None
