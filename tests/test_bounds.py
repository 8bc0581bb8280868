"""tfvi.bounds against direct numpy formulas, Jensen orderings, and float64 gradients."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy.special import logsumexp

from tfvi import bounds
from tfvi.distributions import GaussianMixture, stratified_sample

tfd = tfp.distributions


def _random_log_w(t, k, b, seed=0):
    rng = np.random.default_rng(seed)
    log_w = rng.normal(-5.0, 3.0, size=(t, k, b))
    logits = rng.normal(size=(k, b))
    log_alpha = logits - logsumexp(logits, axis=0, keepdims=True)
    return log_w, log_alpha


def test_siwae_and_selbo_match_their_definitions():
    log_w, log_alpha = _random_log_w(7, 3, 5)
    expected_siwae = logsumexp(log_w + log_alpha, axis=(0, 1)) - np.log(7)
    expected_selbo = (np.exp(log_alpha) * log_w.mean(axis=0)).sum(axis=0)
    np.testing.assert_allclose(bounds.siwae(log_w, log_alpha), expected_siwae, rtol=1e-10)
    np.testing.assert_allclose(bounds.selbo(log_w, log_alpha), expected_selbo, rtol=1e-10)


def test_k1_stratified_bounds_are_elbo_and_iwae():
    log_w, _ = _random_log_w(6, 1, 4, seed=1)
    np.testing.assert_allclose(bounds.iwae(log_w), logsumexp(log_w[:, 0], 0) - np.log(6))
    np.testing.assert_allclose(bounds.elbo(log_w), log_w[:, 0].mean(0))
    np.testing.assert_allclose(bounds.siwae(log_w), bounds.iwae(log_w[:, 0]))
    np.testing.assert_allclose(bounds.selbo(log_w, np.zeros((1, 4))), bounds.elbo(log_w))
    for name in bounds.OBJECTIVES:
        assert bounds.bound(name, log_w).shape == (4,)


def test_jensen_orderings_hold_for_every_draw():
    log_w, log_alpha = _random_log_w(20, 4, 50, seed=2)
    assert np.all(bounds.selbo(log_w, log_alpha) <= bounds.siwae(log_w, log_alpha) + 1e-9)
    assert np.all(bounds.elbo(log_w[:, :1]) <= bounds.iwae(log_w[:, :1]) + 1e-9)


def test_siwae_is_stable_for_very_negative_log_weights():
    log_w = np.full((10, 2, 3), -5000.0)
    log_alpha = np.log(np.full((2, 3), 0.5))
    np.testing.assert_allclose(bounds.siwae(log_w, log_alpha), -5000.0)


def test_log_weights_beta_weights_only_prior_minus_posterior():
    ll, lp, lq = np.array(-3.0), np.array(-2.0), np.array(-1.0)
    assert float(bounds.log_weights(ll, lp, lq)) == -4.0
    assert float(bounds.log_weights(ll, lp, lq, beta=0.5)) == -3.5
    assert float(bounds.log_weights(ll, lp, lq, beta=0.0)) == -3.0


@pytest.mark.parametrize("bad,match", [
    (dict(name="elbow"), "Unknown objective 'elbow'"),
    (dict(log_w=np.zeros((2, 3, 4, 5))), r"\[T, K, batch\]"),
    (dict(log_w=np.zeros((2, 3, 4))), "`log_alpha` is required"),
    (dict(log_alpha=np.zeros((3,))), "`log_alpha` must have shape"),
])
def test_bad_input_raises_value_error_naming_the_argument(bad, match):
    kwargs = dict(name="siwae", log_w=np.zeros((2, 1, 4)), log_alpha=None)
    kwargs.update(bad)
    with pytest.raises(ValueError, match=match):
        bounds.bound(kwargs["name"], kwargs["log_w"], kwargs["log_alpha"])


# ---------------------------------------------------------------- gradients
D, LATENT, BATCH = 3, 2, 2


def _bound_of_params(name, params, k, x, weights, seed):
    """A small latent-variable model, fully in float64: the bound as a function of the
    posterior's parameters (stratified reparameterised samples, fixed stateless seed)."""
    logits, loc, raw_scale = params
    scale = tf.nn.softplus(raw_scale)
    if k > 1:
        q = GaussianMixture(logits, loc, scale_diag=scale)
    else:
        q = tfd.MultivariateNormalDiag(loc[:, 0], scale[:, 0])
    z, log_alpha = stratified_sample(q, 3, seed=seed)
    log_lik = tfd.Independent(tfd.Normal(tf.linalg.matvec(weights, z, transpose_a=True), 0.7),
                              1).log_prob(x)
    log_prior = tfd.MultivariateNormalDiag(tf.zeros(LATENT, tf.float64)).log_prob(z)
    log_w = bounds.log_weights(log_lik, log_prior, q.log_prob(z), beta=0.8)
    return tf.reduce_sum(bounds.bound(name, log_w, log_alpha))


@pytest.mark.parametrize("name,k", [("elbo", 1), ("iwae", 1), ("selbo", 3), ("siwae", 3)])
def test_gradients_match_float64_finite_differences(name, k):
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(BATCH, D)))
    weights = tf.constant(rng.normal(size=(LATENT, D)))
    params = [tf.constant(rng.normal(size=(BATCH, k))),
              tf.constant(rng.normal(size=(BATCH, k, LATENT))),
              tf.constant(rng.normal(size=(BATCH, k, LATENT)))]
    seed = tf.constant([7, 11], tf.int32)

    @tf.function
    def f(*p):
        return _bound_of_params(name, p, k, x, weights, seed)

    with tf.GradientTape() as tape:
        tape.watch(params)
        value = f(*params)
    grads = tape.gradient(value, params)
    eps = 1e-6
    for i, p in enumerate(params):
        if k == 1 and i == 0:
            continue  # a single component has no mixture weights
        flat = p.numpy().ravel()
        numeric = np.empty_like(flat)
        for j in range(flat.size):
            up, down = flat.copy(), flat.copy()
            up[j] += eps
            down[j] -= eps
            args_up = list(params)
            args_down = list(params)
            args_up[i] = tf.constant(up.reshape(p.shape))
            args_down[i] = tf.constant(down.reshape(p.shape))
            numeric[j] = (f(*args_up) - f(*args_down)).numpy() / (2 * eps)
        np.testing.assert_allclose(grads[i].numpy().ravel(), numeric, rtol=1e-5, atol=1e-6)
