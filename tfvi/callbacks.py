"""Keras callbacks of the launcher: atomic checkpoints with resume, a NaN guard that
fails loudly, and TensorBoard images.

Checkpoints (`CheckpointManager`): each one is a directory `checkpoints/epoch-NNNNN/`
holding `model.weights.h5` (model weights *and* optimizer state, as Keras 3 saves
them) and `state.json` (epoch, global step, the per-epoch history). It is written
into `checkpoints/.tmp-*` first and renamed into place, and `os.rename` of a
directory is atomic on POSIX: a process killed at any instant leaves either the
previous set of checkpoints or the new complete one, never a half-written one;
leftover temporary directories are removed at the next start.
"""

import json
import math
import os
import re
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

__all__ = ["CheckpointManager", "CheckpointCallback", "NaNGuard", "NonFiniteLossError",
           "ImageSummaries", "TensorBoardScalars", "write_images", "write_json_atomic",
           "write_scalar"]

_CKPT = re.compile(r"^epoch-(\d+)$")


def write_json_atomic(path, obj):
    """Writes JSON to `path` via a temporary file and `os.replace`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy()).tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointManager:
    """Atomic, numbered checkpoints of a Keras model and its optimizer.

    Args:
      directory: the `checkpoints/` directory.
      keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, directory, keep=2):
        self.directory = directory
        self.keep = int(keep)
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.startswith(".tmp-"):
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)

    def checkpoints(self):
        """Complete checkpoints as `[(epoch, path)]`, oldest first."""
        found = []
        for name in os.listdir(self.directory):
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
        tmp = tempfile.mkdtemp(dir=self.directory, prefix=".tmp-")
        model.save_weights(os.path.join(tmp, "model.weights.h5"))
        state = dict(state, epoch=int(epoch))
        with open(os.path.join(tmp, "state.json"), "w") as f:
            json.dump(state, f, default=_json_default)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        final = os.path.join(self.directory, f"epoch-{epoch:05d}")
        if os.path.exists(final):  # a re-run of the same epoch: replace it atomically
            stale = tempfile.mkdtemp(dir=self.directory, prefix=".tmp-stale-")
            os.rename(final, os.path.join(stale, "old"))
            os.rename(tmp, final)
            shutil.rmtree(stale, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _fsync_dir(self.directory)
        for _, path in self.checkpoints()[:-self.keep]:
            shutil.rmtree(path, ignore_errors=True)
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
            return json.load(f)


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


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf; the message names the step and the cause."""


class NaNGuard(keras.callbacks.Callback):
    """Stops training with `NonFiniteLossError` at the first non-finite loss.

    The message gives the epoch, the step within it and the global step, which
    logged quantities are non-finite, which weights (if any) are, and the learning
    rate, so the cause (a diverging likelihood scale, an exploding KL, ...) is visible
    without re-running.
    """

    def __init__(self):
        super().__init__()
        self._epoch = self._epoch_start = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is None or math.isfinite(float(loss)):
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


class TensorBoardScalars(keras.callbacks.Callback):
    """Per-epoch scalars in `log_dir/train` and `log_dir/validation` (`val_*` logs)."""

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
