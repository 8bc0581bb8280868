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
`log r - log q` part (the beta-VAE, and Morningstar et al.'s beta = 0.05 VIB penalty).
`log_alpha` is `[K, batch]`, the log mixture weights of the posterior (`None` means
K = 1). Every bound `f(log_w, log_alpha=None, ...)` returns `[batch]` bound values.

With K = 1 (log_alpha = 0) SIWAE is IWAE and SELBO is ELBO: the four bounds are two
code paths, `_stratified_mean` and `_stratified_logmeanexp`.

References (numbers of Morningstar et al., "Automatic Differentiation Variational
Inference with Mixtures", supplement):
  SIWAE, Theorem A.1 (a lower bound on log p(x)); SIWAE >= IWAE for K > 1, Theorem A.2.
"""

from typing import Any

import tensorflow as tf

from tfvi.types import TensorLike

__all__ = [
    "log_weights",
    "elbo",
    "iwae",
    "selbo",
    "siwae",
    "miwae",
    "ciwae",
    "piwae",
    "ppd",
    "objective",
    "OBJECTIVES",
    "ABLATION_OBJECTIVES",
    "ALL_OBJECTIVES",
    "bound",
    "log_mean_exp",
    "mim_cross_entropy",
    "mim_regularizer",
]

OBJECTIVES = ("elbo", "iwae", "selbo", "siwae")
# Morningstar et al., C.1 ablation losses (stratified over mixture components when K > 1).
ABLATION_OBJECTIVES = ("miwae", "ciwae", "piwae", "ppd")
ALL_OBJECTIVES = OBJECTIVES + ABLATION_OBJECTIVES


def log_weights(log_likelihood: TensorLike, log_prior: TensorLike, log_posterior: TensorLike,
                beta: float | TensorLike = 1.0) -> tf.Tensor:
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


def log_mean_exp(log_values: TensorLike, axis: int = 0) -> tf.Tensor:
    """`log (1/n) sum exp(log_values)` along `axis`, stable for any magnitude."""
    n = tf.cast(tf.shape(log_values)[axis], log_values.dtype)
    return tf.reduce_logsumexp(log_values, axis=axis) - tf.math.log(n)


def _stratified_logmeanexp(log_w, log_alpha, axis=0):
    # log (1/T) sum_t sum_k alpha_k w_tk, with t along `axis` and k the axis after it
    return log_mean_exp(tf.reduce_logsumexp(log_w + log_alpha, axis=axis + 1), axis=axis)


def selbo(log_w: TensorLike, log_alpha: TensorLike | None = None) -> tf.Tensor:
    """Stratified ELBO (Morningstar et al., section 2; the objective of Theorem A.2's first line
    with the log moved inside the sums):

        SELBO = sum_k alpha_k(x) (1/T) sum_t log w_tk,   z_tk ~ q_k(z|x).
    """
    return _stratified_mean(*_as_stratified(log_w, log_alpha))


def siwae(log_w: TensorLike, log_alpha: TensorLike | None = None) -> tf.Tensor:
    """Stratified IWAE (Morningstar et al., Theorem A.1):

        SIWAE_T = log (1/T) sum_t sum_k alpha_k(x) w_tk,   z_tk ~ q_k(z|x).

    A lower bound on log p(x) for every T; for K > 1 it is at least IWAE_T
    (Theorem A.2). Computed with one logsumexp over `t` and `k`.
    """
    return _stratified_logmeanexp(*_as_stratified(log_w, log_alpha))


def elbo(log_w: TensorLike) -> tf.Tensor:
    """ELBO, the Monte Carlo mean of the log-weights: (1/T) sum_t log w_t.

    `log_w` is `[T, batch]` or `[T, 1, batch]`; this is SELBO with K = 1.
    """
    return selbo(log_w)


def iwae(log_w: TensorLike) -> tf.Tensor:
    """IWAE_T (Burda et al. 2016): log (1/T) sum_t w_t.

    `log_w` is `[T, batch]` or `[T, 1, batch]`; this is SIWAE with K = 1.
    """
    return siwae(log_w)


def _groups(log_w, num_groups):
    """`[T, K, batch]` -> `[M, T/M, K, batch]` (M = T when `num_groups` is None)."""
    num_samples = log_w.shape[0]
    if num_groups is None:
        num_groups = num_samples
    if (isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups <= 0
            or (num_samples is not None and num_samples % num_groups)):
        raise ValueError(
            f"`num_groups` must be a positive integer dividing T={num_samples}; "
            f"got {num_groups!r}."
        )
    return tf.reshape(log_w, tf.concat([[num_groups, -1], tf.shape(log_w)[1:]], 0))


def miwae(log_w: TensorLike, log_alpha: TensorLike | None = None,
          num_groups: int | None = None) -> tf.Tensor:
    """Multiply-importance-weighted bound (Rainforth et al. 2018, "Tighter variational
    bounds are not necessarily better", eq. 6), stratified as in Morningstar et al., C.1:

        M-IWAE_{M,L} = (1/M) sum_m log (1/L) sum_{l} sum_k alpha_k(x) w_{mlk},

    the T = M*L samples per component split into M groups of L. `num_groups=None`
    takes M = T (L = 1): SIWAE over the mixture components, SELBO over the samples, the
    form used in Morningstar et al.'s ablation. M = 1 is SIWAE_T; with K = 1 and M = T it is
    the ELBO.

    `num_groups` is M, a divisor of T.
    """
    log_w, log_alpha = _as_stratified(log_w, log_alpha)
    grouped = _groups(log_w, num_groups)  # [M, L, K, batch]
    per_group = _stratified_logmeanexp(grouped, log_alpha, axis=1)  # [M, batch]
    return tf.reduce_mean(per_group, axis=0)


def ciwae(log_w: TensorLike, log_alpha: TensorLike | None = None,
          elbo_weight: float = 0.5) -> tf.Tensor:
    """Combination bound C-IWAE (Rainforth et al. 2018, eq. 7), stratified for K > 1
    (Morningstar et al., C.1):

        C-IWAE_beta = beta * SELBO + (1 - beta) * SIWAE_T,     0 <= beta <= 1,

    on the same samples. `elbo_weight` is Rainforth's beta (not the KL weight beta of
    eq. (1)): 1 gives SELBO (ELBO for K = 1), 0 gives SIWAE (IWAE for K = 1).
    """
    if not 0.0 <= elbo_weight <= 1.0:
        raise ValueError(f"`elbo_weight` must be in [0, 1]; got {elbo_weight!r}.")
    log_w, log_alpha = _as_stratified(log_w, log_alpha)
    return (elbo_weight * _stratified_mean(log_w, log_alpha)
            + (1.0 - elbo_weight) * _stratified_logmeanexp(log_w, log_alpha))


def piwae(log_w: TensorLike, log_alpha: TensorLike | None = None,
          num_groups: int | None = None) -> dict[str, tf.Tensor]:
    """Partially importance-weighted objectives (Rainforth et al. 2018, section 5),
    stratified for K > 1.

    PIWAE is a pair of targets on the same samples: the generative model (decoder,
    prior) ascends SIWAE_T (IWAE_T for K = 1), the inference network ascends
    M-IWAE_{M, T/M} (`miwae`). `tfvi.estimators` takes the gradient of each with
    respect to its own variables. With M = 1 both are SIWAE_T: PIWAE is IWAE.

    Returns:
      dict `{"model": [batch], "inference": [batch]}`.
    """
    log_w, log_alpha = _as_stratified(log_w, log_alpha)
    return {
        "model": _stratified_logmeanexp(log_w, log_alpha),
        "inference": miwae(log_w, log_alpha, num_groups=num_groups),
    }


def ppd(log_likelihood: TensorLike, log_prior: TensorLike, log_posterior: TensorLike,
        log_alpha: TensorLike | None = None, beta: float | TensorLike = 1.0) -> tf.Tensor:
    """PAC^m-Bayes posterior-predictive objective (Morningstar et al. 2020; Morningstar et al.,
    C.1), the negative of L_PPD:

        PPD = log (1/T) sum_t sum_k alpha_k p(x|z_tk) - beta * KL(q(z|x) || r(z)),

    with `z_tk ~ q_k(z|x)`. Morningstar et al. writes the first term with uniform 1/(TK); the
    alpha_k weights make it the stratified (unbiased) estimate of E_q p(x|z), which is
    the same for equal weights. KL is estimated on the same samples as
    `sum_k alpha_k (1/T) sum_t [log q(z_tk|x) - log r(z_tk)]` (no closed form for a
    mixture). By Jensen, PPD >= ELBO for beta = 1: it is not a bound on log p(x).

    Args:
      log_likelihood, log_prior, log_posterior: `[T, K, batch]`.
      log_alpha: `[K, batch]` log mixture weights; `None` means K = 1.
      beta: KL weight.

    Returns:
      `[batch]` objective values (training minimises their negative mean).
    """
    log_likelihood, log_alpha = _as_stratified(log_likelihood, log_alpha)
    kl, _ = _as_stratified(tf.convert_to_tensor(log_posterior) - log_prior, log_alpha)
    return (_stratified_logmeanexp(log_likelihood, log_alpha)
            - beta * _stratified_mean(kl, log_alpha))


_BOUNDS = {
    "elbo": _stratified_mean,
    "selbo": _stratified_mean,
    "iwae": _stratified_logmeanexp,
    "siwae": _stratified_logmeanexp,
}


_OPTION_BOUNDS = {
    "miwae": (miwae, ("num_groups",)),
    "ciwae": (ciwae, ("elbo_weight",)),
    "piwae": (lambda lw, la, **o: piwae(lw, la, **o)["model"], ("num_groups",)),
}


def bound(name: str, log_w: TensorLike, log_alpha: TensorLike | None = None,
          **options: Any) -> tf.Tensor | dict[str, tf.Tensor]:
    """The bound called `name` on `[T, K, batch]` log-weights: one of `OBJECTIVES`,
    or "miwae" / "ciwae" / "piwae" with their `options` (`num_groups`,
    `elbo_weight`; "piwae" gives the model's target, SIWAE_T).

    `elbo`/`selbo` and `iwae`/`siwae` share their code: with K = 1 they coincide.
    "ppd" is not a function of log-weights: use `objective`.
    """
    if name in _OPTION_BOUNDS:
        fn, accepted = _OPTION_BOUNDS[name]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ValueError(
                f"Objective {name!r} accepts options {list(accepted)}; got {unknown}.")
        return fn(log_w, log_alpha, **options)
    if name not in _BOUNDS:
        raise ValueError(
            f"Unknown objective {name!r}; expected one of "
            f"{sorted(_BOUNDS) + sorted(_OPTION_BOUNDS)} (and 'ppd' through "
            "`tfvi.bounds.objective`)."
        )
    if options:
        raise ValueError(f"Objective {name!r} takes no options; got {sorted(options)}.")
    return _BOUNDS[name](*_as_stratified(log_w, log_alpha))


def objective(name: str, log_likelihood: TensorLike, log_prior: TensorLike,
              log_posterior: TensorLike, log_alpha: TensorLike | None = None,
              beta: float | TensorLike = 1.0,
              **options: Any) -> tf.Tensor | dict[str, tf.Tensor]:
    """Per-example value `[batch]` of any objective in `ALL_OBJECTIVES` from the three
    `[T, K, batch]` log-density terms: `bound(name, log_weights(...), ...)`, or `ppd`.
    """
    if name == "ppd":
        if options:
            raise ValueError(f"Objective 'ppd' takes no options; got {sorted(options)}.")
        return ppd(log_likelihood, log_prior, log_posterior, log_alpha, beta)
    return bound(name, log_weights(log_likelihood, log_prior, log_posterior, beta),
                 log_alpha, **options)


def mim_cross_entropy(log_posterior: TensorLike, log_data_prior: TensorLike,
                      log_likelihood: TensorLike, log_prior: TensorLike) -> tf.Tensor:
    """Per-sample integrand of the MIM loss (Livne et al., eq. 8; Algorithm 1, line 5):

        l(x, z) = -1/2 [log q(z|x) + log q(x) + log p(x|z) + log p(z)]
                = -1/2 [log q_theta(x, z) + log p_theta(x, z)],

    so that L_MIM = E_{(x, z) ~ M_S}[l(x, z)], with M_S = 1/2 (P(x) q(z|x) + P(z) p(x|z))
    the mixture of the anchored encoding and decoding distributions. With the marginal
    data prior q(x) = E_p(z)[p(x|z)] (section 4.2), `log_data_prior` is its Jensen
    bound log p(x|z') + log p(z') - log q(z'|x), z' ~ q(z|x), which makes `l` an upper
    bound (Algorithm 2).

    All arguments share one shape (e.g. `[num_samples, batch]`); returns that shape.
    """
    return -0.5 * (log_posterior + log_data_prior + log_likelihood + log_prior)


def mim_regularizer(log_q_joint: TensorLike, log_p_joint: TensorLike) -> tf.Tensor:
    """Per-sample consistency regulariser R_MIM (Livne et al., eq. 10 and Appendix B.2.1):

        r(x, z) = log 1/2 (q(x, z) + p(x, z)) - 1/2 (log q(x, z) + log p(x, z)) >= 0,

    the log of the arithmetic over the geometric mean of the two model joints, so
    R_MIM = E_{M_S}[r] = L_MIM - L_CE with L_CE = CE(M_S, 1/2 (q + p)). It is zero
    exactly where q(x, z) = p(x, z). Computed with a logsumexp.
    """
    log_q_joint = tf.convert_to_tensor(log_q_joint)
    log_p_joint = tf.convert_to_tensor(log_p_joint, dtype=log_q_joint.dtype)
    log_mix = tf.reduce_logsumexp(tf.stack([log_q_joint, log_p_joint]), axis=0)
    log_mix -= tf.math.log(tf.constant(2.0, log_q_joint.dtype))
    return log_mix - 0.5 * (log_q_joint + log_p_joint)
