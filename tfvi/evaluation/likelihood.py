"""Importance-sampling (IWAE-S) estimates of log p(x) for trained models.

    log p(x) ~= log (1/S) sum_s p(x, z_s) / q(z_s|x),   z_s ~ q(z|x),

stratified over the components of a mixture posterior (Morningstar et al., Theorem A.1:
S/K samples from each component weighted by alpha_k, a lower-variance estimator with
the same budget of S density evaluations).

`chunked_iwae` is the one kernel: it draws the S samples in chunks (so S = 5000 fits in
memory) and keeps a running log-sum-exp in float64. `iwae_log_likelihood` runs it over
a data set batch by batch, the SavedModel's `log_likelihood` signature
(`tfvi.export`) runs it in the graph, and `tfvi.distribute` spreads its batches over
replicas by passing a `batch_runner`.
"""

import math
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfvi import bounds
from tfvi.types import ArrayLike
from tfvi.validation import check_positive_int

__all__ = ["chunked_iwae", "default_chunk_elements", "iwae_log_likelihood", "run_batches"]

# Decoder evaluations (samples x components x examples) per IWAE chunk. A flat decoder
# holds a few KB of activations per evaluation; the 28x28 ConvVAE/ResnetVAE decoders
# of tfvi.networks hold about 0.3 MB in bfloat16 (0.6 MB in float32), measured, so
# 50,000 of them (17.5 GB) got a Table 1 run killed by the OOM killer.
FLAT_CHUNK_ELEMENTS = 50_000
IMAGE_CHUNK_ELEMENTS = 1_000


def default_chunk_elements(targets: np.ndarray) -> int:
    """Decoder evaluations per chunk for targets `[N, *event_shape]`: 1,000 when the
    event is an image (rank >= 2), else 50,000."""
    return IMAGE_CHUNK_ELEMENTS if np.ndim(targets) > 2 else FLAT_CHUNK_ELEMENTS


