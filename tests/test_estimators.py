"""Gradient estimators: DReG (IWAE, per-component SIWAE) and the score function are
unbiased for the plain reparameterised gradient; checked by Monte Carlo.

Each estimator is run on R independent runs (fixed seeds) of a batch of N copies of
one data point; the per-run gradient is the mean over the N copies, and the two
estimators' means must agree within 4.5 standard errors (R = 24 runs, so SE is
estimated from the spread of the runs) coordinate-wise.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvi
from tfvi import estimators

RUNS, COPIES = 24, 64


def _model(components, objective, estimator, beta=1.0, samples=3):
    keras.utils.set_random_seed(7)
    model = tfvi.models.VAE(
        tfvi.layers.MixtureEncoder(2, components=components, hidden=()),
        tfvi.data.abs_toy_likelihood(0.5),
        objective=objective, samples=samples, beta=beta, input_dim=2, seed=0,
        gradient_estimator=estimator)
    return model


def _gradient_runs(model, seed_offset):
    x = tf.constant(np.tile([[1.0, 0.7]], (COPIES, 1)).astype(np.float32))

    @tf.function
    def run(seed):
        grads, _, _ = estimators.gradients(model, x, x, seed=seed)
        return tf.concat([tf.reshape(g, [-1]) for g in grads], 0)

    return np.stack([run(tf.constant([seed_offset, r])).numpy() for r in range(RUNS)])


def _assert_same_expectation(a, b, sigmas=4.5):
    diff = a.mean(0) - b.mean(0)
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    assert np.all(np.abs(diff) <= sigmas * se + 1e-6), (diff, se)


def _same_weights(a, b):
    for va, vb in zip(a.trainable_variables, b.trainable_variables):
        vb.assign(va)


@pytest.mark.parametrize("components,objective,beta", [
    (1, "iwae", 1.0), (2, "siwae", 1.0), (2, "siwae", 0.5)])
def test_dreg_matches_plain_gradient_in_expectation(components, objective, beta):
    plain = _model(components, objective, "reparam", beta)
    dreg = _model(components, objective, "dreg", beta)
    _same_weights(plain, dreg)
    a = _gradient_runs(plain, 1)
    b = _gradient_runs(dreg, 2)
    assert a.shape == b.shape and np.all(np.isfinite(b))
    _assert_same_expectation(a, b)
    # and the check has power: the two are different estimators
    assert not np.allclose(a, b)


def test_dreg_reduces_encoder_gradient_variance_for_iwae():
    plain = _model(1, "iwae", "reparam", samples=10)
    dreg = _model(1, "iwae", "dreg", samples=10)
    _same_weights(plain, dreg)
    a, b = _gradient_runs(plain, 3), _gradient_runs(dreg, 4)
    assert b.var(0).sum() < a.var(0).sum()


def test_score_function_is_unbiased_for_selbo():
    plain = _model(2, "selbo", "reparam", samples=2)
    score = _model(2, "selbo", "score", samples=2)
    _same_weights(plain, score)
    _assert_same_expectation(_gradient_runs(plain, 5), _gradient_runs(score, 6))


def test_dropping_the_responsibility_term_is_detectably_biased(monkeypatch):
    """The per-component DReG needs the d log gamma_k term: without it the check fails."""
    plain = _model(2, "siwae", "reparam")
    dreg = _model(2, "siwae", "dreg")
    _same_weights(plain, dreg)
    a = _gradient_runs(plain, 7)
    monkeypatch.setattr(estimators, "_log_alpha_live", lambda q, like: tf.stop_gradient(
        tf.transpose(tf.nn.log_softmax(q.mixture_distribution.logits_parameter(), -1))))
    original = estimators.component_log_prob
    monkeypatch.setattr(estimators, "component_log_prob",
                        lambda q, z: tf.stop_gradient(original(q, z)) + 0.0 * q.log_prob(z))
    b = _gradient_runs(dreg, 8)
    diff = np.abs(a.mean(0) - b.mean(0))
    se = np.sqrt(a.var(0, ddof=1) / RUNS + b.var(0, ddof=1) / RUNS)
    assert np.any(diff > 6 * se)


def test_estimator_validation():
    with pytest.raises(ValueError, match="gradient_estimator"):
        _model(1, "elbo", "dreg")
    with pytest.raises(ValueError, match="gradient_estimator"):
        _model(1, "elbo", "magic")


@pytest.mark.parametrize("estimator,objective", [
    ("dreg", "siwae"), ("score", "siwae"), ("stl", "selbo")])
def test_fit_runs_with_each_estimator(estimator, objective):
    x, _ = tfvi.data.abs_toy(64, sigma=0.5)
    model = _model(2, objective, estimator)
    model.compile(keras.optimizers.Adam(1e-2), jit_compile=False)
    history = model.fit(x, batch_size=64, epochs=1, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    assert tfvi.models.VAE.from_config(model.get_config()).gradient_estimator == estimator
