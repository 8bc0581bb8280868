"""tfvi-eval --ais_*: AIS log-likelihood and Ding & Freedman's table from a workdir's live
model (rebuilt from flags.json + the newest checkpoint); refused for a bare export."""

import json
import shutil

import numpy as np
import pytest

from tests.helpers import parse
from tfvi.launch import evaluate as E
from tfvi.launch import train as T

T.setup()
E.define_flags()
AIS = ["--ais_temperatures=30", "--ais_chains=4", "--ais_leapfrog_steps=3",
       "--max_examples=20", "--num_samples=200", "--metrics=iwae"]


@pytest.fixture(scope="module")
def workdir(smoke_workdir):
    return smoke_workdir[0]


@pytest.fixture(scope="module")
def ais_result(workdir):
    return E.evaluate(parse("tfvi-eval", f"--path={workdir}", *AIS, "--verbose=1"))


def test_ais_table_is_consistent_and_close_to_iwae(ais_result):
    m, table = ais_result["metrics"], ais_result["ais_gap_table"]
    assert np.isfinite(m["ais_nll"]) and m["ais_30_log_likelihood"] == -m["ais_nll"]
    assert m["ais_nll"] == pytest.approx(table["nll_test"])
    np.testing.assert_allclose(table["var_gap"], table["nvlb_test"] - table["nll_test"],
                               atol=1e-9)
    np.testing.assert_allclose(table["gen_gap"], table["nll_test"] - table["nll_train"],
                               atol=1e-9)
    # Both estimate the same log p(x) on the same 20 examples (2-d latent): a mean over
    # 20 examples of AIS-30 (4 chains) and IWAE-200 noise, each < 0.03 nats (measured
    # difference 0.008 nats); 0.15 nats is > 5 SE. A missing 1/C (log 4) is caught.
    assert abs(m["ais_nll"] - m["nll"]) < 0.15
    assert table["protocol"]["num_temperatures"] == 30
    assert table["protocol"]["num_chains"] == 4 and table["protocol"]["schedule"] == "linear"
    saved = json.load(open(ais_result["output"]))
    assert saved["ais_gap_table"]["nll_test"] == table["nll_test"]


def test_without_the_table_the_same_ais_estimate_alone(workdir, ais_result, tmp_path):
    # --noais_table: the test split's AIS with the table's seed and examples, nothing
    # on the train split.
    out = E.evaluate(parse("tfvi-eval", f"--path={workdir}", *AIS, "--noais_table",
                           "--verbose=0", f"--output={tmp_path / 'ais.json'}"))
    assert "ais_gap_table" not in out
    assert out["metrics"]["ais_nll"] == pytest.approx(ais_result["metrics"]["ais_nll"],
                                                      rel=1e-6, abs=1e-6)
    assert out["metrics"]["nll"] == pytest.approx(ais_result["metrics"]["nll"], rel=1e-6)
    saved = json.load(open(tmp_path / "ais.json"))
    assert "ais_gap_table" not in saved and saved["metrics"] == out["metrics"]


def test_ais_table_is_printed(workdir, capsys):
    E.evaluate(parse("tfvi-eval", f"--path={workdir}", *AIS, "--ais_temperatures=5",
                     "--ais_schedule=sigmoid", "--split=train", "--max_examples=5",
                     "--num_samples=20", "--verbose=1"))
    out = capsys.readouterr().out
    assert "Ding & Freedman table" in out and "nll_test" in out and "var_gap" in out
    assert "ais_5_log_likelihood" in out


def test_ais_is_off_by_default(workdir):
    out = E.evaluate(parse("tfvi-eval", f"--path={workdir}", "--max_examples=5",
                           "--num_samples=10", "--verbose=0"))
    assert "ais_gap_table" not in out and "ais_nll" not in out["metrics"]


def test_ais_on_bare_export_says_it_needs_a_workdir(workdir, tmp_path):
    bare = str(tmp_path / "export")
    shutil.copytree(f"{workdir}/export", bare)  # no flags.json / checkpoints beside it
    with pytest.raises(ValueError, match="AIS needs .*workdir"):
        E.evaluate(parse("tfvi-eval", f"--path={bare}", *AIS))


@pytest.mark.parametrize("args, flag", [
    (["--ais_temperatures=1"], "--ais_temperatures"),
    (["--ais_temperatures=10", "--ais_chains=0"], "--ais_chains"),
    (["--ais_temperatures=10", "--ais_schedule=cosine"], "--ais_schedule"),
])
def test_bad_ais_flags_name_the_flag(workdir, args, flag):
    with pytest.raises(ValueError, match=flag):
        E.evaluate(parse("tfvi-eval", f"--path={workdir}", *args))
