"""tf.distribute for tfvi: strategies from a flag value, TF_CONFIG, chief-only writing,
the Keras 3.15 MultiWorkerMirroredStrategy workarounds, and sharded evaluation.

tfvi adds no cluster code of its own: `MirroredStrategy` (the devices of one machine)
and `MultiWorkerMirroredStrategy` (several processes/machines, configured by the
`TF_CONFIG` environment variable) do the work; every model's `train_step` divides its
per-replica loss by `num_replicas_in_sync` (the optimizer SUM-reduces gradients), so a
step with a global batch of B on N replicas computes the gradient of the mean loss over
B examples, and `replica_seed` (tfvi.models.vae) makes each replica draw its own noise.

Order matters: a strategy (and logical devices) must be created before any other
TensorFlow op in the process.

Keras 3.15 + MultiWorkerMirroredStrategy: `fit` needs two workarounds (both reproduce
with a plain `Sequential` model; upstream keras-team/keras#20585 and
tensorflow/tensorflow#72388), kept here in `apply_multi_worker_workarounds`:

1. `Trainer._maybe_symbolic_build` calls `strategy.reduce("MEAN", batch)` on a nested
   batch such as `(x, y)` and fails on the `PerReplica` leaves. We build the model and
   optimizer ourselves (tfvi models create every variable in `build()`) and skip it.
2. `reduce_per_replica` reduces every log with `axis=0`, which fails on scalars; the
   step's logs are returned with shape `[1]` (Keras then averages them over replicas and
   the History still shows scalars).
"""

import contextlib
import faulthandler
import json
import os
import shutil
import tempfile

import keras

import numpy as np
import tensorflow as tf

__all__ = [
    "STRATEGY_NAMES",
    "configure_logical_cpus",
    "create_strategy",
    "tf_config",
    "is_chief",
    "worker_dir",
    "chief_or_temp_dir",
    "apply_multi_worker_workarounds",
    "distributed_iwae_log_likelihood",
    "PeerWatchdog",
]

STRATEGY_NAMES = ("default", "mirrored", "multi_worker")


def configure_logical_cpus(num_devices):
    """Splits the first physical CPU into `num_devices` logical devices.

    Must run before any TensorFlow op (TensorFlow refuses to reconfigure devices once
    initialised). Returns the logical device names, e.g. `["/cpu:0", "/cpu:1"]`.
    """
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1:
        raise ValueError(f"`num_devices` must be a positive integer; got {num_devices!r}.")
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError as err:
        raise RuntimeError(
            "configure_logical_cpus must run before any TensorFlow op in the process "
            f"(TensorFlow says: {err})") from None
    return [f"/cpu:{i}" for i in range(num_devices)]


def tf_config():
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


def create_strategy(name="default", devices=None, timeout_seconds=60.0):
    """A `tf.distribute.Strategy` for `--strategy=name`, or None for "default".

    Args:
      name: "default" (one device, no strategy), "mirrored" (all local devices, or
        `devices`), "multi_worker" (MultiWorkerMirroredStrategy from TF_CONFIG, ring
        all-reduce).
      devices: device names for "mirrored" (default: all local GPUs, else the CPU).
      timeout_seconds: for "multi_worker", how long a collective waits for a peer
        before failing with DeadlineExceeded (bounds the hang when a worker dies).
    """
    if name not in STRATEGY_NAMES:
        raise ValueError(f"`strategy` must be one of {', '.join(STRATEGY_NAMES)}; "
                         f"got {name!r}.")
    if name == "default":
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    config = tf_config()
    if not config.get("cluster", {}).get("worker"):
        raise ValueError("--strategy=multi_worker needs TF_CONFIG with a "
                         '"cluster": {"worker": ["host:port", ...]} entry and this '
                         'process\'s "task"; see README "Scaling out".')
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING,
        timeout_seconds=float(timeout_seconds))
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def is_chief(strategy=None):
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


def worker_dir(base_dir, strategy=None):
    """`base_dir` on the chief; on other workers a fresh temporary directory.

    Every worker must run the same saving code (checkpoints and SavedModel export
    use collectives), but only the chief's files are kept; the caller removes the
    others' directories with `shutil.rmtree` (see `chief_or_temp_dir`).
    """
    if is_chief(strategy):
        return base_dir
    resolver = strategy.cluster_resolver
    return tempfile.mkdtemp(prefix=f"tfvi-{resolver.task_type}{resolver.task_id}-")


@contextlib.contextmanager
def chief_or_temp_dir(base_dir, strategy=None):
    """Context manager yielding `worker_dir(base_dir, strategy)`; a non-chief's
    temporary directory is deleted on exit (also on error)."""
    path = worker_dir(base_dir, strategy)
    try:
        yield path
    finally:
        if path != base_dir:
            shutil.rmtree(path, ignore_errors=True)


def _rank1_logs(step):
    def wrapped(data):
        logs = step(data)
        return {k: tf.reshape(v, [1]) for k, v in logs.items()}

    return wrapped


