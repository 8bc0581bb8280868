"""Gradient estimators for the bounds of `tfvi.bounds`: which surrogate each variable
group differentiates.

A model's variables split into the *inference* group phi (the encoder q(z|x)) and the
*model* group theta (decoder p(x|z), prior r(z)). An estimator builds, for each group,
a scalar surrogate whose gradient is the estimator (surrogates are maximised; the
value of the objective is reported separately). Samples are `z_tk ~ q_k(z|x)`,
`[T, K, batch, d]`, with log mixture weights `log alpha_k` `[K, batch]` (K = 1 for a
unimodal q); `log w_tk = log p(x|z_tk) + beta (log r(z_tk) - log q(z_tk|x))`.

* "reparam": the pathwise gradient of the objective for every variable.
* "stl": "sticking the landing" (Roeder et al. 2017): the score term of log q is
  dropped by stopping the gradient through q's parameters in log q(z|x).
* "dreg": doubly-reparameterised gradient (Tucker et al. 2019) for IWAE and, per
  component, for SIWAE (derivation below); theta gets the plain IWAE/SIWAE gradient.
* "score": score-function (REINFORCE) gradient for phi, z is not differentiated
  (the baseline of Morningstar et al., Fig. B.1); theta gets the plain gradient.

Each estimator is a `GradientEstimator` chosen when the model is built
(`get_estimator(name, objective)`): how the samples are drawn (`stl`,
`reparameterized`) and a callable from the step's log-weight terms and its posterior
and prior distributions to the surrogates (the encoder runs once per step; nothing
calls back into the model). A surrogate dict is `{"all": s}` when every variable
follows the same target, else `{"model": s_theta, "inference": s_phi}`;
`grouped_gradients` differentiates either form.

PIWAE (`tfvi.bounds.piwae`) is a pair of targets: theta ascends SIWAE_T and phi
ascends M-IWAE, with the "reparam" or "stl" estimator.

DReG for SIWAE (mixture posteriors). With `q(z|x) = sum_j alpha_j q_j(z|x)` and the
responsibilities `gamma_k(z) = alpha_k q_k(z) / q(z)`, each stratified weight is an
importance weight for the proposal q_k that actually drew it:

    alpha_k w_tk = p(x, z_tk) gamma_k(z_tk) / q_k(z_tk)         (beta = 1),

so with `f_tk = log alpha_k + log w_tk` and normalised weights
`v_tk = softmax_{t,k}(f_tk)`, `SIWAE = log (1/T) sum_tk exp f_tk` has the total
phi-gradient `sum_tk v_tk d f_tk / d phi`. Writing the z-independent parts
`log q = log alpha_k + log q_k - log gamma_k`, for general beta:

    d f_tk/d phi = (d_z f_tk) dz_tk/dphi - beta d_phi log q_k(z_tk)
                   + (1 - beta) d_phi log alpha_k + beta d_phi log gamma_k(z_tk),

(partial derivatives `d_phi` at fixed z). The score term is an expectation under the
sampling distribution q_k itself, so the reparameterisation identity
`E_{z~q_k}[g(z) d_phi log q_k(z)] = E_eps[d_z g(z) dz/dphi]` applies with
`g = v_tk` (the other samples held fixed), and `d_z v_tk = v_tk (1 - v_tk) d_z f_tk`:

    grad_phi SIWAE = E sum_tk [ (v_tk - beta v_tk (1 - v_tk)) (d_z f_tk) dz_tk/dphi
                      + v_tk ((1 - beta) d_phi log alpha_k + beta d_phi log gamma_k(z_tk)) ].

For beta = 1 the path coefficient is `v_tk^2`, and for K = 1 (gamma = alpha = 1) this
is Tucker et al.'s IWAE-DReG, `sum_t v_t^2 (d_z log w_t) dz_t/dphi`. The surrogate
differentiated is `sum_tk sg(c_tk) log w_tk[q stopped] + sum_tk sg(v_tk) ((1 - beta)
log alpha_k + beta log gamma_k(sg z_tk))`, with `sg` = stop_gradient and `c_tk` the
path coefficient; `tests/test_estimators.py` checks its expectation against the
plain gradient's by Monte Carlo.

DReG with a prior that shares the encoder (VampPrior, `r_phi(z) = (1/M) sum_m
q_phi(z|u_m)`). Then `log w_tk` depends on phi through z *and* directly through r, so
the total derivative above gains one partial term at fixed z:

    d f_tk/d phi = ... (as above) ... + beta d_phi log r_phi(z_tk).

Only the score `d_phi log q_k(z_tk)` is an expectation under the sampling
distribution that the reparameterisation identity turns into a path term; the
prior's `d_phi log r_phi(z)` is not a score of the sampler and stays as it is, with
the weight `v_tk` of every plain term of the IWAE gradient:

    grad_phi SIWAE = E sum_tk [ c_tk (d_z f_tk) dz_tk/dphi
                      + v_tk beta d_phi log r_phi(z_tk)
                      + v_tk ((1 - beta) d_phi log alpha_k + beta d_phi log gamma_k(z_tk)) ].

The path term `sg(c_tk) log w_tk` alone would weight the prior's direct term by
`c_tk` (= v_tk^2 for beta = 1): the `- beta v_tk (1 - v_tk)` part of c is the
rewritten score term of q_k, and applied to `d_phi log r_phi` it subtracts a term of
non-zero mean (measured before the fix: encoder-scale coordinates 7-17 standard errors
off the reparameterised gradient). The surrogate therefore adds
`beta sum_tk sg(v_tk - c_tk) log r_phi(sg z_tk)`, whose phi-gradient turns the direct
prior weight from c_tk into v_tk and leaves the z-path untouched (z is stopped).
Priors without encoder variables skip it (their direct phi-derivative is zero).
`tests/test_estimators.py` checks this against the reparameterised gradient, and that
the uncorrected surrogate fails the same check.
"""