def chunked_iwae(model: Any, x: tf.Tensor, y: tf.Tensor | None, num_samples: Any,
                 seed: tf.Tensor, *, chunk_size: Any, stratified: bool = True) -> tf.Tensor:
    """IWAE estimate of log p(x) for one batch, float64 `[batch]`:

        log p(x) ~= logsumexp_{t,k} [log w_tk + log alpha_k] - log T,
        log w_tk = log p(x|z_tk) + log p(z_tk) - log q(z_tk|x)   (`tfvi.bounds.log_weights`)

    with T = max(S // K, 1) samples per component (K = `model.num_components` when
    `stratified`, else 1 and z drawn from the whole posterior). The T samples are
    drawn in chunks of at most `chunk_size` (`model.log_weight_terms` gives `[n, K,
    batch]` terms per chunk); chunk c starting at sample t_c uses the seed
    `fold_in(seed, t_c)`, and the log-sum-exp over chunks runs in float64 inside a
    `tf.while_loop`, so S and `chunk_size` may be tensors (the SavedModel signature)
    or Python ints.

    Args:
      model: anything with `log_weight_terms(x, y, samples=, stratified=, seed=)`
        (e.g. `tfvi.models.VAE`) and optionally `num_components`.
      x: encoder inputs `[batch, ...]`.
      y: likelihood targets (None: `x`).
      num_samples: S >= 1 (validated by the caller).
      seed: stateless seed `[2]` int32.
      chunk_size: samples per component per chunk, >= 1.
      stratified: stratify over mixture components.

    Returns:
      `[batch]` float64: a stochastic lower bound whose expectation increases to
      log p(x) with S.
    """
    k = int(getattr(model, "num_components", 1)) if stratified else 1
    per_component = tf.maximum(tf.cast(num_samples, tf.int32) // k, 1)
    chunk = tf.minimum(per_component, tf.cast(chunk_size, tf.int32))

    def body(done, total):
        n = tf.minimum(chunk, per_component - done)
        terms = model.log_weight_terms(x, y, samples=n, stratified=stratified,
                                       seed=tf.random.experimental.stateless_fold_in(seed, done))
        log_w = bounds.log_weights(terms["log_likelihood"], terms["log_prior"],
                                   terms["log_posterior"])
        log_w = tf.cast(log_w, tf.float64) + tf.cast(terms["log_alpha"], tf.float64)
        chunk_sum = tf.reduce_logsumexp(log_w, axis=[0, 1])
        return done + n, tf.reduce_logsumexp(tf.stack([total, chunk_sum]), axis=0)

    empty = tf.fill(tf.shape(x)[:1], tf.constant(-math.inf, tf.float64))
    _, total = tf.while_loop(lambda done, _: done < per_component, body,
                             (tf.constant(0), empty))
    return total - tf.math.log(tf.cast(per_component, tf.float64))


def run_batches(fn: Callable[..., tf.Tensor], batches: Sequence[tuple],
                on_result: Callable[[int, np.ndarray], None] | None = None) -> list:
    """The one-device batch runner: `[fn(*args).numpy() for args in batches]`.

    `on_result(b, result)` is called as batch b finishes (progress bars, early
    checks). `tfvi.distribute.replica_runner(strategy)` has the same signature and
    runs batch b on replica b mod N.
    """
    results = []
    for b, args in enumerate(batches):
        results.append(np.asarray(fn(*args)))
        if on_result is not None:
            on_result(b, results[-1])
    return results


def iwae_log_likelihood(model: keras.Model, x: ArrayLike, num_samples: int = 5000,
                        batch_size: int = 100, y: ArrayLike | None = None, seed: int = 0,
                        stratified: bool = True, max_chunk_elements: int | None = None,
                        verbose: int = 0, batch_runner: Callable | None = None) -> np.ndarray:
    """IWAE-`num_samples` estimate of log p(x) for each example, float64 `[N]`.

    Args:
      model: a tfvi model with `log_weight_terms` (e.g. `tfvi.models.VAE`).
      x: `[N, ...]` encoder inputs.
      num_samples: S, density evaluations per example. With a K-component mixture
        posterior and `stratified=True`, S // K samples come from each component.
      batch_size: examples per step.
      y: likelihood targets (default `x`).
      seed: integer seed; the estimate is a deterministic function of it (batch b
        runs `chunked_iwae` with the seed `fold_in([seed, 0], b)`).
      stratified: stratify over mixture components (else sample ancestrally).
      max_chunk_elements: bounds samples x components x batch per chunk (memory);
        None: `default_chunk_elements(y)` (fewer for image events).
      verbose: 1 shows a progress bar.
      batch_runner: how the batches run (default `run_batches`, one device;
        `tfvi.distribute.replica_runner(strategy)` spreads them over replicas with
        the same result).

    Returns:
      numpy float64 array `[N]`: the estimate (a stochastic lower bound whose
      expectation increases to log p(x) with S).
    """
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
    if max_chunk_elements is None:
        max_chunk_elements = default_chunk_elements(y)
    k = model.num_components if stratified else 1
    chunk = max(1, min(max(1, num_samples // k), max_chunk_elements // (k * batch_size)))

    @tf.function
    def estimate(xb, yb, seed_b):
        return chunked_iwae(model, xb, yb, num_samples, seed_b, chunk_size=chunk,
                            stratified=stratified)

    base_seed = tf.constant([seed, 0], tf.int32)
    starts = range(0, len(x), batch_size)
    batches = [(tf.constant(x[s:s + batch_size]), tf.constant(y[s:s + batch_size]),
                tf.random.experimental.stateless_fold_in(base_seed, b))
               for b, s in enumerate(starts)]
    bar = keras.utils.Progbar(len(x)) if verbose else None
    progress = None if bar is None else (
        lambda b, _: bar.update(min((b + 1) * batch_size, len(x))))
    batch_runner = run_batches if batch_runner is None else batch_runner
    return np.concatenate(batch_runner(estimate, batches, progress)).astype(np.float64)
