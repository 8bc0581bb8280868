"""The hvae reproduction scripts end to end in --smoke mode: every cell's JSON is
written, results.json holds the whole grid, and a rerun skips finished cells."""

import json
import os
import sys

import numpy as np
import pytest

from tests.helpers import experiment_script


def _cells(out):
    return sorted(f for f in os.listdir(os.path.join(out, "cells")) if f.endswith(".json"))


@pytest.mark.parametrize("name,flags,expected", [
    # The symmetric MIM on the conv HVAE is trained end to end by
    # tests/launch/test_launch_hvae.py; here the script's cells, table and resume.
    ("mim_hvae_tables", ["--models", "vae", "amim", "--in_process"],
     ["model=amim__seed=0", "model=vae__seed=0"]),
    # The default: each cell in a child process of its own (`--cell <key>`).
    ("pixelvae_table1", [], ["prior=normal__seed=0", "prior=realnvp__seed=0"]),
    ("mim_pca20", ["--latents", "2", "--in_process"], ["model=mim__latent=2__seed=0",
                                                       "model=vae__latent=2__seed=0"]),
])
def test_smoke_run_writes_every_cell_and_resumes(name, flags, expected, tmp_path, capsys):
    out = str(tmp_path / name)
    script = experiment_script(name)
    script.main(["--smoke", "--seeds", "0", "--out", out] + flags)
    assert _cells(out) == [f"{c}.json" for c in expected]
    # Cells that checkpoint their training (`hvae_cells.fit_cell`) keep their weights.
    weights = sorted(f for f in os.listdir(os.path.join(out, "cells")) if f.endswith(".h5"))
    checkpointed = name != "mim_pca20"
    assert weights == ([f"{c}.weights.h5" for c in expected] if checkpointed else [])
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


class _Kill(Exception):
    pass


