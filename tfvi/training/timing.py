"""Training wall time (and this process's CPU time) that survives a resume."""

import time

import keras

__all__ = ["TrainTiming"]


class TrainTiming(keras.callbacks.Callback):
    """Writes the cumulative training time into `state[key]` at the end of every epoch,
    and the process CPU time spent in this `fit` into `state[cpu_key]`.

    `state` is the dict a checkpoint saves with each epoch (`CheckpointCallback.
    extra_state`; list this callback before the checkpoint callback), and
    `previous_seconds` the time the checkpoint a run resumed from had recorded, so
    the total counts every run that trained this model. The CPU time (all threads of
    this process, `time.process_time`) counts this `fit` only. So do the per-epoch
    lists written with it (unless `cpu_key` is None), `state["fit_epoch_seconds"]`
    and `state["fit_epoch_cpu_seconds"]`: the wall and CPU time from one epoch's end
    to the next (the first from the start of `fit`), i.e. an epoch with every
    callback's work, from which `benchmarks/vs_pythae.py` takes the steady-state cost
    of a `tfvi-train` epoch.

    Args:
      state: the dict to write into (held, not copied).
      previous_seconds: training time of earlier runs.
      key: the entry of `state` to write.
      cpu_key: the entry for this fit's CPU seconds (None: not written).
    """

    def __init__(self, state, previous_seconds=0.0, key="train_seconds",
                 cpu_key="fit_cpu_seconds"):
        super().__init__()
        self.state = state
        self.previous_seconds = float(previous_seconds)
        self.key = key
        self.cpu_key = cpu_key
        self._start = None
        self._cpu_start = None
        self._epoch_end = None

    def on_train_begin(self, logs=None):
        self._start = time.time()
        self._cpu_start = time.process_time()
        self._epoch_end = (self._start, self._cpu_start)
        if self.cpu_key is not None:
            self.state["fit_epoch_seconds"], self.state["fit_epoch_cpu_seconds"] = [], []

    def on_epoch_end(self, epoch, logs=None):
        now, cpu = time.time(), time.process_time()
        self.state[self.key] = self.seconds
        if self.cpu_key is not None:
            self.state[self.cpu_key] = cpu - self._cpu_start
            self.state["fit_epoch_seconds"].append(now - self._epoch_end[0])
            self.state["fit_epoch_cpu_seconds"].append(cpu - self._epoch_end[1])
        self._epoch_end = (now, cpu)

    @property
    def seconds(self):
        """Training time so far: earlier runs plus this `fit`."""
        if self._start is None:
            return self.previous_seconds
        return self.previous_seconds + time.time() - self._start
