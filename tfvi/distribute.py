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
import weakref

import keras
import numpy as np
import tensorflow as tf

from tfvi.seeds import as_seed
from tfvi.validation import check_positive_int

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
    "distributed_ais_log_likelihood",
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
    Checkpoints are written atomically (tfvi.training.checkpointing), so the last complete one
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
def _round_robin(strategy, fn, num_batches, make_args, sizes, progress=None):
    """Runs `fn(*make_args(b))` (a tensor with leading dimension `sizes[b]`) for batches
    b = 0..num_batches-1, batch b on replica b mod N, and returns the per-batch results
    as numpy arrays (the same list on every worker).

    Each batch keeps its own index (and hence its seeds), so the results do not
    depend on the number of replicas. `progress(done)` is called after each round with
    the number of batches finished.
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
        # All replicas' outputs (also across workers), concatenated in replica order.
        gathered = np.asarray(strategy.gather(out, axis=0))
        offset = 0
        for r, b in enumerate(ids):
            if first + r < num_batches:
                results[b] = gathered[offset:offset + sizes[b]]
            offset += sizes[b]
        if progress is not None:
            progress(min(first + n, num_batches))
    return results


def distributed_iwae_log_likelihood(model, x, strategy, num_samples=5000, batch_size=100,
                                    y=None, seed=0, stratified=True,
                                    max_chunk_elements=50_000):
    """`tfvi.evaluation.iwae_log_likelihood` with batches spread over the replicas of
    `strategy` (MirroredStrategy or MultiWorkerMirroredStrategy).

    Batch b draws its samples in the same chunks with the same seeds
    (`fold_in(fold_in(seed, b), first sample of the chunk)`) as the single-device
    estimator and runs on replica b mod N, so the result equals `iwae_log_likelihood(
    model, x, num_samples, batch_size, y, seed, stratified, max_chunk_elements)` up to
    float round-off. Every worker must call it with the same arguments; every worker
    gets the whole `[N]` float64 result.
    """
    from tfvi.evaluation.likelihood import _chunk_log_sum

    num_samples = check_positive_int("num_samples", num_samples)
    batch_size = check_positive_int("batch_size", batch_size)
    x = np.asarray(x, np.float32)
    y = x if y is None else np.asarray(y)
    if x.ndim < 2:
        raise ValueError(f"`x` must have shape [N, input_dim]; got {x.shape}.")
    if len(y) != len(x):
        raise ValueError(f"`y` has {len(y)} examples but `x` has {len(x)}.")
    if y.dtype == np.float64:
        y = y.astype(np.float32)
    k = model.num_components if stratified else 1
    per_component = max(1, num_samples // k)
    # The single-device estimator's sample chunks: (first sample, chunk size).
    chunk = max(1, min(per_component, max_chunk_elements // (k * batch_size)))
    chunks = [(done, min(chunk, per_component - done))
              for done in range(0, per_component, chunk)]
    log_sum = _chunk_log_sum(model, stratified)
    n_total = len(x)
    num_batches = -(-n_total // batch_size)
    base_seed = tf.constant([seed, 0], tf.int32)
    sizes = [min(batch_size, n_total - b * batch_size) for b in range(num_batches)]

    def make_args(b):
        sl = slice(b * batch_size, (b + 1) * batch_size)
        return (tf.constant(x[sl]), tf.constant(y[sl]),
                tf.random.experimental.stateless_fold_in(base_seed, b))

    @tf.function
    def log_mean(xb, yb, seed_b):
        sums = [log_sum(xb, yb, num, tf.random.experimental.stateless_fold_in(seed_b, done))
                for done, num in chunks]
        return (tf.reduce_logsumexp(tf.stack(sums), axis=0)
                - tf.math.log(tf.constant(per_component, tf.float64)))

    results = _round_robin(strategy, log_mean, num_batches, make_args, sizes)
    return np.concatenate(results).astype(np.float64)


def _check_xla_variables(model, strategy, jit_compile):
    if not jit_compile or len(strategy.extended.worker_devices) < 2:
        return
    plain = [v.path for v in model.variables
             if not isinstance(getattr(v, "value", v), tf.distribute.DistributedValues)]
    if plain:
        raise ValueError(
            "distributed_ais_log_likelihood with jit_compile=True on "
            f"{len(strategy.extended.worker_devices)} local devices needs the model's "
            "variables created inside `strategy.scope()` (XLA cannot read a variable "
            f"on another device); {plain[0]!r} and {len(plain) - 1} more are not. Build "
            "or restore the model under the scope, or pass jit_compile=False.")


_AIS_LAST = {}  # "entry": (weakref to the model, protocol key, compiled chunk function)


def _ais_chunk_fn(run, betas, step_size, chunk, weight_diagnostics):
    """The replica function of one AIS chunk: `run` (from `_make_runner`) on a
    `[chunk, D]` batch, reduced to a `[chunk, 5]` float64 array (see below)."""
    betas_t = tf.constant(betas, tf.float32)
    steps_t = tf.fill([len(betas) - 1], tf.constant(step_size, tf.float32))

    @tf.function(autograph=False)
    def chunk_rows(xb, yb, seed_b):
        res = run(xb, yb, betas_t, steps_t, seed_b)
        log_z, ess, _ = weight_diagnostics(res["log_weights"])
        per_chunk = tf.stack([
            tf.reduce_mean(tf.cast(res["acceptance"], tf.float64)),
            tf.cast(res["bad_index"], tf.float64),
            tf.cast(res["bad_step"], tf.float64)])
        # One row per example: log p(x) estimate, ESS, then the chunk's mean acceptance,
        # first non-finite temperature index (-1: none) and its step size.
        return tf.concat([tf.stack([log_z, ess], axis=1),
                          tf.tile(per_chunk[tf.newaxis], [chunk, 1])], axis=1)

    return chunk_rows


def distributed_ais_log_likelihood(model, x, strategy, *, preset="wu", num_chains=None,
                                   num_temperatures=None, num_leapfrog_steps=None,
                                   schedule=None, target_accept_prob=0.6, step_size=0.1,
                                   batch_size=100, y=None, seed=0, binarization=None,
                                   jit_compile=True, verbose=1, num_pilot_chains=None):
    """`tfvi.evaluation.ais_log_likelihood` with its chunks spread over the replicas of
    `strategy` (MirroredStrategy or MultiWorkerMirroredStrategy).

    Same arguments and return value (`AISEstimate(log_likelihood [N] float64,
    protocol, mean_acceptance, mean_ess)`). The data are cut into the same chunks of
    `min(batch_size, N)` examples as on one device (the last one padded by wrapping
    around), chunk b runs the same compiled AIS loop (`_make_runner`, Ding & Freedman eqs. 7-8)
    with the same seed `fold_in(seed, b)` on replica b mod R, and the per-example
    log-mean-exp of the chain weights, their ESS, the chunk's mean acceptance and its
    non-finite marker are gathered (`strategy.gather`, across workers too). So the
    result equals the single-device `ais_log_likelihood(model, x, ...)` with the same
    seed and batch size up to float round-off, for any number of replicas. Every
    worker must call it with the same arguments and gets the whole result; a
    non-finite log-weight raises `FloatingPointError` on every worker.

    With several local devices (MirroredStrategy) and `jit_compile=True`, build (or
    restore) `model` inside `strategy.scope()`: an XLA cluster on device r cannot read
    a plain variable that lives on device 0 (a ValueError says so), but reads its
    replica's copy of a mirrored variable.
    `protocol["num_replicas"]` records R; the other protocol entries are those of the
    single-device estimator.
    """
    from tfvi.evaluation import ais as ais_eval
    from tfvi.mcmc.ais import raise_if_not_finite, weight_diagnostics

    settings, betas, x, y = ais_eval._prepare(
        preset, x, y, batch_size, num_chains=num_chains, num_temperatures=num_temperatures,
        num_leapfrog_steps=num_leapfrog_steps, schedule=schedule,
        num_pilot_chains=num_pilot_chains)
    _check_xla_variables(model, strategy, jit_compile)
    base = as_seed(seed)
    n = len(x)
    chunk = min(batch_size, n)
    starts = list(range(0, n, chunk))
    # The compiled loop of the last call is reused when the model and protocol match
    # (e.g. the test and train splits of the Ding & Freedman table compile once). One entry
    # only: the function holds the model.
    key = (settings["num_chains"], settings["num_leapfrog_steps"], settings["num_pilot_chains"],
           np.asarray(betas, np.float64).tobytes(), bool(jit_compile),
           float(target_accept_prob), float(step_size), chunk)
    cached = _AIS_LAST.get("entry")
    if cached is not None and cached[0]() is model and cached[1] == key:
        chunk_rows = cached[2]
    else:
        chunk_rows = _ais_chunk_fn(
            ais_eval._make_runner(model, settings, jit_compile, target_accept_prob,
                                  step_size), betas, step_size, chunk, weight_diagnostics)
        _AIS_LAST["entry"] = (weakref.ref(model), key, chunk_rows)

    def make_args(b):
        idx = np.arange(starts[b], starts[b] + chunk) % n  # as on one device
        return (tf.constant(x[idx]), tf.constant(y[idx]),
                tf.random.experimental.stateless_fold_in(base, b))

    bar = (keras.utils.Progbar(n, unit_name="example")
           if verbose and is_chief(strategy) else None)
    rows = _round_robin(strategy, chunk_rows, len(starts), make_args, [chunk] * len(starts),
                        progress=None if bar is None else
                        (lambda done: bar.update(min(done * chunk, n))))
    for r in rows:
        raise_if_not_finite({"bad_index": int(r[0, 3]), "bad_step": r[0, 4]}, betas)
    out = np.concatenate([r[:min(chunk, n - s), 0] for r, s in zip(rows, starts)])
    ess = np.concatenate([r[:min(chunk, n - s), 1] for r, s in zip(rows, starts)])
    protocol = ais_eval._protocol(settings, target_accept_prob, step_size, seed,
                                  binarization, n)
    protocol["num_replicas"] = int(strategy.num_replicas_in_sync)
    return ais_eval.AISEstimate(out.astype(np.float64), protocol,
                                float(np.mean([r[0, 2] for r in rows])), float(np.mean(ess)))
