"""Sharded evaluation: the estimators of `tfvi.evaluation` with their batches spread
over the replicas of a strategy (MirroredStrategy or MultiWorkerMirroredStrategy).

Nothing here re-implements an estimator. `tfvi.evaluation.iwae_log_likelihood`,
`ais_log_likelihood` and `ais_gap_table` cut the data into batches, give batch b its
own seed (IWAE: `chunked_iwae` with `fold_in([seed, 0], b)`; AIS: `fold_in(seed, b)`
and the wrap-around padding of the last chunk) and hand the per-batch function and the
batches to a `batch_runner`. `replica_runner(strategy)` runs batch b on replica
b mod N and gathers the results across workers (`strategy.gather`), so every worker
gets the whole result and it equals the one-device estimate for any number of
replicas, up to float round-off. Every worker must call with the same arguments.
"""

from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfvi.distribute.cluster import is_chief
from tfvi.evaluation.ais import AISEstimate, ais_log_likelihood
from tfvi.evaluation.gaps import ais_gap_table
from tfvi.evaluation.likelihood import iwae_log_likelihood, run_batches

__all__ = ["replica_runner", "distributed_iwae_log_likelihood",
           "distributed_ais_log_likelihood", "distributed_ais_gap_table"]


def replica_runner(strategy: tf.distribute.Strategy | None) -> Callable:
    """A `batch_runner` (see `tfvi.evaluation.likelihood.run_batches`) that runs batch b
    on replica b mod N of `strategy`; `run_batches` itself when `strategy` is None.

    `fn(*batches[b])` must return a tensor whose leading dimension is batch b's size.
    The last round is padded by repeating the last batch (its extra results dropped);
    `on_result(b, result)` is called for each batch as its round finishes.
    """
    if strategy is None:
        return run_batches

    def run(fn: Callable, batches: Sequence[tuple], on_result=None) -> list:
        n, num_batches = strategy.num_replicas_in_sync, len(batches)
        results = [None] * num_batches
        for first in range(0, num_batches, n):
            ids = [min(first + r, num_batches - 1) for r in range(n)]
            args = [batches[b] for b in ids]
            per_replica = [strategy.experimental_distribute_values_from_function(
                lambda ctx, i=i: args[ctx.replica_id_in_sync_group][i])
                for i in range(len(args[0]))]
            # All replicas' outputs (also across workers), concatenated in replica order.
            gathered = np.asarray(strategy.gather(
                strategy.run(fn, args=tuple(per_replica)), axis=0))
            offset = 0
            for r, b in enumerate(ids):
                size = int(args[r][0].shape[0])
                if first + r < num_batches:
                    results[b] = gathered[offset:offset + size]
                    if on_result is not None:
                        on_result(b, results[b])
                offset += size
        return results

    return run


def distributed_iwae_log_likelihood(model: keras.Model, x: Any,
                                    strategy: tf.distribute.Strategy | None,
                                    **kwargs: Any) -> np.ndarray:
    """`tfvi.evaluation.iwae_log_likelihood(model, x, **kwargs)` with its batches on the
    replicas of `strategy`: the same `[N]` float64 result on every worker."""
    return iwae_log_likelihood(model, x, batch_runner=replica_runner(strategy), **kwargs)


def _check_xla_variables(model, strategy, jit_compile):
    if strategy is None or not jit_compile or len(strategy.extended.worker_devices) < 2:
        return
    plain = [v.path for v in model.variables
             if not isinstance(getattr(v, "value", v), tf.distribute.DistributedValues)]
    if plain:
        raise ValueError(
            "AIS with jit_compile=True on "
            f"{len(strategy.extended.worker_devices)} local devices needs the model's "
            "variables created inside `strategy.scope()` (XLA cannot read a variable "
            f"on another device); {plain[0]!r} and {len(plain) - 1} more are not. Build "
            "or restore the model under the scope, or pass jit_compile=False.")


def distributed_ais_log_likelihood(model: keras.Model, x: Any,
                                   strategy: tf.distribute.Strategy | None, *,
                                   jit_compile: bool = True, verbose: int = 1,
                                   **kwargs: Any) -> AISEstimate:
    """`tfvi.evaluation.ais_log_likelihood(model, x, **kwargs)` with its chunks on the
    replicas of `strategy`; same arguments and result on every worker, and
    `protocol["num_replicas"]` records N. Only the chief shows a progress bar; a
    non-finite log-weight raises `FloatingPointError` on every worker.

    With several local devices (MirroredStrategy) and `jit_compile=True`, build (or
    restore) `model` inside `strategy.scope()`: an XLA cluster on device r cannot read
    a plain variable that lives on device 0 (a ValueError says so), but reads its
    replica's copy of a mirrored variable.
    """
    _check_xla_variables(model, strategy, jit_compile)
    estimate = ais_log_likelihood(model, x, jit_compile=jit_compile,
                                  verbose=verbose if is_chief(strategy) else 0,
                                  batch_runner=replica_runner(strategy), **kwargs)
    estimate.protocol["num_replicas"] = _num_replicas(strategy)
    return estimate


def distributed_ais_gap_table(model: keras.Model, x_test: Any, x_train: Any,
                              strategy: tf.distribute.Strategy | None, *,
                              jit_compile: bool = True, verbose: int = 0,
                              **kwargs: Any) -> dict:
    """`tfvi.evaluation.ais_gap_table(model, x_test, x_train, **kwargs)` with the batches
    of its AIS and IWAE estimates on the replicas of `strategy` (None: one device);
    the same table on every worker, `protocol["num_replicas"]` recording N."""
    _check_xla_variables(model, strategy, jit_compile)
    table = ais_gap_table(model, x_test, x_train, jit_compile=jit_compile,
                          verbose=verbose if is_chief(strategy) else 0,
                          batch_runner=replica_runner(strategy), **kwargs)
    table["protocol"]["num_replicas"] = _num_replicas(strategy)
    return table


def _num_replicas(strategy):
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)
