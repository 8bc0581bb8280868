"""Training wall time that survives a resume."""

import time

import keras

__all__ = ["TrainTiming"]


class TrainTiming(keras.callbacks.Callback):
    """Writes the cumulative training time into `state[key]` at the end of every epoch.

    `state` is the dict a checkpoint saves with each epoch (`CheckpointCallback.
    extra_state`; list this callback before the checkpoint callback), and
    `previous_seconds` the time the checkpoint a run resumed from had recorded, so
    the total counts every run that trained this model.

    Args:
      state: the dict to write into (held, not copied).
      previous_seconds: training time of earlier runs.
      key: the entry of `state` to write.
    """

    def __init__(self, state, previous_seconds=0.0, key="train_seconds"):
        super().__init__()
        self.state = state
        self.previous_seconds = float(previous_seconds)
        self.key = key
        self._start = None

    def on_train_begin(self, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self.state[self.key] = self.seconds

    @property
    def seconds(self):
        """Training time so far: earlier runs plus this `fit`."""
        if self._start is None:
            return self.previous_seconds
        return self.previous_seconds + time.time() - self._start
