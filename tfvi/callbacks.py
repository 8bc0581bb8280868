"""Keras callbacks of the launcher: atomic checkpoints with resume, a NaN guard that
fails loudly, and TensorBoard images.

Checkpoints (`CheckpointManager`): each one is a directory `checkpoints/epoch-NNNNN/`
holding `model.weights.h5` (model weights *and* optimizer state, as Keras 3 saves
them) and `state.json` (epoch, global step, the per-epoch history). It is written
into `checkpoints/.tmp-*` first and renamed into place, and `os.rename` of a
directory is atomic on POSIX: a process killed at any instant leaves either the
previous set of checkpoints or the new complete one, never a half-written one;
leftover temporary directories are removed at the next start (by the writer holding
the workdir lock). `tfvi.training.workdir.restore_newest_valid` falls back to an
older checkpoint when the newest one is corrupt.

`FaultPoints` exposes every training batch as a `tfvi.training.faults` point
(`train_batch@<epoch>.<step>`) for the fault-injection tests.
"""

import json
import math
import os
import re
import shutil
import sys

import keras
import numpy as np
import tensorflow as tf

from tfvi.training import atomic, faults

__all__ = ["CheckpointManager", "CheckpointCallback", "FaultPoints", "NaNGuard",
           "NonFiniteLossError", "ImageSummaries", "TensorBoardScalars", "write_hparams",
           "write_images", "write_json_atomic", "write_scalar", "write_text_atomic"]

_CKPT = re.compile(r"^epoch-(\d+)$")


def write_json_atomic(path, obj):
    """Strict JSON (NaN/inf -> null, see `tfvi.training.atomic.write_json`) written
    via a temporary file and `os.replace`."""
    atomic.write_json(path, obj)


def write_text_atomic(path, text):
    """Writes `text` (UTF-8) to `path` atomically (`tfvi.training.atomic.write_bytes`):
    a reader sees the old file or the complete new one."""
    atomic.write_bytes(path, text.encode("utf-8"))


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

    def save(self, model, epoch, state):
        """Saves after `epoch` (1-based count of finished epochs); returns the path."""
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            optimizer.build(model.trainable_variables)  # so restore gets its slots
        final = os.path.join(self.directory, f"epoch-{epoch:05d}")
        # A re-run of the same epoch replaces it atomically.
        with atomic.directory(final, "checkpoint", epoch) as tmp:
            model.save_weights(os.path.join(tmp, "model.weights.h5"))
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
        or None when there is none. The optimizer must be set (compiled model)."""
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
        return state


def unsaved_variables(model):
    """`{path: value}` of the model's variables that `save_weights` leaves out (the
    sampling `SeedGenerator` states): kept in `state.json` so a resumed run draws the
    same noise as an uninterrupted one."""
    weights = {id(v) for v in model.weights}
    return {v.path: np.asarray(keras.ops.convert_to_numpy(v)).tolist()
            for v in model.variables if id(v) not in weights}


class CheckpointCallback(keras.callbacks.Callback):
    """Saves a checkpoint at the end of every epoch, with the history so far."""

    def __init__(self, manager, history=None, extra_state=None):
        super().__init__()
        self.manager = manager
        self.history = dict(history or {})
        self.extra_state = dict(extra_state or {})

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))
        step = int(self.model.optimizer.iterations.numpy())
        self.manager.save(self.model, epoch + 1,
                          dict(self.extra_state, global_step=step, history=self.history))


class FaultPoints(keras.callbacks.Callback):
    """Calls `tfvi.training.faults.point("train_batch", "<epoch>.<step>")` (1-based)
    after every training batch; installed only when a fault variable is set."""

    every_step = True  # one step per call, so every step's fault point is reached

    def __init__(self):
        super().__init__()
        self._epoch = self._epoch_start = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        faults.point("train_batch", f"{self._epoch + 1}.{batch + 1}")


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf; the message names the step and the cause."""


