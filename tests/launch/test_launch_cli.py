"""tfvi-train / tfvi-eval / tfvi-compare as a user meets them: per-family defaults
(explicit flags win and are validated), --help and --helpfull, the final table and
closing line, the burn-in progress bar, TensorBoard scalars/images/HParams read back
with the event reader, and one comparison table across workdirs."""

import csv
import glob
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from tests.helpers import parse as parse_flags
from tfvi.launch import compare
from tfvi.launch import train as T
from tfvi.launch.flags import FlagError

T.setup()
FLAGS = flags.FLAGS
# Tiny runs on the offline 2-D mixture (Livne et al.'s MIM toy) and digits.
GMM = ["--dataset=gmm2d", "--encoder_hidden=16", "--decoder_hidden=16", "--latent_dim=2",
       "--components=2", "--samples=2", "--epochs=2", "--batch_size=100",
       "--eval_iwae_samples=20", "--eval_max_examples=150", "--ksg_points=150",
       "--jit_compile=false", "--noexport"]


def parse(*args):
    return parse_flags("tfvi-train", *args)


def defaults_of(*args):
    f = parse(*args)
    T.tfvi_flags.apply_preset(f)
    T.tfvi_flags.validate(f)
    return f


# ------------------------------------------------------------ family defaults
def test_each_family_brings_its_defaults():
    f = defaults_of("--model=mim", "--dataset=gmm2d")
    assert f.objective == "mim"
    f = defaults_of("--model=vib", "--dataset=digits")
    # Morningstar et al. B.1: the label is the target and beta = 0.05.
    assert (f.target, f.beta) == ("label", 0.05)
    f = defaults_of("--model=aiwae")
    assert (f.objective, f.posterior, f.components) == ("iwae", "gaussian", 1)
    f = defaults_of("--model=vae")
    assert (f.objective, f.target, f.beta) == ("siwae", "input", 1.0)


def test_explicit_flags_win_and_are_still_validated():
    f = defaults_of("--model=vib", "--beta=1.0", "--objective=selbo")
    assert (f.beta, f.objective, f.target) == (1.0, "selbo", "label")
    with pytest.raises(FlagError, match=r"--objective='siwae' is not accepted"):
        defaults_of("--model=mim", "--objective=siwae")
    with pytest.raises(FlagError, match="--model=vib needs --target=label"):
        defaults_of("--model=vib", "--target=input")


def test_preset_of_the_family_wins_over_family_default_but_not_another_familys():
    f = defaults_of("--preset=single_column_digits_vib")
    assert f.beta == 0.05 and f.view == "single_column"
    # digits_siwae is a vae preset: with --model=mim the MIM objective is used.
    f = defaults_of("--preset=digits_siwae", "--model=mim")
    assert f.objective == "mim" and f.latent_dim == 8


def test_helpfull_shows_the_defaults_per_family():
    assert ("default per family: aiwae=iwae, amim=mim, mim=mim, vae=siwae, vib=siwae"
            in FLAGS["objective"].help)
    assert "vib=label" in FLAGS["target"].help and "vib=0.05" in FLAGS["beta"].help


def _cli(module, *args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_help_lists_tfvi_flags_and_eval_help_shows_its_own_defaults():
    out = _cli("tfvi.launch.train", "--help")  # absl exits 1 after printing help
    listed = out.stdout.split("\nflags:\n")[1]  # absl prints only key flags here
    for flag in ("--model:", "--objective:", "--workdir:", "--preset:", "--beta:"):
        assert flag in listed, flag
    assert "--helpfull:" not in listed  # absl's own flags stay in --helpfull
    out = _cli("tfvi.launch.evaluate", "--helpfull")
    text = out.stdout
    temps = text[text.index("--ais_temperatures:"):][:300]
    leap = text[text.index("--ais_leapfrog_steps:"):][:300]
    assert "(default: '0')" in temps and "(default: '10')" in leap
    assert "AIWAE" not in temps and "AIWAE" not in leap


# ------------------------------------------------- runs shared by the tests below
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny gmm2d runs: VAE seeds 0 and 1, MIM seed 0 (its stdout kept)."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, extra in (("vae0", ["--model=vae", "--seed=0"]),
                        ("vae1", ["--model=vae", "--seed=1", "--noplots"]),
                        ("mim0", ["--model=mim", "--seed=0", "--noplots"])):
        workdir = str(root / name)
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            metrics = T.train(parse(*GMM, *extra, f"--workdir={workdir}", "--verbose=2"))
        out[name] = dict(workdir=workdir, metrics=metrics, stdout=stdout.getvalue())
    return out


