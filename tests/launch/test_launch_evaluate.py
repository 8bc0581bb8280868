"""tfvi-eval scores an export (or a workdir) with TensorFlow's loader and agrees with
the metrics tfvi-train wrote."""

import json
import os

import pytest

from tests.helpers import parse
from tfvi.launch import evaluate as E
from tfvi.launch import train as T

T.setup()
E.define_flags()


@pytest.fixture
def workdir(smoke_workdir):
    return smoke_workdir


def test_eval_on_workdir_matches_training_metrics(workdir, capsys):
    w, metrics = workdir
    out = E.evaluate(parse("tfvi-eval", f"--path={w}", "--num_samples=200"))
    printed = capsys.readouterr().out
    assert "iwae_200_log_likelihood" in printed and "elbo" in printed
    assert out["output"] == os.path.join(w, "eval_test.json")
    saved = json.load(open(out["output"]))
    assert saved["num_examples"] == metrics["test"]["num_examples"] == 297
    # Same estimator, same data, different seeds: agree up to Monte Carlo noise.
    assert abs(saved["metrics"]["nll"] - metrics["test"]["nll"]) < 0.15
    assert abs(saved["metrics"]["elbo"] - metrics["test"]["elbo"]) < 0.5
    assert saved["metrics"]["elbo"] < -saved["metrics"]["nll"]


def test_eval_on_export_dir_other_split_and_output(workdir, tmp_path):
    w, metrics = workdir
    output = str(tmp_path / "train.json")
    out = E.evaluate(parse("tfvi-eval", f"--path={w}/export", "--split=train",
                           "--max_examples=50", "--metrics=elbo", f"--output={output}",
                           "--verbose=0"))
    assert out["num_examples"] == 50 and set(out["metrics"]) == {"elbo"}
    assert json.load(open(output))["split"] == "train"


@pytest.mark.parametrize("args, flag", [
    (["--split=nope"], "--split"),
    (["--metrics=nope"], "--metrics"),
    (["--num_samples=0"], "--num_samples"),
])
def test_bad_eval_flags(workdir, args, flag):
    w, _ = workdir
    with pytest.raises(ValueError, match=flag):
        E.evaluate(parse("tfvi-eval", f"--path={w}", *args))


def test_eval_refuses_a_path_without_export(tmp_path):
    with pytest.raises(ValueError, match="--path"):
        E.evaluate(parse("tfvi-eval", f"--path={tmp_path}"))
