"""Reliable workdir I/O for the launchers (see docs/reliability.md).

* `atomic`: every file and directory is written through a temporary sibling and
  renamed into place, with try/finally cleanup and permissions that follow the umask;
  strict JSON (NaN/inf become null with a recorded reason); disk-full errors name the
  path and the bytes.
* `lock`: an advisory, fcntl-based workdir lock holding the owner's pid and host.
* `faults`: named fault-injection points for the test suite (no-ops unless an
  environment variable names them).
* `workdir`: checkpoint validation with fallback, and `load_workdir`.
* `burn_in`: burn-in against the prior (Morningstar et al., B.3) and its callback.
* `timing`: `TrainTiming`, the training wall time that survives a resume.
"""

from tfvi.training import atomic, burn_in, faults, lock  # noqa: F401
from tfvi.training.timing import TrainTiming
from tfvi.training.watchdog import PeerWatchdog

__all__ = ["PeerWatchdog", "TrainTiming", "atomic", "burn_in", "faults", "lock"]