class NaNGuard(keras.callbacks.Callback):
    """Stops training with `NonFiniteLossError` at the first non-finite loss, and
    prints one warning line the first time a finite loss exceeds
    `DIVERGENCE_THRESHOLD` in magnitude (divergence before overflow).

    The message gives the epoch, the step within it and the global step, which
    logged quantities are non-finite, which weights (if any) are, and the learning
    rate, so the cause (a diverging likelihood scale, an exploding KL, ...) is visible
    without re-running.
    """

    DIVERGENCE_THRESHOLD = 1e8

    def __init__(self):
        super().__init__()
        self._epoch = self._epoch_start = 0
        self._warned = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is None:
            return
        if math.isfinite(float(loss)):
            if abs(float(loss)) > self.DIVERGENCE_THRESHOLD and not self._warned:
                self._warned = True  # one line, once: finite but diverging
                print(f"tfvi: warning: the loss reached {float(loss):.3g} at epoch "
                      f"{self._epoch + 1}, step {batch + 1} (|loss| > "
                      f"{self.DIVERGENCE_THRESHOLD:g}): training is diverging; try a "
                      "smaller --learning_rate.", file=sys.stderr)
            return
        # With several steps per call Keras' `batch` is the call's last slot, not the
        # last step run: count the optimizer's steps instead.
        batch = int(self.model.optimizer.iterations.numpy()) - self._epoch_start - 1
        bad_logs = sorted(k for k, v in logs.items() if not math.isfinite(float(v)))
        bad_weights = [v.path for v in self.model.weights
                       if v.dtype.startswith("float") and
                       not bool(np.all(np.isfinite(keras.ops.convert_to_numpy(v))))]
        step = int(self.model.optimizer.iterations.numpy())
        try:
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        except Exception:  # pragma: no cover - exotic schedules
            lr = float("nan")
        num_float = sum(1 for v in self.model.weights if v.dtype.startswith("float"))
        cause = (f"non-finite weights ({len(bad_weights)} of {num_float} tensors: "
                 f"{', '.join(bad_weights[:5])}{', ...' if len(bad_weights) > 5 else ''})"
                 if bad_weights
                 else "weights are finite, so the forward pass overflowed "
                      f"(non-finite: {', '.join(bad_logs)})")
        raise NonFiniteLossError(
            f"loss became {float(loss)} at epoch {self._epoch + 1}, step {batch + 1} "
            f"(global step {step}); {cause}; learning rate {lr:g}. Try a smaller "
            "--learning_rate or check the data scale.")


def _metadata(plugin_name):
    from tensorflow.core.framework import summary_pb2

    meta = summary_pb2.SummaryMetadata()
    meta.plugin_data.plugin_name = plugin_name
    return meta


def write_scalar(name, value, step):
    """A TensorBoard scalar through core TF only (no `tensorboard` package needed)."""
    tf.summary.write(name, tf.constant(float(value), tf.float32), step=step,
                     metadata=_metadata("scalars"))


def write_images(name, images, step, max_outputs=16):
    """TensorBoard images `[n, h, w, c]` in [0, 1], in the images plugin's format
    (`[width, height, png...]` strings), through core TF only."""
    images = tf.convert_to_tensor(np.asarray(images[:max_outputs], np.float32))
    pngs = [tf.image.encode_png(tf.cast(tf.round(255 * im), tf.uint8)) for im in images]
    h, w = int(images.shape[1]), int(images.shape[2])
    tensor = tf.stack([tf.constant(str(w)), tf.constant(str(h))] + pngs)
    tf.summary.write(name, tensor, step=step, metadata=_metadata("images"))


