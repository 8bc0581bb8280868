"""`PeerWatchdog`: ends a multi-worker run that stops making progress."""

import faulthandler

import keras

from tfvi.validation import check_positive

__all__ = ["PeerWatchdog"]


class PeerWatchdog(keras.callbacks.Callback):
    """Backstop for a multi-worker run that stops making progress.

    Measured here (TF 2.21, loopback, ring all-reduce): when one worker is SIGKILLed,
    MultiWorkerMirroredStrategy's heartbeat check aborts the survivor's collectives
    with `UnavailableError` ("tasks are unhealthy") about 25 s later; the launcher turns
    that into a one-line error. A blocked collective holds the GIL, so a Python
    watchdog thread cannot run; this callback arms `faulthandler.dump_traceback_later`
    (a C thread) instead: if no train/test batch or epoch ends for
    `timeout_seconds`, the stacks are dumped and the process exits with status 1.
    Checkpoints are written atomically, so the last complete one stays intact either
    way. Call `cancel()` when leaving `fit` by an exception.
    """

    def __init__(self, timeout_seconds: float):
        super().__init__()
        self.timeout_seconds = check_positive("timeout_seconds", timeout_seconds)

    def _beat(self, *args, **kwargs):
        faulthandler.dump_traceback_later(self.timeout_seconds, exit=True)

    on_train_begin = on_train_batch_end = on_test_batch_end = on_epoch_end = _beat

    @staticmethod
    def cancel():
        faulthandler.cancel_dump_traceback_later()

    def on_train_end(self, logs=None):
        self.cancel()
