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
