"""Shared test setup: quiet TF logs, and deterministic seeds per test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    keras.utils.set_random_seed(1234)
    yield


def pytest_configure(config):
    # tests/test_docs.py: the README's launcher lines (subprocesses; on by default).
    config.addinivalue_line(
        "markers", "docs_shell: runs the README's tfvi-train/tfvi-eval lines (shortened)")


@pytest.fixture(scope="session")
def smoke_workdir(tmp_path_factory):
    """A `tfvi-train --preset=smoke` workdir and the metrics its training wrote.

    One epoch, Gaussian posterior, IWAE objective (what AIS compares against), test metrics
    from IWAE-200 on the whole test split (what tfvi-eval must reproduce). Shared by
    tests/launch/test_launch_evaluate.py and test_launch_ais_eval.py, which leave its model
    and checkpoints as they are (they only add eval_*.json files):
    one training per pytest-xdist worker instead of one per file.
    """
    from tests.helpers import parse
    from tfvi.launch import evaluate, train

    train.setup()
    evaluate.define_flags()
    w = str(tmp_path_factory.mktemp("smoke") / "w")
    metrics = train.train(parse(
        "tfvi-train", "--preset=smoke", "--jit_compile=false", "--epochs=1",
        "--posterior=gaussian", "--components=1", "--objective=iwae",
        "--eval_iwae_samples=200", "--eval_max_examples=0", "--noplots", "--verbose=0",
        f"--workdir={w}"))
    return w, metrics