def current_learning_rate(optimizer):
    """The optimizer's learning rate at its current step (a schedule evaluated at
    `optimizer.iterations`), as a float."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class TensorBoardScalars(keras.callbacks.Callback):
    """Per-epoch scalars in `log_dir/train` and `log_dir/validation` (`val_*` logs),
    and the learning rate in effect at the end of the epoch (`epoch_learning_rate`,
    train run; a schedule is evaluated at the optimizer's step)."""

    def __init__(self, log_dir):
        super().__init__()
        self.writers = {split: tf.summary.create_file_writer(os.path.join(log_dir, split))
                        for split in ("train", "validation")}

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            split = "validation" if name.startswith("val_") else "train"
            with self.writers[split].as_default():
                write_scalar(f"epoch_{name[4:] if split == 'validation' else name}", value,
                             epoch + 1)
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and "learning_rate" not in (logs or {}):
            with self.writers["train"].as_default():
                write_scalar("epoch_learning_rate", current_learning_rate(optimizer),
                             epoch + 1)
        for writer in self.writers.values():
            writer.flush()


class ImageSummaries(keras.callbacks.Callback):
    """Writes prior samples and reconstructions as TensorBoard images each epoch."""

    def __init__(self, log_dir, inputs, targets, image_shape, every=1, seed=0):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.inputs = np.asarray(inputs[:8], np.float32)
        self.images = np.asarray(targets[:8], np.float32)
        self.image_shape = tuple(image_shape)
        self.every = max(1, int(every))
        self.seed = seed

    def _to_images(self, flat):
        h, w, c = self.image_shape
        return np.clip(np.asarray(flat, np.float32).reshape(-1, h, w, c), 0.0, 1.0)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        from tfvi import plots

        samples = plots.decoder_images(self.model, plots.prior_samples(self.model, 16, self.seed))
        recon = plots.decoder_images(self.model, self.model(self.inputs))
        pairs = np.concatenate([self.images, recon], axis=0)
        with self.writer.as_default():
            write_images("samples", self._to_images(samples), epoch + 1)
            write_images("reconstructions", self._to_images(pairs), epoch + 1)
        self.writer.flush()


# metrics.json figures logged as the HParams dashboard's metrics (tag "hparams/<split>_<key>").
HPARAMS_METRICS = ("nll", "elbo", "loss", "accuracy", "ece", "ksg_mutual_information",
                   "knn5_accuracy", "reconstruction_rmse", "active_units")


def _hparam_value(value):
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def write_hparams(log_dir, metrics, flags=None, run_name=None):
    """Logs a run for TensorBoard's HParams dashboard into `log_dir`: the hyper-
    parameters (the run's flags, `metrics["flags"]` unless given) and, as its metrics,
    the final figures of `metrics` (`{split: {name: value}}`, e.g. metrics.json) as
    scalars `hparams/<split>_<name>`. Needs the `tensorboard` package (its HParams
    plugin); without it, returns None after one line on stderr.

    Point `tensorboard --logdir` at a directory holding several workdirs to compare
    their runs in the HParams tab. Returns the list of metric tags written.
    """
    try:
        from tensorboard.plugins.hparams import api as hp
    except ImportError:  # pragma: no cover - tensorboard is a dependency
        import sys

        print("tfvi: tensorboard is not installed; HParams not logged "
              "(pip install tensorboard).", file=sys.stderr)
        return None
    flags = dict(metrics.get("flags", {}) if flags is None else flags)
    hparams = {name: _hparam_value(value) for name, value in sorted(flags.items())
               if value is not None}
    values = {}
    for split in ("train", "validation", "test"):
        for name in HPARAMS_METRICS:
            value = (metrics.get(split) or {}).get(name)
            if isinstance(value, (int, float)) and math.isfinite(value):
                values[f"hparams/{split}_{name}"] = float(value)
    step = int(metrics.get("epochs_trained", 0))
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        hp.hparams_config(hparams=[hp.HParam(name) for name in hparams],
                          metrics=[hp.Metric(tag) for tag in values])
        hp.hparams(hparams, trial_id=run_name or flags.get("workdir"))
        for tag, value in values.items():
            write_scalar(tag, value, step)
    writer.flush()
    writer.close()
    return sorted(values)
