"""Training plumbing: Keras callbacks (one module per concept) and reliable workdir I/O
(see docs/reliability.md).

* `checkpointing`: atomic, numbered checkpoints with resume (`CheckpointManager`,
  `CheckpointCallback`).
* `early_stopping`: `ResumableEarlyStopping`, whose state the checkpoints hold.
* `nan_guard`: `NaNGuard`, which stops at the first non-finite loss naming the cause.
* `tensorboard`: per-epoch scalars, image summaries, the HParams record.
* `warmup`: `KLWarmup` (Xu et al. B.3) and `DecoderWeightWarmup` (Livne et al. section 5),
  and `objective_settled_epoch` (where early stopping may start comparing losses).
* `atomic`: every file and directory is written through a temporary sibling and
  renamed into place, with try/finally cleanup and permissions that follow the umask;
  strict JSON (NaN/inf become null with a recorded reason); disk-full errors name the
  path and the bytes.
* `lock`: an advisory, fcntl-based workdir lock holding the owner's pid and host.
* `faults`: named fault-injection points for the test suite (no-ops unless an
  environment variable names them) and `FaultPoints`, one per training batch.
* `workdir`: checkpoint validation with fallback, and `load_workdir`.
* `burn_in`: burn-in against the prior (Morningstar et al., B.3) and its callback.
* `timing`: `TrainTiming`, the training wall time that survives a resume.
"""

from tfvi.training import atomic, burn_in, faults, lock  # noqa: F401
from tfvi.training.burn_in import BurnIn
from tfvi.training.checkpointing import CheckpointCallback, CheckpointManager
from tfvi.training.early_stopping import ResumableEarlyStopping
from tfvi.training.faults import FaultPoints
from tfvi.training.nan_guard import NaNGuard, NonFiniteLossError
from tfvi.training.tensorboard import ImageSummaries, TensorBoardScalars, write_hparams
from tfvi.training.timing import TrainTiming
from tfvi.training.warmup import DecoderWeightWarmup, KLWarmup, objective_settled_epoch
from tfvi.training.watchdog import PeerWatchdog

__all__ = ["BurnIn", "CheckpointCallback", "CheckpointManager", "DecoderWeightWarmup",
           "FaultPoints", "ImageSummaries", "KLWarmup", "NaNGuard", "NonFiniteLossError",
           "PeerWatchdog", "ResumableEarlyStopping", "TensorBoardScalars", "TrainTiming", "atomic", "burn_in", "faults", "lock",
           "objective_settled_epoch", "write_hparams"]
