"""The path `fit` takes for in-memory arrays, and how many steps run per call.

On the small models researchers iterate on (an MLP VAE on the 64-d digits takes about
2 ms per step on two CPU cores) Keras' per-step work around the step (the epoch
iterator, one `tf.function` call and the callbacks per batch) cost more than the step
itself: `fit` kept a third of the bare step's throughput (issue 16;
`benchmarks/fit_overhead.py`). tfvi's models therefore, when the user did not choose:

* run several steps per `tf.function` call (`steps_per_execution`,
  `DEFAULT_STEPS_PER_EXECUTION`) unless a callback must act before every step
  (`needs_every_step`), and
* feed arrays through `array_dataset`: the arrays live in the graph once, every epoch
  shuffles the indices in-graph and gathers whole batches (no per-example work), and
  the next batches are prefetched while the step runs.

Keras' logs are read once per call, so metrics reach callbacks every
`steps_per_execution` steps and at epoch ends.
"""

import numpy as np
import tensorflow as tf

__all__ = ["DEFAULT_STEPS_PER_EXECUTION", "array_dataset", "needs_every_step",
           "auto_steps_per_execution", "distributed", "fit_arguments"]

# `fit` arguments only Keras' own array adapter implements: with any of them set the
# arrays go to Keras unchanged.
_KERAS_ARRAY_ONLY = ("validation_split", "sample_weight", "class_weight", "steps_per_epoch")

# Measured on the digits VAE (benchmarks/fit_overhead.py): 16 steps per call leave
# under a few percent of the step time to the per-call overhead.
DEFAULT_STEPS_PER_EXECUTION = 16


def array_dataset(x, y=None, batch_size=32, shuffle=True, seed=None):
    """One epoch of `(x[idx], y[idx])` batches as a `tf.data.Dataset`.

    Args:
      x: `[N, ...]` array (the inputs).
      y: optional `[N, ...]` array (targets), batched alongside `x`.
      batch_size: examples per batch; the last batch holds the remainder, as in
        Keras' `fit` on arrays.
      shuffle: a new permutation of the N indices every time the dataset is iterated
        (i.e. every epoch), drawn in-graph.
      seed: op seed of the shuffle (None: Keras' global seed state decides).

    Returns:
      a finite dataset of `x` batches (or `(x, y)` tuples), prefetched.
    """
    x = tf.convert_to_tensor(x)
    n = int(x.shape[0])
    if y is not None:
        y = tf.convert_to_tensor(y)
        if int(y.shape[0]) != n:
            raise ValueError(f"`y` must have as many rows as `x` ({n}); got {y.shape[0]}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or \
            batch_size <= 0:
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    indices = tf.data.Dataset.range(n)
    if shuffle:
        indices = indices.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    indices = indices.batch(int(batch_size))

    def gather(idx):
        return tf.gather(x, idx) if y is None else (tf.gather(x, idx), tf.gather(y, idx))

    return indices.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)


def needs_every_step(callback):
    """Whether `callback` must run around every training step: it says so
    (`every_step = True`, e.g. fault injection at a chosen step) or it overrides a
    batch-*begin* hook (e.g. a per-step KL warm-up). Other batch-end hooks (progress,
    NaN checks) only see every `steps_per_execution`-th step's logs, which suffices."""
    import keras

    if getattr(callback, "every_step", False):
        return True

    base = keras.callbacks.Callback
    per_step = any(getattr(type(callback), hook) is not getattr(base, hook)
                   for hook in ("on_train_batch_begin", "on_batch_begin"))
    return per_step and getattr(callback, "per_step", True) is not False


def distributed(model=None):
    """Whether a distribution strategy is in scope or `model` was built under one
    (Keras keeps the model's strategy for `fit` called outside the scope)."""
    strategy = getattr(model, "distribute_strategy", None)
    return tf.distribute.has_strategy() or (
        strategy is not None and strategy is not tf.distribute.get_strategy())


def auto_steps_per_execution(callbacks=(), model=None):
    """`steps_per_execution` for `fit`: 1 under a distribution strategy (in scope, or
    the one `model` was built under) or when a callback `needs_every_step`, else
    `DEFAULT_STEPS_PER_EXECUTION`."""
    if distributed(model):
        return 1
    if any(needs_every_step(c) for c in (callbacks or ())):
        return 1
    return DEFAULT_STEPS_PER_EXECUTION


def fit_arguments(model, x, y, kwargs):
    """`(x, y, kwargs)` for Keras' `fit` on a model whose `steps_per_execution` tfvi
    chooses: sets `model.steps_per_execution` (`auto_steps_per_execution` of the
    callbacks; the train function is rebuilt when it changes) and replaces in-memory
    arrays by `array_dataset(x, y, batch_size, shuffle)` unless an argument only
    Keras' array adapter implements is set (or a distribution strategy is active)."""
    spe = auto_steps_per_execution(kwargs.get("callbacks"), model)
    steps = kwargs.get("steps_per_epoch")
    if steps and spe > 1:
        # Keras runs whole executions: with steps_per_epoch = 15 and 16 steps per call
        # an "epoch" would take 16 steps. Use the largest divisor of steps_per_epoch.
        spe = max(d for d in range(1, min(spe, steps) + 1) if steps % d == 0)
    if spe != model.steps_per_execution:
        model.steps_per_execution = spe
        # Keras rebuilds them with the new value.
        model.train_function = model.test_function = model.predict_function = None
    shuffle = kwargs.get("shuffle", True)
    if (not isinstance(x, (np.ndarray, tf.Tensor)) or shuffle not in (True, False)
            or any(kwargs.get(k) for k in _KERAS_ARRAY_ONLY)
            or distributed(model)):
        return x, y, kwargs
    kwargs = dict(kwargs)
    kwargs["shuffle"] = False  # the dataset shuffles itself
    batch_size = kwargs.pop("batch_size", None) or 32
    return array_dataset(x, y, batch_size, shuffle=shuffle), None, kwargs