def test_vae_and_mim_report_the_same_representation_columns(runs):
    for name in ("vae0", "mim0"):
        test = runs[name]["metrics"]["test"]
        for key in ("ksg_mutual_information", "knn5_accuracy", "reconstruction_rmse"):
            assert np.isfinite(test[key]), (name, key)
    # gmm2d's test labels are the mixture component; chance is 1/num_components.
    assert runs["mim0"]["metrics"]["test"]["knn5_accuracy"] > 0.3


def test_final_table_and_closing_line(runs):
    workdir = runs["mim0"]["workdir"]
    out = runs["mim0"]["stdout"].splitlines()
    header = next(line for line in out if line.startswith("split"))
    for column in ("NLL(IWAE-20)", "MI(KSG)", "5-NN acc", "RMSE"):
        assert column in header
    test_row = next(line for line in out if line.startswith("test "))
    metrics = runs["mim0"]["metrics"]
    cells = dict(zip(header.replace("5-NN acc", "5-NN").split()[1:], test_row.split()[1:]))
    assert float(cells["MI(KSG)"]) == pytest.approx(
        metrics["test"]["ksg_mutual_information"], abs=5e-4)
    assert float(cells["5-NN"]) == pytest.approx(metrics["test"]["knn5_accuracy"], abs=5e-4)
    closing = out[-1]  # --noplots --noexport: neither is named
    assert closing.startswith(f"tfvi-train: wrote {workdir} (metrics.json, model.keras, "
                              "checkpoints/, tensorboard/) in ")
    plotted = runs["vae0"]["stdout"].splitlines()[-1]
    assert "(metrics.json, model.keras, checkpoints/, tensorboard/, plots/) in " in plotted


def test_vib_table_shows_accuracy_and_ece():
    from tfvi.launch import report
    from tfvi.launch.registry import MODELS

    metrics = {"test": {"loss": 1.0, "accuracy": 0.8125, "ece": 0.0625}}
    table = report.summary_table(metrics, 10, MODELS["vib"].summary_metrics).splitlines()
    assert table[0].split() == ["split", "loss", "accuracy", "ECE"]
    assert table[1].split() == ["test", "1.000", "0.812", "0.062"]


def test_burn_in_progress_bar_has_a_total_and_the_summary_its_own_line(capsys):
    from tfvi import layers, models
    from tfvi.training import burn_in

    model = models.VAE(layers.GaussianEncoder(2, hidden=(4,)),
                       layers.BernoulliDecoder(6, hidden=(4,)), input_dim=6, seed=0)
    x = (np.random.default_rng(0).random((30, 6)) < 0.5).astype(np.float32)
    burn_in.burn_in(model, x, epochs=1, batch_size=10, verbose=1)
    out = capsys.readouterr().out
    assert "Unknown" not in out and "3/3" in out  # 30 examples / batch 10
    assert any(line.startswith("burn-in epoch 1/1: loss") for line in out.splitlines())


