"""`--report` on the resumable reproductions: it summarises the cells on disk, lists the
missing ones and trains nothing, so a grid that spans several sessions can be tabled
while it runs."""

import json
import os
import sys

from tests.helpers import experiment_script


def _fake_cell(root, name, nll, elbo, ais_nll, seconds=(100.0, 50.0, 5.0, 30.0)):
    workdir = os.path.join(root, "table1_xu", name)
    os.makedirs(workdir)
    test = {"nll": nll, "elbo": elbo, "reconstruction": elbo + 20.0, "kl": 20.0,
            "active_units": 40}
    with open(os.path.join(workdir, "metrics.json"), "w") as fh:
        json.dump({"test": test, "wall_time_seconds": dict(zip(
            ("train", "evaluation", "optional_steps"), seconds[:3]))}, fh)
    with open(os.path.join(workdir, "eval_ais.json"), "w") as fh:
        json.dump({"metrics": {"ais_nll": ais_nll}, "seconds": seconds[3]}, fh)


def test_table1_report_tables_finished_cells_and_trains_nothing(tmp_path, capsys):
    root = str(tmp_path)
    _fake_cell(root, "dense_vae_normal_s0", nll=118.0, elbo=-126.5, ais_nll=115.0)
    _fake_cell(root, "dense_vae_realnvp_s0", nll=110.0, elbo=-115.0, ais_nll=108.0)
    _fake_cell(root, "dense_vae_normal_s1", nll=119.0, elbo=-127.5, ais_nll=116.0)
    sys_argv = sys.argv
    sys.argv = ["table1_xu.py", "--report", "--results_dir", root]
    try:
        experiment_script("table1_xu").main()
    finally:
        sys.argv = sys_argv
    out = capsys.readouterr().out
    assert out.count("missing:") == 15
    rows = {line.split("  ")[0]: line.split() for line in out.splitlines()
            if line.startswith("dense_vae + ")}
    assert rows["dense_vae + normal"][3:5] == ["2", "118.50"]
    assert rows["dense_vae + realnvp"][3:5] == ["1", "110.00"]
    assert "missing: dense_vae_realnvp_s1" in out
    with open(os.path.join(root, "table1_xu.json")) as fh:
        result = json.load(fh)
    assert result["complete"] is False
    # Each cell's time as its workdir recorded it (all sessions), not this invocation's.
    assert result["cell_wall_seconds"]["dense_vae + normal"] == [185.0, 185.0]
    normal = result["cells"]["dense_vae"]["normal"]
    assert normal["nll"]["values"] == [118.0, 119.0]
    # Table 7's kl_z|x is the bound's gap -elbo - NLL, never negative.
    assert normal["kl_z|x"]["values"] == [8.5, 8.5]
    # One seed of Real NVP: no standard-error ordering can be claimed yet.
    assert not any("2 SE" in name for name in result["orderings"])
    assert sorted(os.listdir(os.path.join(root, "table1_xu"))) == [
        "dense_vae_normal_s0", "dense_vae_normal_s1", "dense_vae_realnvp_s0"]


def test_hvae_report_lists_missing_cells_and_trains_nothing(tmp_path, capsys):
    out = str(tmp_path / "pca20")
    os.makedirs(os.path.join(out, "cells"))
    row = {"model": "vae", "latent": 2, "seed": 0, "ksg_mi": 2.0, "nll": 30.0, "recon": 0.9,
           "knn5": 0.6, "wall_s": 10.0, "cpu_s": 12.0, "load_average": [1.0, 1.0, 1.0]}
    with open(os.path.join(out, "cells", "model=vae__latent=2__seed=0.json"), "w") as fh:
        json.dump(row, fh)
    table = experiment_script("mim_pca20").main(
        ["--smoke", "--seeds", "0", "--latents", "2", "--out", out, "--report"])
    printed = capsys.readouterr().out
    assert "missing: model=mim__latent=2__seed=0" in printed
    assert sorted(os.listdir(os.path.join(out, "cells"))) == ["model=vae__latent=2__seed=0.json"]
    assert [(e["model"], e["seeds"], e["nll"]) for e in table] == [("vae", 1, [30.0, 0.0])]


def test_table1_trains_only_the_chosen_part_and_tables_every_finished_cell(
        tmp_path, monkeypatch, capsys):
    root = str(tmp_path)
    _fake_cell(root, "dense_vae_normal_s0", nll=118.0, elbo=-126.5, ais_nll=115.0)
    script = experiment_script("table1_xu")
    launched = []

    def fake_run(args):  # leaves what a finished training and AIS evaluation would
        workdir = next(a for a in args if a.startswith("--workdir="))
        launched.append(os.path.basename(workdir))
        _fake_cell(root, os.path.basename(workdir), nll=120.0, elbo=-128.0, ais_nll=117.0)

    monkeypatch.setattr(script, "run", fake_run)
    monkeypatch.setattr(sys, "argv", ["table1_xu.py", "--results_dir", root,
                                      "--architectures", "dense_vae", "--seeds", "1"])
    script.main()
    assert launched == ["dense_vae_normal_s1", "dense_vae_realnvp_s1"]
    out = capsys.readouterr().out
    assert "missing: conv_vae_normal_s0" in out and "missing: dense_vae_normal_s2" in out
    with open(os.path.join(root, "table1_xu.json")) as fh:
        result = json.load(fh)
    assert result["cells"]["dense_vae"]["normal"]["nll"]["values"] == [118.0, 120.0]