import dataclasses
from typing import Callable

import tensorflow as tf
import tensorflow_probability as tfp

from tfvi import bounds

tfd = tfp.distributions

__all__ = ["ESTIMATORS", "GradientEstimator", "check_estimator", "get_estimator",
           "gradients", "grouped_gradients", "split_variables", "component_log_prob",
           "prior_shares_encoder"]

ESTIMATORS = ("reparam", "stl", "dreg", "score")


@dataclasses.dataclass(frozen=True)
class GradientEstimator:
    """A gradient estimator: how to draw the samples and which surrogates to maximise.

    Attributes:
      name: one of `ESTIMATORS`.
      stl: score `log q(z|x)` with q's parameters stopped.
      reparameterized: z carries a gradient (False: the score function).
      surrogates: `(terms, dists, values, objective, beta, options,
        prior_shares_encoder) -> {"all": s}` or `{"model": s, "inference": s}`,
        scalars to maximise. `terms` are `log_weight_terms`' tensors, `dists` its
        `posterior` q (live parameters) and `prior` r distributions, `values` the
        per-example `bound_values`.
    """
    name: str
    stl: bool
    reparameterized: bool
    surrogates: Callable


def check_estimator(estimator, objective):
    """Validates an (estimator, objective) pair; raises `ValueError` naming both."""
    if estimator not in ESTIMATORS:
        raise ValueError(
            f"Unknown `gradient_estimator` {estimator!r}; expected one of {list(ESTIMATORS)}.")
    if estimator == "dreg" and objective not in ("iwae", "siwae"):
        raise ValueError(
            f"`gradient_estimator='dreg'` is defined for objectives 'iwae' and 'siwae'; "
            f"got `objective={objective!r}`.")
    if estimator == "score" and objective == "piwae":
        raise ValueError("`gradient_estimator='score'` does not support 'piwae'; use "
                         "'reparam' or 'stl'.")
    return estimator


def prior_shares_encoder(model):
    """True when the prior's trainable variables include the encoder's (VampPrior):
    then `log r(z)` depends on phi directly, not only through z."""
    _, shared = split_variables(model.prior.trainable_variables,
                                model.encoder.trainable_variables)
    return bool(shared)


def component_log_prob(q, z):
    """`log q_k(z_tk|x)`, `[T, K, batch]`, for stratified samples `z` `[T, K, batch, d]`
    (each sample scored by the component that drew it; `q.log_prob` for K = 1)."""
    if isinstance(q, tfd.MixtureSameFamily):
        z_bk = tf.transpose(z, [0, 2, 1, 3])  # [T, batch, K, d]
        return tf.transpose(q.components_distribution.log_prob(z_bk), [0, 2, 1])
    return q.log_prob(z[:, 0])[:, tf.newaxis]


def _log_alpha_live(q, like):
    if isinstance(q, tfd.MixtureSameFamily):
        return tf.transpose(tf.nn.log_softmax(q.mixture_distribution.logits_parameter(), -1))
    return tf.zeros_like(like[0])


def _log_w(terms, beta):
    return bounds.log_weights(terms["log_likelihood"], terms["log_prior"],
                              terms["log_posterior"], beta)


def pathwise_surrogates(terms, dists, values, objective, beta, options,
                        prior_shares_encoder=False):
    """"reparam" and "stl": the objective itself (PIWAE: its theta/phi pair)."""
    del dists, prior_shares_encoder
    if objective == "piwae":
        pair = bounds.piwae(_log_w(terms, beta), terms["log_alpha"], **options)
        return {"model": tf.reduce_mean(pair["model"]),
                "inference": tf.reduce_mean(pair["inference"])}
    return {"all": tf.reduce_mean(values[objective])}


