"""The launcher's run configuration: flags read and validated once into a frozen
`RunConfig`, model building a pure function of (config, data), families that are
independent plugins, and the paper-scale presets."""

import ast
import dataclasses
import math
import pathlib

import numpy as np
import pytest
from absl import flags

from tfvi.launch import config as run_config
from tfvi.launch import presets
from tfvi.launch import train as T
from tfvi.launch.flags import FlagError, read_config

T.setup()
FLAGS = flags.FLAGS
LAUNCH = pathlib.Path(T.__file__).parent


def config_of(*args):
    FLAGS.unparse_flags()
    FLAGS(["tfvi-train", *args])
    try:
        return read_config(FLAGS)
    finally:
        FLAGS.unparse_flags()


def imports_of(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
    return names


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_every_preset_parses_and_validates(name, tmp_path):
    config = config_of(f"--preset={name}", f"--workdir={tmp_path / 'w'}")
    for flag, value in presets.PRESETS[name].items():
        assert getattr(config, flag) == (tuple(value) if isinstance(value, list) else value)
        assert config.sources.get(flag) == "preset"


@pytest.mark.parametrize("architecture", ["dense_vae", "resnet_vae"])
@pytest.mark.parametrize("prior", ["normal", "realnvp"])
def test_xu_et_al_table1_presets_follow_appendix_b3(architecture, prior, tmp_path):
    """Xu et al. B.3: 40-d latent, batch 128, 2,400 epochs, KL warm-up over 100; the
    learning rate drops tenfold after 800 epochs on MNIST (from 1e-3) and after 1,600
    on StaticMNIST (from 1e-4); Real NVP prior of depth 20."""
    for data, dataset, train_size, lr, decay_epochs in (
            ("mnist", "mnist", 60000, 1e-3, 800),
            ("static_mnist", "binarized_mnist", 50000, 1e-4, 1600)):
        c = config_of(f"--preset=xu_table1_{architecture}_{prior}_{data}",
                      f"--workdir={tmp_path / 'w'}")
        assert (c.dataset, c.architecture, c.prior, c.latent_dim, c.batch_size) == (
            dataset, architecture, prior, 40, 128)
        assert (c.epochs, c.kl_warmup_epochs, c.lr_schedule) == (2400, 100, "step")
        assert math.isclose(c.learning_rate, lr) and math.isclose(c.lr_decay_rate, 0.1)
        assert c.lr_decay_steps == decay_epochs * math.ceil(train_size / c.batch_size)
        assert (c.prior_depth == 20) == (prior == "realnvp")
    assert "--data_dir" in FLAGS["preset"].help and "GPU" in FLAGS["preset"].help


def test_config_is_frozen_and_explicit_flags_win(tmp_path):
    c = config_of("--preset=smoke", "--epochs=5", f"--workdir={tmp_path / 'w'}")
    assert (c.epochs, c.latent_dim) == (5, 2)
    assert c.given("epochs") and not c.given("latent_dim")
    assert c.sources["latent_dim"] == "preset" and "epochs" not in c.sources
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.epochs = 3
    with pytest.raises(TypeError):
        c.values["epochs"] = 3
    with pytest.raises(AttributeError, match="no_such_flag"):
        c.no_such_flag  # noqa: B018
    stored = c.to_dict()
    assert "workdir" not in stored and "precision" not in stored  # run control
    assert stored["encoder_hidden"] == ["32"]  # JSON lists, as flags.json always held


def test_validation_is_one_pass_before_anything_runs(tmp_path):
    """Core flags, plugin Flag bounds, family and feature checks: all from
    `read_config`, each a one-line FlagError naming the flag."""
    for args, flag in ((["--epochs=0"], "--epochs"),
                       (["--precision=float64"], "--precision"),
                       (["--burn_in_epochs=-1"], "--burn_in_epochs"),
                       (["--model=aiwae", "--ais_temperatures=1"], "--ais_temperatures"),
                       (["--model=vib", "--target=input"], "--target"),
                       (["--objective=elbo", "--components=3"], "--objective"),
                       (["--workdir="], "--workdir")):
        with pytest.raises(FlagError, match=flag) as info:
            config_of(f"--workdir={tmp_path / 'w'}", *args)
        assert "\n" not in str(info.value)
    assert not (tmp_path / "w").exists()


def test_no_absl_in_the_config_registry_components_or_families():
    modules = [LAUNCH / "config.py", LAUNCH / "registry.py", LAUNCH / "components.py",
               LAUNCH / "presets.py", *sorted((LAUNCH / "families").glob("*.py"))]
    for path in modules:
        assert not any(name.startswith("absl") for name in imports_of(path)), path


def test_no_family_imports_another():
    for path in sorted((LAUNCH / "families").glob("*.py")):
        assert not any(name.startswith("tfvi.launch.families") for name in imports_of(path)), \
            path


def test_model_building_is_a_pure_function_of_config_and_data(tmp_path):
    """The stored configuration (flags.json plus run control) rebuilds the same model
    with the same initial weights: nothing else reaches the builders."""
    import keras

    from tfvi.launch import components
    from tfvi.launch.registry import MODELS

    c = config_of("--preset=smoke", f"--workdir={tmp_path / 'w'}")
    prepared = components.prepare_data(c)
    weights = []
    for config in (c, run_config.from_stored(c.to_dict(include_run_control=True))):
        keras.utils.set_random_seed(config.seed)
        model = MODELS[config.model].build(config, prepared)
        weights.append([v.numpy() for v in model.weights])
    assert len(weights[0]) == len(weights[1]) > 0
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


def test_train_timing_adds_this_fit_to_the_resumed_time():
    """`TrainTiming` writes earlier runs' time plus this fit's into the checkpoint
    state it holds (no closure over a later variable)."""
    import time

    from tfvi.training import TrainTiming

    state = {}
    timing = TrainTiming(state, previous_seconds=5.0)
    assert timing.seconds == 5.0 and state == {}
    timing.on_train_begin()
    time.sleep(0.05)
    timing.on_epoch_end(0)
    first = state["train_seconds"]
    assert 5.05 <= first < 5.0 + 60
    time.sleep(0.02)
    timing.on_epoch_end(1)
    assert state["train_seconds"] >= first + 0.02
