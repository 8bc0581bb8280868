"""Variational bounds on log-evidence, as pure functions of log-weights.

Every bound in tfvi is written once here and reused by every model. The inputs are
per-sample log-weights laid out as `[T, K, batch]`:

* `T`: samples drawn *per mixture component* (the importance samples);
* `K`: mixture components of the posterior (K = 1 for a unimodal posterior, or when
  samples are drawn ancestrally from the whole mixture);
* `batch`: examples.

with, for sample `z_tk ~ q_k(z|x)`,

    log w_tk = log p(x|z_tk) + beta * (log r(z_tk) - log q(z_tk|x))          (1)

where `q(z|x) = sum_k alpha_k q_k(z|x)` is the full (mixture) posterior density and
`r` the prior. `beta = 1` gives the bounds of the papers; `beta != 1` weights the
`log r - log q` part (the beta-VAE, and seed 000's beta = 0.05 VIB penalty).
`log_alpha` is `[K, batch]`, the log mixture weights of the posterior.

With K = 1 (log_alpha = 0) SIWAE is IWAE and SELBO is ELBO: the four bounds are two
code paths, `_stratified_mean` and `_stratified_logmeanexp`.

References (equation numbers of seed 000, Morningstar et al., "Automatic
Differentiation Variational Inference with Mixtures", supplement):
  SIWAE, Theorem A.1 (a lower bound on log p(x)); SIWAE >= IWAE for K > 1, Theorem A.2.
"""

import tensorflow as tf

__all__ = [
    "log_weights",
    "elbo",
    "iwae",
    "selbo",
    "siwae",
    "OBJECTIVES",
    "bound",
    "log_mean_exp",
]

OBJECTIVES = ("elbo", "iwae", "selbo", "siwae")


def log_weights(log_likelihood, log_prior, log_posterior, beta=1.0):
    """Log importance weights, eq. (1) above.

    Args:
      log_likelihood: `log p(x|z)`, shape `[T, K, batch]`.
      log_prior: `log r(z)`, same shape.
      log_posterior: `log q(z|x)` (the full mixture density), same shape.
      beta: weight on `log r(z) - log q(z|x)`; 1 gives the true log-weights.

    Returns:
      `log w`, shape `[T, K, batch]`.
    """
    return log_likelihood + beta * (log_prior - log_posterior)


def _as_stratified(log_w, log_alpha):
    """Validates `[T, K, batch]` log-weights and returns them with `[K, batch]` weights."""
    log_w = tf.convert_to_tensor(log_w)
    if log_w.shape.rank == 2:  # [T, batch]: a single component.
        log_w = log_w[:, tf.newaxis, :]
    if log_w.shape.rank != 3:
        raise ValueError(
            "`log_w` must have shape [T, K, batch] (or [T, batch] for K=1); "
            f"got shape {log_w.shape}."
        )
    if log_alpha is None:
        if log_w.shape[1] not in (1, None):
            raise ValueError(
                "`log_alpha` is required when `log_w` has K > 1 components; "
                f"`log_w` has shape {log_w.shape}."
            )
        log_alpha = tf.zeros_like(log_w[0])
    log_alpha = tf.convert_to_tensor(log_alpha, dtype=log_w.dtype)
    if log_alpha.shape.rank != 2:
        raise ValueError(
            f"`log_alpha` must have shape [K, batch]; got shape {log_alpha.shape}."
        )
    return log_w, log_alpha


def _stratified_mean(log_w, log_alpha):
    # sum_k alpha_k * (1/T) sum_t log w_tk
    return tf.reduce_sum(tf.exp(log_alpha) * tf.reduce_mean(log_w, axis=0), axis=0)


def _stratified_logmeanexp(log_w, log_alpha):
    # log (1/T) sum_t sum_k alpha_k w_tk
    num_samples = tf.cast(tf.shape(log_w)[0], log_w.dtype)
    return tf.reduce_logsumexp(log_w + log_alpha, axis=[0, 1]) - tf.math.log(num_samples)


def selbo(log_w, log_alpha=None):
    """Stratified ELBO (seed 000, section 2; the objective of Theorem A.2's first line
    with the log moved inside the sums):

        SELBO = sum_k alpha_k(x) (1/T) sum_t log w_tk,   z_tk ~ q_k(z|x).

    Args:
      log_w: `[T, K, batch]` log-weights, eq. (1).
      log_alpha: `[K, batch]` log mixture weights; `None` means K = 1.

    Returns:
      `[batch]` bound values.
    """
    return _stratified_mean(*_as_stratified(log_w, log_alpha))


def siwae(log_w, log_alpha=None):
    """Stratified IWAE (seed 000, Theorem A.1):

        SIWAE_T = log (1/T) sum_t sum_k alpha_k(x) w_tk,   z_tk ~ q_k(z|x).

    A lower bound on log p(x) for every T; for K > 1 it is at least IWAE_T
    (Theorem A.2). Computed with one logsumexp over `t` and `k`.

    Args:
      log_w: `[T, K, batch]` log-weights, eq. (1).
      log_alpha: `[K, batch]` log mixture weights; `None` means K = 1.

    Returns:
      `[batch]` bound values.
    """
    return _stratified_logmeanexp(*_as_stratified(log_w, log_alpha))


def elbo(log_w):
    """ELBO, the Monte Carlo mean of the log-weights: (1/T) sum_t log w_t.

    `log_w` is `[T, batch]` or `[T, 1, batch]`; this is SELBO with K = 1.
    """
    return selbo(log_w)


def iwae(log_w):
    """IWAE_T (Burda et al. 2016): log (1/T) sum_t w_t.

    `log_w` is `[T, batch]` or `[T, 1, batch]`; this is SIWAE with K = 1.
    """
    return siwae(log_w)


_BOUNDS = {
    "elbo": _stratified_mean,
    "selbo": _stratified_mean,
    "iwae": _stratified_logmeanexp,
    "siwae": _stratified_logmeanexp,
}


def bound(name, log_w, log_alpha=None):
    """The bound called `name` (one of `OBJECTIVES`) on `[T, K, batch]` log-weights.

    `elbo`/`selbo` and `iwae`/`siwae` share their code: with K = 1 they coincide.
    """
    if name not in _BOUNDS:
        raise ValueError(
            f"Unknown objective {name!r}; expected one of {sorted(_BOUNDS)}."
        )
    return _BOUNDS[name](*_as_stratified(log_w, log_alpha))


def log_mean_exp(log_values, axis=0):
    """`log (1/n) sum exp(log_values)` along `axis`, stable for any magnitude."""
    n = tf.cast(tf.shape(log_values)[axis], log_values.dtype)
    return tf.reduce_logsumexp(log_values, axis=axis) - tf.math.log(n)

