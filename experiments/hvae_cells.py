"""What the hvae reproduction scripts share: resumable cells, timing, mean +- std tables.

A *cell* is one trained model (a dict such as `{"model": "mim", "seed": 0}`). Each cell
writes `<out>/cells/<key>.json` when it is done (via a temporary file, so a killed run
leaves no half-written cell) and is skipped when the script is run again, so a long
reproduction resumes where it stopped. Training inside a cell resumes too: trained by
`fit_cell` (or with `resume`'s epoch and callbacks in its own `fit`), the weights and optimizer
state are checkpointed in `<out>/cells/<key>.backup/` at each epoch end, a rerun
continues from the last finished epoch, and the cell's `wall_s`/`cpu_s` add up the time
of every invocation (except the part of an epoch that a kill threw away). `finish`
writes `<out>/results.json` (arguments, every cell, the table) and prints the table.
A finished cell keeps its trained weights in `<out>/cells/<key>.weights.h5`.

Each missing cell runs in a child process of its own (the script rerun with `--cell
<key>`), so memory is returned between cells: one process that trained and evaluated
cell after cell of Tables 4-6 grew to 10.8 GB. `--in_process` runs them all in the
calling process instead.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from tfvi.evaluation import mean_and_sd
from tfvi.training import CheckpointCallback, CheckpointManager

__all__ = ["base_parser", "binarized_batches", "cell_key", "cell_processes", "finish",
           "format_table", "resume", "run_cells", "summarize", "weights_path"]


def base_parser(description, out_default):
    """argparse with the flags every script has: --out, --seeds, --smoke."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=out_default,
                        help="output root: cells/*.json, results.json")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="random seeds (initialisation, sampling, data order)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny data, widths and budgets: checks the script end to end "
                        "in seconds (numbers meaningless)")
    parser.add_argument("--report", action="store_true",
                        help="train nothing: summarise the cells already on disk (a grid "
                        "still running or interrupted) and list the missing ones")
    parser.add_argument("--cell", default=None,
                        help="run only the cell with this key (e.g. model=mim__seed=0) "
                        "in this process; what each cell's child process runs")
    parser.add_argument("--in_process", action="store_true",
                        help="run every cell in this process (by default each missing "
                        "cell runs in a child process of its own, which bounds memory)")
    return parser


def cell_processes(args, script, argv=None):
    """The command that runs one cell of `script` in a child process (`run_cells` adds
    `--cell <key>`), or None when the cells run in this process (`--in_process`, or
    this is already a cell's process). `argv`: the script's arguments (default
    `sys.argv[1:]`)."""
    if args.in_process or args.cell is not None:
        return None
    return [sys.executable, os.path.abspath(script),
            *(sys.argv[1:] if argv is None else list(argv))]


def cell_key(cell):
    return "__".join(f"{k}={v}" for k, v in cell.items())


def backup_dir(out, cell):
    return os.path.join(out, "cells", cell_key(cell) + ".backup")


class _CellClock(keras.callbacks.Callback):
    """Writes the cell's cumulative wall and CPU seconds at each epoch end."""

    def __init__(self, directory):
        super().__init__()
        self.directory = directory

    def on_train_begin(self, logs=None):
        self.base = _read_clock(self.directory)
        self.wall, self.cpu = time.time(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        _write_json(os.path.join(self.directory, "clock.json"),
                    {"wall_s": self.base["wall_s"] + time.time() - self.wall,
                     "cpu_s": self.base["cpu_s"] + time.process_time() - self.cpu})


def _read_clock(directory):
    path = os.path.join(directory, "clock.json")
    if not os.path.exists(path):
        return {"wall_s": 0.0, "cpu_s": 0.0}
    with open(path) as f:
        return json.load(f)


def resume(model, out, cell):
    """Lets a cell's training continue in a later process: `(initial_epoch, callbacks)`.

    Restores the newest checkpoint in `<out>/cells/<key>.backup/` into `model` (built and
    compiled; its weights, optimizer state and sampling-seed states, via
    `tfvi.training.CheckpointManager`) and returns the epoch to start from with the
    callbacks that checkpoint each epoch and keep the cell's clock. Pass both to `fit`.
    The data stream restarts from its seed, so a resumed run sees batches in a different
    order than an uninterrupted one would. The checkpoints stay after training
    (`run_cells` keeps the last one's weights and removes them once the cell's JSON is
    written), so a run killed during the long evaluation does not train the cell again.
    """
    directory = backup_dir(out, cell)
    manager = CheckpointManager(os.path.join(directory, "checkpoints"), keep=1)
    state = manager.restore(model)
    return (state["epoch"] if state else 0), [CheckpointCallback(manager),
                                              _CellClock(directory)]


def fit_cell(model, out, cell, batches, epochs, callbacks=()):
    """Trains `model` (built and compiled) for `epochs` on `batches`, continuing from the
    cell's newest checkpoint (`resume`); returns the row's training columns: `epochs`,
    `resumed_at_epoch` and `final_loss` (None when the checkpoint had every epoch)."""
    initial_epoch, checkpointing = resume(model, out, cell)
    history = model.fit(batches, epochs=epochs, initial_epoch=initial_epoch, verbose=0,
                        callbacks=list(callbacks) + checkpointing)
    return {"epochs": epochs, "resumed_at_epoch": initial_epoch,
            "final_loss": float(history.history["loss"][-1]) if history.epoch else None}


def _write_json(path, payload):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, path)