def dreg_surrogates(terms, dists, values, objective, beta, options,
                    prior_shares_encoder=False):
    """"dreg": IWAE-DReG / per-component SIWAE-DReG for phi, the plain bound for theta
    (derivation in the module docstring). `terms` must score log q with q stopped."""
    del values, objective, options
    log_w, log_alpha = _log_w(terms, beta), terms["log_alpha"]
    z, q = tf.stop_gradient(terms["z"]), dists["posterior"]
    # theta: plain gradient of the bound (q is stopped: theta does not enter q).
    model_target = tf.reduce_mean(bounds.siwae(log_w, log_alpha))
    f = tf.stop_gradient(log_w + log_alpha[tf.newaxis])
    v = tf.math.softmax(tf.reshape(f, [-1, tf.shape(f)[-1]]), axis=0)
    v = tf.reshape(v, tf.shape(f))
    coeff = tf.stop_gradient(v - beta * v * (1.0 - v))
    path = tf.reduce_sum(coeff * log_w, axis=[0, 1])
    if prior_shares_encoder:
        # The prior's direct phi-dependence (z held fixed) is a plain term:
        # re-weight it from the path coefficient c to v (derivation above).
        direct_prior = dists["prior"].log_prob(z)
        path = path + beta * tf.reduce_sum((v - coeff) * direct_prior, axis=[0, 1])
    if log_alpha.shape[0] != 1:
        log_alpha_live = _log_alpha_live(q, log_w)
        log_gamma = log_alpha_live[tf.newaxis] + component_log_prob(q, z) - q.log_prob(z)
        path = path + tf.reduce_sum(
                v * ((1.0 - beta) * log_alpha_live[tf.newaxis] + beta * log_gamma),
                axis=[0, 1])
    return {"model": model_target, "inference": tf.reduce_mean(path)}


def score_surrogates(terms, dists, values, objective, beta, options,
                     prior_shares_encoder=False):
    """"score": z carries no gradient; the score of each sample's own sampling
    distribution q_k is added, weighted by its (stopped) reward."""
    del options, prior_shares_encoder
    log_w, log_alpha = _log_w(terms, beta), terms["log_alpha"]
    log_qk = component_log_prob(dists["posterior"], tf.stop_gradient(terms["z"]))
    value = values[objective]
    if objective in ("elbo", "selbo"):
        # SELBO = sum_k alpha_k (1/T) sum_t log w_tk: per-sample rewards.
        t = tf.cast(tf.shape(log_w)[0], log_w.dtype)
        reward = tf.stop_gradient(tf.exp(log_alpha)[tf.newaxis] * log_w / t)
        score = tf.reduce_sum(reward * log_qk, axis=[0, 1])
    else:
        score = tf.stop_gradient(value) * tf.reduce_sum(log_qk, axis=[0, 1])
    return {"all": tf.reduce_mean(value + score)}


_ESTIMATORS = {
    "reparam": GradientEstimator("reparam", False, True, pathwise_surrogates),
    "stl": GradientEstimator("stl", True, True, pathwise_surrogates),
    "dreg": GradientEstimator("dreg", True, True, dreg_surrogates),
    "score": GradientEstimator("score", False, False, score_surrogates),
}


def get_estimator(name, objective):
    """The validated `GradientEstimator` called `name` for `objective`."""
    return _ESTIMATORS[check_estimator(name, objective)]


def split_variables(variables, group):
    """`(outside, inside)`: the `variables` not in `group` and those in it (by identity,
    order kept), e.g. the generative (theta) and inference (phi) variables."""
    ids = {id(v) for v in group}
    return ([v for v in variables if id(v) not in ids],
            [v for v in variables if id(v) in ids])


def grouped_gradients(tape, losses, variables, inference_variables):
    """Gradients aligned with `variables` from a persistent `tape`.

    `losses` is `{"all": l}` (one loss for every variable) or `{"model": l_theta,
    "inference": l_phi}`: the variables in `inference_variables` differentiate
    `l_phi`, the others `l_theta`.
    """
    if "all" in losses:
        return tape.gradient(losses["all"], variables)
    generative, inference = split_variables(variables, inference_variables)
    by_id = {}
    for group, loss in ((generative, losses["model"]), (inference, losses["inference"])):
        if group:
            by_id.update(zip(map(id, group), tape.gradient(loss, group)))
    return [by_id[id(v)] for v in variables]


def gradients(model, x, y, seed=None, loss_scale=1.0):
    """Gradients of `-surrogate` for `model.trainable_variables`, and the diagnostics.

    `model` is a `tfvi.models.VAE` (its `estimator_targets` gives the surrogates of
    the estimator it was built with); its `train_step` applies exactly these
    gradients. `loss_scale` divides per-replica losses under a strategy.

    Returns:
      `(grads, loss, values)`: gradients aligned with `model.trainable_variables`,
      the reported loss, and the per-example diagnostics.
    """
    with tf.GradientTape(persistent=True) as tape:
        targets, loss, values = model.estimator_targets(x, y, seed=seed)
        losses = {name: -target * loss_scale for name, target in targets.items()}
    grads = grouped_gradients(tape, losses, model.trainable_variables,
                              model.encoder.trainable_variables)
    del tape
    return grads, loss, values