def apply_multi_worker_workarounds(model, strategy):
    """Makes `model.fit`/`evaluate` work under MultiWorkerMirroredStrategy (Keras 3.15).

    Call after `compile()` inside `strategy.scope()`; the model must be built (tfvi
    models are, once `input_dim` is given or `build()` ran). Does nothing for other
    strategies. See the module docstring for the two upstream bugs.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return model
    if not model.built:
        raise ValueError("apply_multi_worker_workarounds needs a built model: pass "
                         "`input_dim` or call `model.build((None, input_dim))` first.")
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    # keras#20585 / tensorflow#72388, bug 1: skip the symbolic build (all built above).
    model._maybe_symbolic_build = lambda *args, **kwargs: None
    # Bug 2: scalar logs cannot be reduced along axis 0.
    model.train_step = _rank1_logs(model.train_step)
    model.test_step = _rank1_logs(model.test_step)
    return model


class PeerWatchdog(keras.callbacks.Callback):
    """Backstop for a multi-worker run that stops making progress.

    Measured here (TF 2.21, loopback, ring all-reduce): when one worker is SIGKILLed,
    MultiWorkerMirroredStrategy's heartbeat check aborts the survivor's collectives
    with `UnavailableError` ("tasks are unhealthy") about 25 s later; the launcher turns
    that into a one-line error. A blocked collective holds the GIL, so a Python
    watchdog thread cannot run; this callback arms `faulthandler.dump_traceback_later`
    (a C thread) instead: if no train/test batch or epoch ends for
    `timeout_seconds`, the stacks are dumped and the process exits with status 1.
    Checkpoints are written atomically (tfvi.callbacks), so the last complete one
    stays intact either way. Call `cancel()` when leaving `fit` by an exception.
    """

    def __init__(self, timeout_seconds):
        super().__init__()
        if not timeout_seconds > 0:
            raise ValueError(f"`timeout_seconds` must be positive; got {timeout_seconds!r}.")
        self.timeout_seconds = float(timeout_seconds)

    def _beat(self, *args, **kwargs):
        faulthandler.dump_traceback_later(self.timeout_seconds, exit=True)

    on_train_begin = on_train_batch_end = on_test_batch_end = on_epoch_end = _beat

    @staticmethod
    def cancel():
        faulthandler.cancel_dump_traceback_later()

    def on_train_end(self, logs=None):
        self.cancel()


# ------------------------------------------------------------ sharded evaluation
def _round_robin(strategy, fn, num_batches, make_args, sizes):
    """Runs `fn(*make_args(b))` (a `[sizes[b]]` vector) for batches b = 0..num_batches-1,
    batch b on replica b mod N, and returns the per-batch results (the same list on
    every worker).

    Each batch keeps its own index (and hence its seeds), so the results do not
    depend on the number of replicas.
    """
    n = strategy.num_replicas_in_sync
    results = [None] * num_batches
    for first in range(0, num_batches, n):
        ids = [min(first + r, num_batches - 1) for r in range(n)]  # pad the last round
        args = [make_args(b) for b in ids]
        per_replica = [strategy.experimental_distribute_values_from_function(
            lambda ctx, i=i: args[ctx.replica_id_in_sync_group][i])
            for i in range(len(args[0]))]
        out = strategy.run(fn, args=tuple(per_replica))
        # All replicas' vectors (also across workers), concatenated in replica order.
        gathered = np.asarray(strategy.gather(out, axis=0))
        offset = 0
        for r, b in enumerate(ids):
            if first + r < num_batches:
                results[b] = gathered[offset:offset + sizes[b]]
            offset += sizes[b]
    return results


def distributed_iwae_log_likelihood(model, x, strategy, num_samples=5000, batch_size=100,
                                    y=None, seed=0, stratified=True):
    """`tfvi.evaluation.iwae_log_likelihood` with batches spread over the replicas of
    `strategy` (MirroredStrategy or MultiWorkerMirroredStrategy).

    Batch b uses the same seed as in the single-device estimator and runs on replica
    b mod N, so the result equals `iwae_log_likelihood(model, x, num_samples,
    batch_size, y, seed, stratified)` up to float round-off. Every worker must call
    it with the same arguments; every worker gets the whole `[N]` float64 result.
    `num_samples // K` samples per component are drawn in one chunk (no chunking),
    so keep `num_samples * batch_size` moderate.
    """
    from tfvi.evaluation.likelihood import _check_positive_int

    num_samples = _check_positive_int("num_samples", num_samples)
    batch_size = _check_positive_int("batch_size", batch_size)
    x = np.asarray(x, np.float32)
    y = x if y is None else np.asarray(y)
    if x.ndim != 2:
        raise ValueError(f"`x` must have shape [N, input_dim]; got {x.shape}.")
    if len(y) != len(x):
        raise ValueError(f"`y` has {len(y)} examples but `x` has {len(x)}.")
    if y.dtype == np.float64:
        y = y.astype(np.float32)
    k = model.num_components if stratified else 1
    per_component = max(1, num_samples // k)
    n_total = len(x)
    num_batches = -(-n_total // batch_size)
    base_seed = tf.constant([seed, 0], tf.int32)
    sizes = [min(batch_size, n_total - b * batch_size) for b in range(num_batches)]

    def make_args(b):
        sl = slice(b * batch_size, (b + 1) * batch_size)
        # The single-device estimator's seed for batch b, chunk 0.
        seed_b = tf.random.experimental.stateless_fold_in(
            tf.random.experimental.stateless_fold_in(base_seed, b), 0)
        return (tf.constant(x[sl]), tf.constant(y[sl]), seed_b)

    @tf.function
    def log_mean(xb, yb, seed_b):
        terms = model.log_weight_terms(xb, yb, samples=per_component,
                                       stratified=stratified, seed=seed_b)
        log_w = terms["log_likelihood"] + terms["log_prior"] - terms["log_posterior"]
        log_w = tf.cast(log_w, tf.float64) + tf.cast(terms["log_alpha"], tf.float64)
        return (tf.reduce_logsumexp(log_w, axis=[0, 1])
                - tf.math.log(tf.constant(per_component, tf.float64)))

    results = _round_robin(strategy, log_mean, num_batches, make_args, sizes)
    return np.concatenate(results).astype(np.float64)
