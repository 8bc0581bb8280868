"""Importance-sampling (IWAE-k) estimates of log p(x) for trained models.

    log p(x) ~= log (1/S) sum_s p(x, z_s) / q(z_s|x),   z_s ~ q(z|x),

stratified over the components of a mixture posterior (Morningstar et al., Theorem A.1:
S/K samples from each component weighted by alpha_k, a lower-variance estimator with
the same budget of S density evaluations). The S samples are drawn in chunks so
S = 5000 fits in memory, and the log-mean-exp over chunks is taken in float64.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from tfvi.types import ArrayLike
from tfvi.validation import check_positive_int

__all__ = ["iwae_log_likelihood"]


def _chunk_log_sum(model, stratified):
    @tf.function
    def log_sum(x, y, num, seed):
        terms = model.log_weight_terms(x, y, samples=num, stratified=stratified, seed=seed)
        log_w = terms["log_likelihood"] + terms["log_prior"] - terms["log_posterior"]
        log_w = tf.cast(log_w, tf.float64) + tf.cast(terms["log_alpha"], tf.float64)
        return tf.reduce_logsumexp(log_w, axis=[0, 1])  # [batch]

    return log_sum


def iwae_log_likelihood(model: keras.Model, x: ArrayLike, num_samples: int = 5000,
                        batch_size: int = 100, y: ArrayLike | None = None, seed: int = 0,
                        stratified: bool = True, max_chunk_elements: int = 50_000,
                        verbose: int = 0) -> np.ndarray:
    """IWAE-`num_samples` estimate of log p(x) for each example, float64 `[N]`.

    Args:
      model: a tfvi model with `log_weight_terms` (e.g. `tfvi.models.VAE`).
      x: `[N, input_dim]` encoder inputs.
      num_samples: S, density evaluations per example. With a K-component mixture
        posterior and `stratified=True`, S // K samples come from each component.
      batch_size: examples per step.
      y: likelihood targets (default `x`).
      seed: integer seed; the estimate is a deterministic function of it.
      stratified: stratify over mixture components (else sample ancestrally).
      max_chunk_elements: bounds samples x components x batch per chunk (memory).
      verbose: 1 shows a progress bar.

    Returns:
      numpy float64 array `[N]`: the estimate (a stochastic lower bound whose
      expectation increases to log p(x) with S).
    """
    num_samples = check_positive_int("num_samples", num_samples)
    batch_size = check_positive_int("batch_size", batch_size)
    x = np.asarray(x)
    y = x if y is None else np.asarray(y)
    if x.ndim < 2:
        raise ValueError(f"`x` must have shape [N, input_dim]; got {x.shape}.")
    if len(y) != len(x):
        raise ValueError(f"`y` has {len(y)} examples but `x` has {len(x)}.")
    k = model.num_components if stratified else 1
    per_component = max(1, num_samples // k)
    chunk = max(1, min(per_component, max_chunk_elements // (k * batch_size)))
    log_sum = _chunk_log_sum(model, stratified)
    base_seed = tf.constant([seed, 0], tf.int32)
    out = np.empty(len(x), np.float64)
    bar = keras.utils.Progbar(len(x)) if verbose else None
    for b, start in enumerate(range(0, len(x), batch_size)):
        xb = tf.convert_to_tensor(x[start:start + batch_size], tf.float32)
        yb = tf.convert_to_tensor(y[start:start + batch_size])
        if yb.dtype == tf.float64:
            yb = tf.cast(yb, tf.float32)
        sums, done = [], 0
        while done < per_component:
            n = min(chunk, per_component - done)
            seed_bc = tf.random.experimental.stateless_fold_in(
                tf.random.experimental.stateless_fold_in(base_seed, b), done)
            sums.append(log_sum(xb, yb, n, seed_bc))
            done += n
        total = tf.reduce_logsumexp(tf.stack(sums), axis=0) - math.log(per_component)
        out[start:start + len(xb)] = total.numpy()
        if bar is not None:
            bar.update(min(start + batch_size, len(x)))
    return out
