"""Reliable workdir I/O for the launchers (see docs/reliability.md).

* `atomic`: every file and directory is written through a temporary sibling and
  renamed into place, with try/finally cleanup and permissions that follow the umask;
  strict JSON (NaN/inf become null with a recorded reason); disk-full errors name the
  path and the bytes.
* `lock`: an advisory, fcntl-based workdir lock holding the owner's pid and host.
* `faults`: named fault-injection points for the test suite (no-ops unless an
  environment variable names them).
* `workdir`: checkpoint validation with fallback, and `load_workdir`.
* `timing`: `TrainTiming`, the training wall time that survives a resume.
"""

from tfvi.training import atomic, faults, lock  # noqa: F401
from tfvi.training.timing import TrainTiming  # noqa: F401

__all__ = ["TrainTiming", "atomic", "faults", "lock"]
