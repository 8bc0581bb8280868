"""`NaNGuard`: stop training loudly at the first non-finite loss, naming the cause."""

import math
import sys

import keras
import numpy as np

__all__ = ["NaNGuard", "NonFiniteLossError"]


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
