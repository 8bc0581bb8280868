"""Atomic, numbered checkpoints with resume, and the callback that writes one per epoch.

Each checkpoint is a directory `checkpoints/epoch-NNNNN/` holding `model.weights.h5`
(model weights *and* optimizer state, as Keras 3 saves them), `state.json` (epoch,
global step, the per-epoch history, callbacks' state) and any arrays saved with it
(`<name>.npz`, e.g. early stopping's best weights). It is written into `checkpoints/.tmp-*` first and
renamed into place, and `os.rename` of a directory is atomic on POSIX: a process killed
at any instant leaves either the previous set of checkpoints or the new complete one,
never a half-written one; leftover temporary directories are removed at the next start
(by the writer holding the workdir lock). `tfvi.training.workdir.restore_newest_valid`
falls back to an older checkpoint when the newest one is corrupt.
"""

import json
import os
import re
import shutil
import time

import keras
import numpy as np

from tfvi.training import atomic, faults

__all__ = ["CheckpointManager", "CheckpointCallback", "unsaved_variables"]

_CKPT = re.compile(r"^epoch-(\d+)$")
EARLY_STOPPING_BEST = "early_stopping_best"  # the arrays name of its best weights


class CheckpointManager:
    """Atomic, numbered checkpoints of a Keras model and its optimizer.

    Args:
      directory: the `checkpoints/` directory.
      keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, directory, keep=2, sweep=True):
        self.directory = directory
        self.keep = int(keep)
        if sweep:  # only a writer holding the workdir lock may remove leftovers
            os.makedirs(directory, exist_ok=True)
            atomic.sweep(directory)

    def checkpoints(self):
        """Complete checkpoints as `[(epoch, path)]`, oldest first."""
        found = []
        for name in (os.listdir(self.directory) if os.path.isdir(self.directory) else []):
            m = _CKPT.match(name)
            path = os.path.join(self.directory, name)
            if m and os.path.exists(os.path.join(path, "state.json")):
                found.append((int(m.group(1)), path))
        return sorted(found)

    def latest(self):
        found = self.checkpoints()
        return found[-1][1] if found else None

    def save(self, model, epoch, state, arrays=None):
        """Saves after `epoch` (1-based count of finished epochs); returns the path.
        `arrays`: `{name: [numpy arrays]}` saved beside the weights (`restore` returns
        them in the state's `"arrays"`)."""
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            optimizer.build(model.trainable_variables)  # so restore gets its slots
        final = os.path.join(self.directory, f"epoch-{epoch:05d}")
        # A re-run of the same epoch replaces it atomically.
        with atomic.directory(final, "checkpoint", epoch) as tmp:
            model.save_weights(os.path.join(tmp, "model.weights.h5"))
            for name, values in (arrays or {}).items():
                np.savez(os.path.join(tmp, f"{name}.npz"), *values)
            faults.point("checkpoint.weights_written", epoch)
            state = atomic.json_safe(dict(state, epoch=int(epoch),
                                          unsaved_variables=unsaved_variables(model)))
            with open(os.path.join(tmp, "state.json"), "w") as f:
                json.dump(state, f, allow_nan=False)
                f.flush()
                os.fsync(f.fileno())
        faults.point("checkpoint.after_rename", epoch)
        for _, path in self.checkpoints()[:-self.keep]:
            # Renamed out of the epoch-* namespace first: a kill mid-removal leaves a
            # .tmp-* (swept at the next start), never a half-deleted checkpoint.
            doomed = os.path.join(self.directory, f"{atomic.TMP_PREFIX}old-"
                                  f"{os.path.basename(path)}")
            os.rename(path, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        return final

    def restore(self, model, path=None):
        """Loads the latest (or given) checkpoint into `model`; returns its state dict
        (with `"arrays"`: `{name: [numpy arrays]}` saved with it) or None when there is
        none. The optimizer must be set (compiled model)."""
        path = path or self.latest()
        if path is None:
            return None
        if getattr(model, "optimizer", None) is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(path, "model.weights.h5"))
        with open(os.path.join(path, "state.json")) as f:
            state = json.load(f)
        saved = state.get("unsaved_variables") or {}
        for v in model.variables:
            if v.path in saved:
                v.assign(np.asarray(saved[v.path], dtype=v.dtype))
        state["arrays"] = {}
        for name in sorted(os.listdir(path)):
            if name.endswith(".npz"):
                with np.load(os.path.join(path, name)) as npz:
                    state["arrays"][name[:-4]] = [npz[f"arr_{i}"] for i in range(len(npz.files))]
        return state


def unsaved_variables(model):
    """`{path: value}` of the model's variables that `save_weights` leaves out (the
    sampling `SeedGenerator` states): kept in `state.json` so a resumed run draws the
    same noise as an uninterrupted one."""
    weights = {id(v) for v in model.weights}
    return {v.path: np.asarray(keras.ops.convert_to_numpy(v)).tolist()
            for v in model.variables if id(v) not in weights}


class CheckpointCallback(keras.callbacks.Callback):
    """Saves a checkpoint, with the history so far, at the end of an epoch: every
    epoch, or with `min_seconds > 0` the first epoch that ends at least `min_seconds`
    (wall time) after the previous save (or the start of `fit`), and always the last
    epoch of a `fit` that returns (`on_train_end`; not after an exception).

    Saving the digits VAE's weights and Adam state takes about 70 ms, four times its
    15-step epoch, so `tfvi-train` saves at most every `--checkpoint_every_seconds`
    (30 s): a killed run then retrains at most that long plus one epoch.

    Args:
      manager: the `CheckpointManager` to save with.
      history: the per-epoch history of the run resumed (extended with `logs`).
      extra_state: a dict saved with each checkpoint (held; `TrainTiming` writes it).
      min_seconds: the least wall time between two saves (0: every epoch).
      early_stopping: a `ResumableEarlyStopping` (earlier in the callback list) whose
        state, and best weights when they are not the checkpoint's own, each
        checkpoint holds (`"early_stopping"`, `"arrays"["early_stopping_best"]`).
    """

    def __init__(self, manager, history=None, extra_state=None, min_seconds=0.0,
                 early_stopping=None):
        super().__init__()
        self.manager = manager
        self.early_stopping = early_stopping
        self.history = dict(history or {})
        self.extra_state = dict(extra_state or {})
        self.min_seconds = float(min_seconds)
        self._last_save = None
        self._pending = None  # an epoch that ended and is not saved

    def on_train_begin(self, logs=None):
        self._last_save = time.monotonic()
        self._pending = None

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))
        self._pending = epoch + 1
        if self._last_save is None or \
                time.monotonic() - self._last_save >= self.min_seconds:
            self._save()

    def on_train_end(self, logs=None):
        if self._pending is not None:
            self._save()

    def _save(self):
        step = int(self.model.optimizer.iterations.numpy())
        state, arrays = dict(self.extra_state, global_step=step, history=self.history), {}
        if self.early_stopping is not None:
            state["early_stopping"] = self.early_stopping.get_state(self._pending)
            if (state["early_stopping"]["has_best_weights"]
                    and not state["early_stopping"]["best_is_current"]):
                arrays[EARLY_STOPPING_BEST] = self.early_stopping.best_weights
        self.manager.save(self.model, self._pending, state, arrays)
        self._pending = None
        self._last_save = time.monotonic()
