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
  the next batches are prefetched while the step runs;
* when the step is XLA-compiled (`compile`'s choice for dense networks), fuse those
  steps into one XLA computation: `block_dataset` stacks up to
  `DEFAULT_STEPS_PER_EXECUTION` consecutive batches into one `[steps, batch, ...]`
  element of an endless stream, and `fused_train_function` runs `train_step` over the
  block in an XLA while-loop. Keras' own `steps_per_execution` loop calls the
  XLA-compiled step once per batch from a graph; fusing the block doubled the digits
  VAE's steps/s (0.86 ms a step against 1.7 ms, measured in one process; `fit`
  against Pythae: `benchmarks/vs_pythae.py`, docs/performance.md).

Keras' logs are read once per call, so metrics reach callbacks every
`steps_per_execution` steps (once per block when fused) and at epoch ends.
"""

import numpy as np
import tensorflow as tf

__all__ = ["DEFAULT_STEPS_PER_EXECUTION", "array_dataset", "block_dataset",
           "fused_train_function", "endless_batches", "prefetched", "needs_every_step",
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
    x, y, n = _check_rows(x, y, batch_size)
    indices = tf.data.Dataset.range(n)
    if shuffle:
        indices = indices.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    indices = indices.batch(int(batch_size))

    def gather(idx):
        return tf.gather(x, idx) if y is None else (tf.gather(x, idx), tf.gather(y, idx))

    return indices.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)


def _check_rows(x, y, batch_size):
    x = tf.convert_to_tensor(x)
    n = int(x.shape[0])
    if y is not None:
        y = tf.convert_to_tensor(y)
        if int(y.shape[0]) != n:
            raise ValueError(f"`y` must have as many rows as `x` ({n}); got {y.shape[0]}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or \
            batch_size <= 0:
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    return x, y, n


def block_dataset(x, y=None, batch_size=32, block_steps=DEFAULT_STEPS_PER_EXECUTION,
                  shuffle=True, seed=None):
    """An endless stream of training blocks: epoch after epoch, `x`'s rows in batches,
    consecutive batches stacked.

    Each epoch draws a permutation of the N row indices in-graph (or keeps their order),
    cuts it into batches of `batch_size` (the last holds the remainder, as in `fit` on
    arrays) and stacks up to `block_steps` consecutive full batches into one element
    `x[idx]` of shape `[steps, batch_size, ...]`; leftover full batches form one shorter
    block and the remainder batch a block of one step, `[1, N mod batch_size, ...]`.
    So an epoch is `elements_per_epoch` elements of at most three shapes, and the
    batches and their order are those of `array_dataset(x, y, batch_size, shuffle,
    seed)` over the same permutation.

    Args:
      x: `[N, ...]` array; y: optional `[N, ...]` targets, blocked alongside.
      batch_size: examples per step; block_steps: steps per element (at most).
      shuffle: a new permutation every epoch; seed: its op seed.

    Returns:
      `(dataset, elements_per_epoch)`; elements are `x` blocks or `(x, y)` tuples.
    """
    x, y, n = _check_rows(x, y, batch_size)
    if isinstance(block_steps, bool) or not isinstance(block_steps, (int, np.integer)) \
            or block_steps <= 0:
        raise ValueError(f"`block_steps` must be a positive integer; got {block_steps!r}.")
    full, remainder = divmod(n, int(batch_size))
    steps = min(int(block_steps), max(full, 1))
    blocks = full // steps
    # (first index, steps, batch size) of each element of an epoch: static slices.
    plan = []
    if blocks:
        plan.append((0, blocks, steps, batch_size))
    if full % steps:
        plan.append((blocks * steps * batch_size, 1, full % steps, batch_size))
    if remainder:
        plan.append((full * batch_size, 1, 1, remainder))

    if shuffle:
        orders = tf.data.Dataset.range(n).shuffle(n, seed=seed,
                                                 reshuffle_each_iteration=True).batch(n)
    else:
        orders = tf.data.Dataset.from_tensors(tf.range(n, dtype=tf.int64))

    def elements(order):
        parts = [tf.data.Dataset.from_tensor_slices(
            tf.reshape(order[start:start + count * k * b], [count, k, b]))
            for start, count, k, b in plan]
        out = parts[0]
        for part in parts[1:]:
            out = out.concatenate(part)
        return out

    def gather(idx):
        return tf.gather(x, idx) if y is None else (tf.gather(x, idx), tf.gather(y, idx))

    indices = orders.repeat().flat_map(elements)
    return prefetched(indices.map(gather)), sum(count for _, count, _, _ in plan)


def prefetched(dataset):
    """`dataset` with the next two elements prepared while the step runs, without
    tf.data's autotuning thread: tearing its iterator down at the end of a `fit` then
    waited up to 0.3 s for it (a quarter of a 20-epoch digits `fit`)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)


