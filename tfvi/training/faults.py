"""Named fault-injection points, inert unless an environment variable names them.

`point(name)` is called by the launcher at fixed instants (`"checkpoint.before_rename"`,
`"metrics.before_rename"`, ...). The test suite sets

* `TFVI_FAULT_KILL_AT=<name>` to make the process SIGKILL itself there, and
* `TFVI_FAULT_RAISE_AT=<name>:<kind>` with kind `enospc` (an `OSError(ENOSPC)`) or
  `interrupt` (a `KeyboardInterrupt`, as Ctrl-C raises),

and `TFVI_FAULT_WAIT_AT=<name>:<file>` to make the process create `<file>.reached`
there and wait until `<file>` exists (a test then acts on a live run at a known
instant: a second run, `--overwrite`, SIGINT),

so a fault lands at the same instant on any machine, with no timing-dependent sleeps.
`FaultPoints` exposes every training batch as a point (`train_batch@<epoch>.<step>`).
A name may carry `@<epoch>` (`checkpoint.before_rename@3`): the point then fires only
when the launcher passes that epoch. Without these variables `point` does nothing.
"""

import errno
import os
import signal
import time

import keras

__all__ = ["FaultPoints", "point", "KILL_ENV", "RAISE_ENV", "WAIT_ENV"]

KILL_ENV = "TFVI_FAULT_KILL_AT"
RAISE_ENV = "TFVI_FAULT_RAISE_AT"
WAIT_ENV = "TFVI_FAULT_WAIT_AT"


def _matches(wanted, name, epoch):
    if "@" in wanted:
        wanted_name, wanted_epoch = wanted.split("@", 1)
        return wanted_name == name and epoch is not None and str(epoch) == wanted_epoch
    return wanted == name


def point(name, epoch=None, path=None):
    """A fault-injection point; `path` is the file being written (for ENOSPC)."""
    kill = os.environ.get(KILL_ENV)
    if kill and _matches(kill, name, epoch):
        os.kill(os.getpid(), signal.SIGKILL)
    spec = os.environ.get(RAISE_ENV)
    if spec and ":" in spec:
        wanted, kind = spec.rsplit(":", 1)
        if _matches(wanted, name, epoch):
            if kind == "interrupt":
                raise KeyboardInterrupt
            if kind == "enospc":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    spec = os.environ.get(WAIT_ENV)
    if spec and ":" in spec:
        wanted, release = spec.split(":", 1)
        if _matches(wanted, name, epoch):
            with open(release + ".reached", "w") as f:
                f.write(str(os.getpid()))
            deadline = time.monotonic() + 600
            while not os.path.exists(release) and time.monotonic() < deadline:
                time.sleep(0.01)  # polling a file: no machine-speed assumption


class FaultPoints(keras.callbacks.Callback):
    """Calls `tfvi.training.faults.point("train_batch", "<epoch>.<step>")` (1-based)
    after every training batch; installed only when a fault variable is set."""

    every_step = True  # one step per call, so every step's fault point is reached

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        point("train_batch", f"{self._epoch + 1}.{batch + 1}")