def weights_path(out, cell):
    """`<out>/cells/<key>.weights.h5`: a finished cell's trained weights (for analyses
    after the grid; `model.load_weights` on the script's model for the cell)."""
    return os.path.join(out, "cells", cell_key(cell) + ".weights.h5")


def _keep_final_weights(out, cell):
    """Moves the newest checkpoint's weights to `weights_path`, then removes the
    cell's checkpoints."""
    checkpoints = os.path.join(backup_dir(out, cell), "checkpoints")
    epochs = sorted(d for d in os.listdir(checkpoints) if d.startswith("epoch-")) if (
        os.path.isdir(checkpoints)) else []
    if epochs:
        os.replace(os.path.join(checkpoints, epochs[-1], "model.weights.h5"),
                   weights_path(out, cell))
    shutil.rmtree(backup_dir(out, cell), ignore_errors=True)


def run_cells(out, cells, run_cell, report_only=False, only=None, child_command=None):
    """Runs `run_cell(cell) -> {metric: value}` for every cell not yet on disk.

    Each row is the cell, its metrics, `wall_s`, `cpu_s` (CPU time of the process that
    ran it and of the earlier invocations that `resume` recorded) and the load average
    at its end. Returns every row, in the order of `cells`. With `report_only`, cells
    not on disk are listed as missing and skipped. `only`: the key of the one cell to
    run (`--cell`). `child_command` (`cell_processes`): run each missing cell as
    `child_command + ["--cell", key]` and read its JSON; a child that fails stops the
    grid with one line (a rerun resumes the cell from its checkpoint).
    """
    os.makedirs(os.path.join(out, "cells"), exist_ok=True)
    if only is not None:
        keys = [cell_key(c) for c in cells]
        if only not in keys:
            raise SystemExit(f"--cell={only} is not a cell of this grid; cells: "
                             f"{', '.join(keys)}")
        cells = [c for c in cells if cell_key(c) == only]
    rows = []
    for cell in cells:
        path = os.path.join(out, "cells", cell_key(cell) + ".json")
        if os.path.exists(path):
            with open(path) as f:
                rows.append(json.load(f))
            if not report_only and os.path.isdir(backup_dir(out, cell)):
                _keep_final_weights(out, cell)  # killed between the JSON and this step
            print(f"done before: {cell_key(cell)}", flush=True)
            continue
        if report_only:
            print(f"missing: {cell_key(cell)}", flush=True)
            continue
        if child_command is not None:
            code = subprocess.run(child_command + ["--cell", cell_key(cell)],
                                  check=False).returncode
            if code != 0 or not os.path.exists(path):
                raise SystemExit(f"cell {cell_key(cell)} failed in its process (exit "
                                 f"{code}); rerun the same command to resume it.")
            with open(path) as f:
                rows.append(json.load(f))
            continue
        earlier = _read_clock(backup_dir(out, cell))
        wall, cpu = time.time(), time.process_time()
        row = dict(cell)
        row.update(run_cell(cell))
        row.update(wall_s=earlier["wall_s"] + time.time() - wall,
                   cpu_s=earlier["cpu_s"] + time.process_time() - cpu,
                   load_average=list(os.getloadavg()))
        _write_json(path, row)
        _keep_final_weights(out, cell)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def summarize(rows, group_keys, metrics):
    """Mean and sample standard deviation (over seeds, ddof=1; 0 for one seed) of each
    metric per group: a list of dicts."""
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in group_keys), []).append(row)
    table = []
    for key, members in groups.items():
        entry = dict(zip(group_keys, key), seeds=len(members),
                     wall_s=float(np.sum([m["wall_s"] for m in members])),
                     cpu_s=float(np.sum([m["cpu_s"] for m in members])))
        for metric in metrics:
            values = np.array([m[metric] for m in members if m.get(metric) is not None],
                              np.float64)
            entry[metric] = list(mean_and_sd(values)) if values.size else None
        table.append(entry)
    return table


def format_table(table, group_keys, metrics):
    head = " ".join(f"{k:>8}" for k in group_keys) + f" {'seeds':>5} " + " ".join(
        f"{m:>17}" for m in metrics) + f" {'cpu_s':>8}"
    lines = [head]
    for e in table:
        cells = " ".join("n/a".rjust(17) if e[m] is None else
                         f"{e[m][0]:9.3f}+-{e[m][1]:6.3f}" for m in metrics)
        lines.append(" ".join(f"{e[k]!s:>8}" for k in group_keys)
                     + f" {e['seeds']:>5} {cells} {e['cpu_s']:8.0f}")
    return "\n".join(lines)


def finish(out, args, rows, group_keys, metrics):
    """Writes `<out>/results.json` and prints the table; returns the table."""
    table = summarize(rows, group_keys, metrics)
    _write_json(os.path.join(out, "results.json"),
                {"args": vars(args), "cells": rows, "table": table,
                 "wall_s": float(sum(r["wall_s"] for r in rows)),
                 "cpu_s": float(sum(r["cpu_s"] for r in rows)),
                 "load_average": list(os.getloadavg())})
    print(format_table(table, group_keys, metrics), flush=True)
    return table


def binarized_batches(probs, batch_size, seed):
    """Training batches of `probs` binarised afresh each epoch (a seeded stream)."""
    probs = np.asarray(probs, np.float32)

    def binarize(p):
        return tf.cast(tf.random.uniform(tf.shape(p), seed=seed) < p, tf.float32)

    return (tf.data.Dataset.from_tensor_slices(probs)
            .shuffle(len(probs), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size).map(binarize))
