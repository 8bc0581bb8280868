"""The cluster a process belongs to: `TF_CONFIG`, which worker is the chief, and where
each worker writes.

Every worker of a MultiWorkerMirroredStrategy run executes the same saving code
(checkpoints and SavedModel export use collectives), but only the chief's files are
kept: the chief writes into the real directory, the others into temporary ones that
are removed afterwards (`chief_or_temp_dir`).
"""

import contextlib
import json
import os
import shutil
import tempfile

import tensorflow as tf

__all__ = ["tf_config", "is_chief", "worker_dir", "chief_or_temp_dir"]


def tf_config() -> dict:
    """The parsed `TF_CONFIG` environment variable (`{}` when unset).

    Raises ValueError if it is not JSON or lacks `cluster`/`task`.
    """
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}); got {raw!r}.") from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise ValueError('TF_CONFIG must be {"cluster": {"worker": [...]}, "task": '
                         f'{{"type": "worker", "index": i}}}}; got {raw!r}.')
    return config


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """True for the process that writes checkpoints, TensorBoard and exports.

    Without a multi-worker cluster every process is the chief. With TF_CONFIG the
    chief is task `chief` or, when the cluster has none, worker 0 (TF's convention).
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_dir(base_dir: str, strategy: tf.distribute.Strategy | None = None) -> str:
    """`base_dir` on the chief; on other workers a fresh temporary directory
    (`tfvi-<task type><task id>-*` under `TMPDIR`) that the caller removes, e.g. with
    `chief_or_temp_dir`."""
    if is_chief(strategy):
        return base_dir
    resolver = strategy.cluster_resolver
    return tempfile.mkdtemp(prefix=f"tfvi-{resolver.task_type}{resolver.task_id}-")


@contextlib.contextmanager
def chief_or_temp_dir(base_dir: str, strategy: tf.distribute.Strategy | None = None):
    """Context manager yielding `worker_dir(base_dir, strategy)`; a non-chief's
    temporary directory is deleted on exit (also on error)."""
    path = worker_dir(base_dir, strategy)
    try:
        yield path
    finally:
        if path != base_dir:
            shutil.rmtree(path, ignore_errors=True)
