"""TensorBoard output through core TensorFlow: per-epoch scalars, image summaries of
samples and reconstructions, and the HParams record of a finished run."""

import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

__all__ = ["HPARAMS_METRICS", "ImageSummaries", "TensorBoardScalars", "current_learning_rate",
           "write_hparams", "write_images", "write_scalar"]


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
    train run; a schedule is evaluated at the optimizer's step).

    An epoch's scalars of one run are written by one `tf.function` call (traced once
    per set of names): writing them one eager op at a time took 2 ms an epoch, a
    tenth of a digits VAE epoch under `tfvi-train`.
    """

    def __init__(self, log_dir):
        super().__init__()
        self.writers = {split: tf.summary.create_file_writer(os.path.join(log_dir, split))
                        for split in ("train", "validation")}
        self._functions = {}

    def on_epoch_end(self, epoch, logs=None):
        scalars = {"train": {}, "validation": {}}
        for name, value in (logs or {}).items():
            split = "validation" if name.startswith("val_") else "train"
            scalars[split][f"epoch_{name[4:] if split == 'validation' else name}"] = value
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and "learning_rate" not in (logs or {}):
            scalars["train"]["epoch_learning_rate"] = current_learning_rate(optimizer)
        step = tf.constant(epoch + 1, tf.int64)
        for split, values in scalars.items():
            if values:
                names = tuple(values)
                self._write_function(split, names)(
                    tf.constant([float(values[n]) for n in names], tf.float32), step)
                self.writers[split].flush()

    def _write_function(self, split, names):
        key = (split, names)
        if key not in self._functions:
            writer = self.writers[split]

            @tf.function(input_signature=[tf.TensorSpec([len(names)], tf.float32),
                                          tf.TensorSpec([], tf.int64)])
            def write(values, step):
                with writer.as_default():
                    for i, name in enumerate(names):
                        tf.summary.write(name, values[i], step=step,
                                         metadata=_metadata("scalars"))

            self._functions[key] = write
        return self._functions[key]


class ImageSummaries(keras.callbacks.Callback):
    """Writes prior samples and reconstructions as TensorBoard images.

    At the end of every `every`-th epoch, but at most once per `min_seconds` of wall
    time after the first write, and always for the last epoch trained (at the end of
    `fit`). Decoding and encoding the images costs about 0.1 s, six times a 15-step
    epoch of the digits VAE, so the launcher writes them at most every 30 s.
    """

    def __init__(self, log_dir, inputs, targets, image_shape, every=1, seed=0,
                 min_seconds=0.0):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.inputs = np.asarray(inputs[:8], np.float32)
        self.images = np.asarray(targets[:8], np.float32)
        self.image_shape = tuple(image_shape)
        self.every = max(1, int(every))
        self.min_seconds = float(min_seconds)
        self.seed = seed
        self._last_write = None
        self._pending = None  # the last epoch ended and not written

    def _to_images(self, flat):
        h, w, c = self.image_shape
        return np.clip(np.asarray(flat, np.float32).reshape(-1, h, w, c), 0.0, 1.0)

    def on_epoch_end(self, epoch, logs=None):
        self._pending = epoch + 1
        if (epoch + 1) % self.every:
            return
        if self._last_write is not None and \
                time.monotonic() - self._last_write < self.min_seconds:
            return
        self._write(epoch + 1)

    def on_train_end(self, logs=None):
        if self._pending is not None:
            self._write(self._pending)

    def _write(self, step):
        from tfvi import plots

        samples = plots.decoder_images(self.model, plots.prior_samples(self.model, 16, self.seed))
        recon = plots.decoder_images(self.model, self.model(self.inputs))
        pairs = np.concatenate([self.images, recon], axis=0)
        with self.writer.as_default():
            write_images("samples", self._to_images(samples), step)
            write_images("reconstructions", self._to_images(pairs), step)
        self.writer.flush()
        self._last_write, self._pending = time.monotonic(), None


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