# ------------------------------------------------------------------ tensorboard
def _events(directory):
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(
        str(directory), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    return acc


def test_tensorboard_has_learning_rate_and_hparams(runs):
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    tb = os.path.join(runs["vae0"]["workdir"], "tensorboard")
    train = _events(os.path.join(tb, "train"))
    lr = [tf.make_ndarray(e.tensor_proto) for e in train.Tensors("epoch_learning_rate")]
    np.testing.assert_allclose(lr, [1e-3, 1e-3])  # --learning_rate, constant schedule
    assert len(train.Tensors("epoch_loss")) == 2
    root = _events(tb)
    content = root.PluginTagToContent("hparams")
    infos = {}
    for tag, blob in content.items():
        data = plugin_data_pb2.HParamsPluginData.FromString(blob)
        infos[data.WhichOneof("data")] = data
    hparams = {k: v for k, v in infos["session_start_info"].session_start_info.hparams.items()}
    assert hparams["model"].string_value == "vae"
    assert hparams["latent_dim"].number_value == 2
    metric_tags = [m.name.tag for m in infos["experiment"].experiment.metric_infos]
    assert "hparams/test_nll" in metric_tags
    nll = [tf.make_ndarray(e.tensor_proto) for e in root.Tensors("hparams/test_nll")]
    assert nll == [pytest.approx(runs["vae0"]["metrics"]["test"]["nll"], rel=1e-6)]


def test_tensorboard_images_read_back(tmp_path):
    from tfvi import layers, models, training as callbacks

    model = models.VAE(layers.GaussianEncoder(2, hidden=(4,)),
                       layers.BernoulliDecoder(4, hidden=(4,)), input_dim=4, seed=0)
    x = (np.random.default_rng(0).random((8, 4)) < 0.5).astype(np.float32)
    cb = callbacks.ImageSummaries(str(tmp_path / "images"), x, x, (2, 2, 1))
    cb.set_model(model)
    cb.on_epoch_end(0)
    images = _events(tmp_path / "images")
    assert set(images.PluginTagToContent("images")) == {"samples", "reconstructions"}


def test_keras_tensorboard_callback_works_with_a_tfvi_model(tmp_path):
    import keras

    from tfvi import layers, models

    model = models.VAE(layers.GaussianEncoder(2, hidden=(4,)),
                       layers.BernoulliDecoder(6, hidden=(4,)), input_dim=6, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    x = (np.random.default_rng(0).random((20, 6)) < 0.5).astype(np.float32)
    model.fit(x, batch_size=10, epochs=2, verbose=0,
              callbacks=[keras.callbacks.TensorBoard(str(tmp_path / "tb"))])
    acc = _events(tmp_path / "tb" / "train")
    assert len(acc.Tensors("epoch_loss")) == 2


# ------------------------------------------------------------------- compare
def test_compare_groups_seeds_into_mean_std_and_writes_csv(runs, tmp_path):
    paths = [runs[n]["workdir"] for n in ("vae0", "vae1", "mim0")]
    columns, rows = compare.compare(paths)
    assert [r["label"] for r in rows] == ["model=vae objective=siwae",
                                          "model=mim objective=mim"]
    nll = [runs[n]["metrics"]["test"]["nll"] for n in ("vae0", "vae1")]
    mean, std, n = rows[0]["nll"]
    assert n == 2 and mean == pytest.approx(np.mean(nll))
    assert std == pytest.approx(np.std(nll, ddof=1))
    keys = [k for k, _ in columns]
    for key in ("nll", "ksg_mutual_information", "knn5_accuracy", "reconstruction_rmse"):
        assert key in keys and rows[1][key][2] == 1
    csv_path = tmp_path / "cmp.csv"
    out = _cli("tfvi.launch.compare", *[f"--path={p}" for p in paths], f"--csv={csv_path}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "± " in out.stdout and "(2)" in out.stdout
    table = list(csv.DictReader(open(csv_path)))
    assert [r["run"] for r in table] == [r["label"] for r in rows]
    assert float(table[0]["nll_mean"]) == pytest.approx(mean)
    assert not glob.glob(str(tmp_path / ".tmp-*"))


def test_compare_errors_are_one_line(runs, tmp_path):
    with pytest.raises(compare.CompareError, match=r"--path=.*nope does not exist"):
        compare.compare([runs["vae0"]["workdir"], str(tmp_path / "nope")])
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "flags.json").write_text("{}")
    with pytest.raises(compare.CompareError, match="unfinished run") as err:
        compare.compare([str(unfinished)])
    assert "\n" not in str(err.value)
    with pytest.raises(compare.CompareError, match="no 'validation' split"):
        compare.compare([runs["vae0"]["workdir"]], split="validation")


def test_docs_cli_training_lines_are_valid_commands():
    """docs/cli.md's tfvi-train lines parse and validate with their family's defaults
    (the docs test runs them; this cheap check catches a renamed flag at once)."""
    import pathlib
    import shlex

    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("tfvi-train ")]
    assert len(lines) >= 5
    for line in lines:
        f = defaults_of(*shlex.split(line)[1:])
        assert f.workdir.startswith("/tmp/cli-")
    compare_lines = [line for line in text.splitlines() if line.startswith("tfvi-compare ")]
    assert compare_lines and all("--path=" in line for line in compare_lines)
