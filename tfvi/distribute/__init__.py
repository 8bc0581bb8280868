"""tf.distribute for tfvi, one concept per module:

* `strategies`: a strategy from a `--strategy` flag value, logical CPU devices;
* `cluster`: `TF_CONFIG`, the chief, and where each worker writes;
* `keras_workarounds`: the two Keras 3.15 MultiWorkerMirroredStrategy workarounds;
* `evaluation`: the `tfvi.evaluation` estimators with their batches on the replicas.

tfvi adds no cluster code of its own (TensorFlow's MirroredStrategy and
MultiWorkerMirroredStrategy do the work); `replica_seed` (tfvi.seeds) makes each
replica draw its own noise. `PeerWatchdog` lives in `tfvi.training.watchdog` and is
re-exported here.
"""

from tfvi.distribute.cluster import chief_or_temp_dir, is_chief, tf_config, worker_dir
from tfvi.distribute.evaluation import (
    distributed_ais_gap_table,
    distributed_ais_log_likelihood,
    distributed_iwae_log_likelihood,
    replica_runner,
)
from tfvi.distribute.keras_workarounds import apply_multi_worker_workarounds
from tfvi.distribute.strategies import STRATEGY_NAMES, configure_logical_cpus, create_strategy
from tfvi.training.watchdog import PeerWatchdog

__all__ = [
    "STRATEGY_NAMES",
    "configure_logical_cpus",
    "create_strategy",
    "tf_config",
    "is_chief",
    "worker_dir",
    "chief_or_temp_dir",
    "apply_multi_worker_workarounds",
    "replica_runner",
    "distributed_iwae_log_likelihood",
    "distributed_ais_log_likelihood",
    "distributed_ais_gap_table",
    "PeerWatchdog",
]
