"""Morningstar et al. C.1 ablation losses: degenerate cases, orderings, and training."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp

import tfvi
from tfvi import bounds

T, K, B = 6, 3, 4


@pytest.fixture(scope="module")
def weights():
    rng = np.random.default_rng(0)
    log_w = rng.normal(-3.0, 2.0, (T, K, B)).astype(np.float32)
    logits = rng.normal(size=(K, B))
    log_alpha = (logits - logsumexp(logits, axis=0)).astype(np.float32)
    return log_w, log_alpha


def _np_siwae(log_w, log_alpha):
    return logsumexp(log_w + log_alpha, axis=(0, 1)) - np.log(log_w.shape[0])


def test_miwae_degenerate_cases(weights):
    log_w, log_alpha = weights
    np.testing.assert_allclose(bounds.miwae(log_w, log_alpha, num_groups=1),
                               bounds.siwae(log_w, log_alpha), rtol=1e-6)
    # K = 1 and M = T: the ELBO.
    np.testing.assert_allclose(bounds.miwae(log_w[:, :1]), bounds.elbo(log_w[:, :1]),
                               rtol=1e-6)
    # M = 2 groups of 3: the mean of two SIWAE_3 values, computed by hand.
    expected = 0.5 * (_np_siwae(log_w[:3], log_alpha) + _np_siwae(log_w[3:], log_alpha))
    np.testing.assert_allclose(bounds.miwae(log_w, log_alpha, num_groups=2), expected,
                               rtol=1e-5)


def test_miwae_lies_between_selbo_and_siwae(weights):
    log_w, log_alpha = weights
    for m in (1, 2, 3, 6):
        value = bounds.miwae(log_w, log_alpha, num_groups=m).numpy()
        assert np.all(value <= bounds.siwae(log_w, log_alpha).numpy() + 1e-5)
        assert np.all(value >= bounds.selbo(log_w, log_alpha).numpy() - 1e-5)


def test_ciwae_degenerate_cases_and_combination(weights):
    log_w, log_alpha = weights
    np.testing.assert_allclose(bounds.ciwae(log_w, log_alpha, elbo_weight=1.0),
                               bounds.selbo(log_w, log_alpha), rtol=1e-6)
    np.testing.assert_allclose(bounds.ciwae(log_w, log_alpha, elbo_weight=0.0),
                               bounds.siwae(log_w, log_alpha), rtol=1e-6)
    np.testing.assert_allclose(bounds.ciwae(log_w[:, :1], elbo_weight=1.0),
                               bounds.elbo(log_w[:, :1]), rtol=1e-6)
    np.testing.assert_allclose(bounds.ciwae(log_w[:, :1], elbo_weight=0.0),
                               bounds.iwae(log_w[:, :1]), rtol=1e-6)
    np.testing.assert_allclose(
        bounds.ciwae(log_w, log_alpha, elbo_weight=0.3),
        0.3 * bounds.selbo(log_w, log_alpha) + 0.7 * bounds.siwae(log_w, log_alpha),
        rtol=1e-5)


def test_piwae_targets(weights):
    log_w, log_alpha = weights
    pair = bounds.piwae(log_w, log_alpha, num_groups=1)
    np.testing.assert_allclose(pair["model"], bounds.siwae(log_w, log_alpha), rtol=1e-6)
    np.testing.assert_allclose(pair["inference"], pair["model"], rtol=1e-6)
    pair = bounds.piwae(log_w, log_alpha, num_groups=3)
    np.testing.assert_allclose(pair["inference"],
                               bounds.miwae(log_w, log_alpha, num_groups=3), rtol=1e-6)
    np.testing.assert_allclose(bounds.bound("piwae", log_w, log_alpha, num_groups=3),
                               pair["model"], rtol=1e-6)


def test_ppd_matches_hand_computation_and_reduces_to_elbo(weights):
    log_w, log_alpha = weights
    rng = np.random.default_rng(1)
    ll = rng.normal(-5, 1, (T, K, B)).astype(np.float32)
    lp = rng.normal(-2, 1, (T, K, B)).astype(np.float32)
    lq = rng.normal(-1, 1, (T, K, B)).astype(np.float32)
    beta = 0.05
    expected = (_np_siwae(ll, log_alpha)
                - beta * np.sum(np.exp(log_alpha) * (lq - lp).mean(0), axis=0))
    np.testing.assert_allclose(bounds.ppd(ll, lp, lq, log_alpha, beta), expected,
                               rtol=1e-5)
    # T = 1, K = 1: PPD is the ELBO; for T > 1 it is above the ELBO (Jensen).
    one = (ll[:1, :1], lp[:1, :1], lq[:1, :1])
    np.testing.assert_allclose(bounds.ppd(*one),
                               bounds.elbo(bounds.log_weights(*one)), rtol=1e-6)
    assert np.all(bounds.ppd(ll, lp, lq, log_alpha).numpy()
                  >= bounds.selbo(bounds.log_weights(ll, lp, lq), log_alpha).numpy())
    np.testing.assert_allclose(bounds.objective("ppd", ll, lp, lq, log_alpha, beta),
                               expected, rtol=1e-5)


def test_argument_validation(weights):
    log_w, log_alpha = weights
    with pytest.raises(ValueError, match="num_groups"):
        bounds.miwae(log_w, log_alpha, num_groups=4)
    with pytest.raises(ValueError, match="elbo_weight"):
        bounds.ciwae(log_w, log_alpha, elbo_weight=1.5)
    with pytest.raises(ValueError, match="ppd"):
        bounds.bound("ppd", log_w, log_alpha)
    with pytest.raises(ValueError, match="accepts options"):
        bounds.bound("ciwae", log_w, log_alpha, num_groups=2)
    with pytest.raises(ValueError, match="takes no options"):
        bounds.bound("siwae", log_w, log_alpha, num_groups=2)


def _tiny_vae(objective, **kwargs):
    return tfvi.models.VAE(
        tfvi.layers.MixtureEncoder(2, components=2, hidden=(8,)),
        tfvi.layers.BernoulliDecoder(6, hidden=(8,)),
        objective=objective, samples=4, input_dim=6, seed=0, **kwargs)


@pytest.mark.parametrize("objective,options", [
    ("miwae", {"num_groups": 2}), ("ciwae", {"elbo_weight": 0.5}),
    ("piwae", {"num_groups": 2}), ("ppd", {})])
def test_vae_trains_with_each_ablation_objective(objective, options):
    x = (np.random.default_rng(0).random((32, 6)) < 0.5).astype(np.float32)
    model = _tiny_vae(objective, objective_options=options, stl=objective == "ciwae")
    model.compile(keras.optimizers.Adam(1e-2), jit_compile=False)
    history = model.fit(x, batch_size=32, epochs=1, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    assert objective in history
    clone = tfvi.models.VAE.from_config(model.get_config())
    assert clone.objective_options == options and clone.objective == objective


def _plain_gradient(model, objective, x, seed, options=None):
    saved = model.objective, model.objective_options
    model.objective, model.objective_options = objective, dict(options or {})
    try:
        with tf.GradientTape() as tape:
            terms = model.log_weight_terms(x, x, seed=seed)
            loss = -tf.reduce_mean(model.bound_values(terms)[objective])
        return tape.gradient(loss, model.trainable_variables)
    finally:
        model.objective, model.objective_options = saved


@pytest.mark.parametrize("groups", [1, 2])
def test_piwae_gradients_are_siwae_for_theta_and_miwae_for_phi(groups):
    """Exact, on the same samples: the decoder follows SIWAE_T, the encoder M-IWAE_{M,T/M}
    (Rainforth et al.'s PIWAE). At M = 2 the two targets' encoder gradients differ by
    > 5%, so swapping the targets is caught."""
    x = tf.constant((np.random.default_rng(2).random((8, 6)) < 0.5).astype(np.float32))
    model = _tiny_vae("piwae", objective_options={"num_groups": groups})
    seed = tf.constant([3, 4])
    grads, _, _ = tfvi.estimators.gradients(model, x, x, seed=seed)
    siwae = _plain_gradient(model, "siwae", x, seed)
    miwae = _plain_gradient(model, "miwae", x, seed, {"num_groups": groups})
    encoder = {id(v) for v in model.encoder.trainable_variables}
    for v, g, s, m in zip(model.trainable_variables, grads, siwae, miwae):
        want = m if id(v) in encoder else s
        np.testing.assert_allclose(g.numpy(), want.numpy(), rtol=1e-4, atol=1e-6)
    if groups > 1:
        flat = [np.concatenate([t.numpy().ravel() for v, t in zip(model.trainable_variables, g)
                                if id(v) in encoder]) for g in (siwae, miwae)]
        assert np.linalg.norm(flat[0] - flat[1]) > 0.05 * np.linalg.norm(flat[0])
