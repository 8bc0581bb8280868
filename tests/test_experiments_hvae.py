"""The hvae reproduction scripts end to end in --smoke mode: every cell's JSON is
written, results.json holds the whole grid, and a rerun skips finished cells."""

import json
import os
import sys

import pytest

from tests.helpers import experiment_script


def _cells(out):
    return sorted(os.listdir(os.path.join(out, "cells")))


@pytest.mark.parametrize("name,flags,expected", [
    ("mim_hvae_tables", [], ["model=amim__seed=0", "model=mim__seed=0", "model=vae__seed=0"]),
    ("pixelvae_table1", [], ["prior=normal__seed=0", "prior=realnvp__seed=0"]),
    ("mim_pca20", ["--latents", "2"], ["model=mim__latent=2__seed=0",
                                        "model=vae__latent=2__seed=0"]),
])
def test_smoke_run_writes_every_cell_and_resumes(name, flags, expected, tmp_path, capsys):
    out = str(tmp_path / name)
    script = experiment_script(name)
    script.main(["--smoke", "--seeds", "0", "--out", out] + flags)
    assert _cells(out) == [f"{c}.json" for c in expected]
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert len(results["cells"]) == len(expected) and results["cpu_s"] > 0
    for row in results["cells"]:
        assert row["wall_s"] > 0 and row["cpu_s"] > 0
        metrics = [v for k, v in row.items() if k in script.METRICS]
        assert len(metrics) == len(script.METRICS)
    stamps = {c: os.path.getmtime(os.path.join(out, "cells", c)) for c in _cells(out)}
    capsys.readouterr()
    script.main(["--smoke", "--seeds", "0", "--out", out] + flags)
    assert capsys.readouterr().out.count("done before:") == len(expected)
    assert stamps == {c: os.path.getmtime(os.path.join(out, "cells", c))
                      for c in _cells(out)}