def test_a_cell_killed_mid_training_resumes_at_its_next_epoch(tmp_path):
    """A run killed after epoch 2 of 4 resumes with epoch 2's weights and optimizer state,
    trains epochs 3-4 only, and the cell's clock adds both invocations."""
    import keras
    import numpy as np

    import tfvi
    hvae_cells = experiment_script("hvae_cells")
    out, cell = str(tmp_path), {"model": "vae", "seed": 0}
    x = (np.random.default_rng(0).random((64, 6)) < 0.5).astype("float32")
    seen = {}

    class Record(keras.callbacks.Callback):
        def __init__(self, kill):
            super().__init__()
            self.kill = kill

        def on_epoch_begin(self, epoch, logs=None):
            seen.setdefault("first_epoch", epoch)
            seen.setdefault("start", [w.numpy().copy() for w in
                                      self.model.optimizer.variables + self.model.weights])

        def on_epoch_end(self, epoch, logs=None):
            seen["end"] = [w.numpy().copy() for w in self.model.weights]
            if self.kill and epoch == 1:
                seen["killed"] = [w.numpy().copy() for w in
                                  self.model.optimizer.variables + self.model.weights]
                raise _Kill()

    def fit(kill):
        seen.pop("first_epoch", None), seen.pop("start", None)
        keras.utils.set_random_seed(1)
        model = tfvi.models.VAE(tfvi.layers.GaussianEncoder(2, hidden=(8,)),
                                tfvi.layers.BernoulliDecoder(6, hidden=(8,)),
                                input_dim=6, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
        initial_epoch, callbacks = hvae_cells.resume(model, out, cell)
        history = model.fit(x, epochs=4, batch_size=16, verbose=0, shuffle=False,
                            initial_epoch=initial_epoch, callbacks=callbacks + [Record(kill)])
        return model, history

    with pytest.raises(_Kill):
        fit(kill=True)
    model, history = fit(kill=False)
    assert seen["first_epoch"] == 2 and history.epoch == [2, 3]
    # Adam's step count, moments and the model's weights as they were after epoch 2.
    assert int(seen["start"][0]) == 2 * 4
    for killed, restored in zip(seen["killed"], seen["start"]):
        np.testing.assert_array_equal(killed, restored)
    assert int(model.optimizer.iterations.numpy()) == 4 * 4

    with open(os.path.join(hvae_cells.backup_dir(out, cell), "clock.json")) as f:
        clock = json.load(f)
    rows = hvae_cells.run_cells(out, [cell], lambda c: {"nll": 1.0})
    assert 0 < clock["cpu_s"] <= rows[0]["cpu_s"] and 0 < clock["wall_s"] <= rows[0]["wall_s"]
    assert not os.path.exists(hvae_cells.backup_dir(out, cell))
    # The trained weights stay with the cell's JSON, for analyses after the grid.
    model.load_weights(hvae_cells.weights_path(out, cell))
    for trained, kept in zip(seen["end"], model.weights):
        np.testing.assert_array_equal(trained, kept.numpy())
    # A run killed after the JSON but before that move: the rerun finishes the move.
    kept = hvae_cells.weights_path(out, cell)
    ckpt = os.path.join(hvae_cells.backup_dir(out, cell), "checkpoints", "epoch-00004")
    os.makedirs(ckpt)
    os.replace(kept, os.path.join(ckpt, "model.weights.h5"))
    hvae_cells.run_cells(out, [cell], lambda c: {"nll": 2.0}, report_only=True)
    assert os.path.isdir(ckpt)  # --report moves nothing
    assert hvae_cells.run_cells(out, [cell], lambda c: {"nll": 2.0})[0]["nll"] == 1.0
    assert os.path.exists(kept) and not os.path.exists(hvae_cells.backup_dir(out, cell))


def test_each_missing_cell_runs_in_a_child_process_and_a_failed_child_stops_the_grid(
        tmp_path):
    """`run_cells` with a child command: the child gets `--cell <key>` and writes the
    cell's JSON, which the parent reads (it never calls `run_cell`); a child that
    fails stops the grid with one line naming the cell; `only` runs one cell and
    refuses a key that is not in the grid."""
    hvae_cells = experiment_script("hvae_cells")
    out = str(tmp_path)
    cells = [{"model": "vae", "seed": 0}, {"model": "mim", "seed": 0}]
    child = [sys.executable, "-c",
             "import json, os, sys; key = sys.argv[sys.argv.index('--cell') + 1]; "
             f"json.dump({{'key': key, 'pid': os.getpid()}}, "
             f"open(os.path.join({out!r}, 'cells', key + '.json'), 'w'))"]

    def never(cell):
        raise AssertionError("the parent ran a cell")

    rows = hvae_cells.run_cells(out, cells, never, child_command=child)
    assert [r["key"] for r in rows] == ["model=vae__seed=0", "model=mim__seed=0"]
    assert all(r["pid"] != os.getpid() for r in rows) and rows[0]["pid"] != rows[1]["pid"]

    cells.append({"model": "amim", "seed": 0})
    with pytest.raises(SystemExit, match="cell model=amim__seed=0 failed in its process "
                       r"\(exit 3\); rerun"):
        hvae_cells.run_cells(out, cells, never,
                             child_command=[sys.executable, "-c", "raise SystemExit(3)"])
    one = hvae_cells.run_cells(out, cells, lambda c: {"nll": 2.0}, only="model=amim__seed=0")
    assert [r["model"] for r in one] == ["amim"] and one[0]["nll"] == 2.0
    with pytest.raises(SystemExit, match="--cell=model=x is not a cell of this grid"):
        hvae_cells.run_cells(out, cells, never, only="model=x")

    args = hvae_cells.base_parser("t", "o").parse_args(["--seeds", "1"])
    command = hvae_cells.cell_processes(args, "experiments/s.py", ["--seeds", "1"])
    assert command[0] == sys.executable and command[1].endswith("experiments/s.py")
    assert command[2:] == ["--seeds", "1"]
    for flags in (["--in_process"], ["--cell", "model=vae__seed=0"]):
        assert hvae_cells.cell_processes(hvae_cells.base_parser("t", "o").parse_args(flags),
                                         "s.py", flags) is None


def test_codes_of_the_kept_weights(tmp_path, capsys):
    """mim_hvae_codes.py reads a finished cell's kept weights (the bound's terms are
    finite, the statistics in range, codes.json holds the rows) and names a cell
    without weights."""
    out = str(tmp_path / "tables")
    experiment_script("mim_hvae_tables").main(
        ["--smoke", "--seeds", "0", "--models", "vae", "--in_process", "--out", out])
    rows = experiment_script("mim_hvae_codes").main(
        ["--smoke", "--out", out, "--seeds", "0", "1", "--models", "vae", "--images", "16"])
    assert "no weights: model=vae__seed=1.weights.h5" in capsys.readouterr().out
    assert [(r["model"], r["seed"]) for r in rows] == [("vae", 0)]
    row = rows[0]
    for key in ("log_likelihood", "log_prior", "log_posterior", "knn5_means"):
        assert np.isfinite(row[key])
    assert row["log_likelihood"] < 0 and 0 <= row["knn5_means"] <= 1
    assert row["posterior_std_z1"] > 0 and row["posterior_std_z2"] > 0
    with open(os.path.join(out, "codes.json")) as f:
        assert json.load(f)["rows"] == rows