def fused_train_function(model):
    """Keras' `train_function(iterator)` for `block_dataset` elements: one XLA
    computation runs `model.train_step` on each batch of the block in turn (a
    while-loop) and returns the last step's logs; a block of one batch (the partial
    one) runs as a plain XLA step."""
    one_step = tf.function(model.train_step, jit_compile=True, reduce_retracing=True)

    @tf.function(jit_compile=True, reduce_retracing=True)
    def run_block(block):
        steps = tf.shape(tf.nest.flatten(block)[0])[0]
        batch_spec = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape[1:], t.dtype),
                                           block)
        # The logs' structure, traced but not run, starts the loop: one copy of the
        # step in the XLA computation instead of a first step outside the loop.
        outputs = one_step.get_concrete_function(batch_spec).structured_outputs
        logs = tf.nest.map_structure(lambda t: tf.zeros(t.shape, t.dtype), outputs)

        def body(i, _):
            return i + 1, model.train_step(tf.nest.map_structure(lambda t: t[i], block))

        _, logs = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), logs))
        return logs

    def train_function(iterator):
        block = next(iterator)
        if tf.nest.flatten(block)[0].shape[0] == 1:
            return one_step(tf.nest.map_structure(lambda t: t[0], block))
        return run_block(block)

    return train_function


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


def endless_batches(dataset):
    """Whether `dataset` is a `tf.data.Dataset` of infinite cardinality whose elements
    (a tensor or a tuple of tensors) all have the same static batch size, so that
    consecutive elements can be stacked into `[steps, batch, ...]` blocks."""
    if not isinstance(dataset, tf.data.Dataset) or \
            int(dataset.cardinality()) != int(tf.data.INFINITE_CARDINALITY):
        return False
    specs = tf.nest.flatten(dataset.element_spec)
    if not specs or not all(isinstance(s, tf.TensorSpec) for s in specs):
        return False
    sizes = {s.shape[0] if s.shape.rank else None for s in specs}
    return len(sizes) == 1 and None not in sizes


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
    """`(x, y, kwargs, fused)` for Keras' `fit` on a model whose `steps_per_execution`
    tfvi chooses.

    Sets `model.steps_per_execution` (`auto_steps_per_execution` of the callbacks; the
    train function is rebuilt when it changes). In-memory arrays (unless an argument
    only Keras' array adapter implements is set, or a distribution strategy is active)
    become `block_dataset(x, y, batch_size, steps, shuffle)` with `steps_per_epoch` set
    and `fused=True` when the model is built and XLA-compiled (the caller then trains
    with `fused_train_function`), else `array_dataset(x, y, batch_size, shuffle)`.
    An endless dataset of equal batches (`endless_batches`) with `steps_per_epoch`
    given is fused the same way: `steps` consecutive batches form one block
    (`dataset.batch(steps)`; `steps` divides `steps_per_epoch`, so epochs keep their
    batches), as `tfvi-train`'s training stream is.
    """
    spe = auto_steps_per_execution(kwargs.get("callbacks"), model)
    steps = kwargs.get("steps_per_epoch")
    if steps and spe > 1:
        # Keras runs whole executions: with steps_per_epoch = 15 and 16 steps per call
        # an "epoch" would take 16 steps. Use the largest divisor of steps_per_epoch.
        spe = max(d for d in range(1, min(spe, steps) + 1) if steps % d == 0)
    shuffle = kwargs.get("shuffle", True)
    arrays = (isinstance(x, (np.ndarray, tf.Tensor)) and shuffle in (True, False)
              and not any(kwargs.get(k) for k in _KERAS_ARRAY_ONLY)
              and not distributed(model))
    stream = bool(steps) and y is None and endless_batches(x) and not distributed(model)
    fused = ((arrays or stream) and spe > 1 and model.built
             and model.jit_compile is True)
    block_steps, spe = (spe, 1) if fused else (None, spe)  # Keras sees one block a call
    if spe != model.steps_per_execution:
        model.steps_per_execution = spe
        # Keras rebuilds them with the new value.
        model.train_function = model.test_function = model.predict_function = None
    if stream and fused:
        kwargs = dict(kwargs, steps_per_epoch=steps // block_steps)
        return prefetched(x.batch(block_steps, drop_remainder=True)), None, kwargs, True
    if not arrays:
        return x, y, kwargs, False
    kwargs = dict(kwargs)
    kwargs["shuffle"] = False  # the dataset shuffles itself
    batch_size = kwargs.pop("batch_size", None) or 32
    if fused:
        dataset, kwargs["steps_per_epoch"] = block_dataset(x, y, batch_size, block_steps,
                                                           shuffle=shuffle)
        return dataset, None, kwargs, True
    return array_dataset(x, y, batch_size, shuffle=shuffle), None, kwargs, False
