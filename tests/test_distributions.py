"""GaussianMixture's fast log_prob against TFP, and stratified sampling."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvi.distributions import GaussianMixture, stratified_sample

tfd = tfp.distributions


def _params(batch, k, d, full, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=batch + (k,)).astype(np.float32)
    loc = rng.normal(size=batch + (k, d)).astype(np.float32)
    if full:
        tril = np.tril(rng.normal(size=batch + (k, d, d)) * 0.3).astype(np.float32)
        idx = np.arange(d)
        tril[..., idx, idx] = np.abs(tril[..., idx, idx]) + 0.5
        return logits, loc, dict(scale_tril=tril)
    return logits, loc, dict(scale_diag=rng.uniform(0.3, 2.0, size=batch + (k, d)).astype(np.float32))


def _tfp_reference(logits, loc, scale):
    if "scale_tril" in scale:
        comp = tfd.MultivariateNormalTriL(loc, scale["scale_tril"])
    else:
        comp = tfd.MultivariateNormalDiag(loc, scale["scale_diag"])
    return tfd.MixtureSameFamily(tfd.Categorical(logits=logits), comp)


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("batch,sample", [((4,), (3, 2)), ((), (5,)), ((2, 3), (4,))])
def test_log_prob_matches_tfp(full, batch, sample):
    logits, loc, scale = _params(batch, 3, 4, full)
    z = np.random.default_rng(1).normal(size=sample + batch + (4,)).astype(np.float32) * 2
    fast = GaussianMixture(logits, loc, **scale).log_prob(z)
    ref = _tfp_reference(logits, loc, scale).log_prob(z)
    assert fast.shape == sample + batch
    np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-4)


def test_log_prob_is_the_same_under_xla():
    logits, loc, scale = _params((8,), 5, 3, full=True)
    z = np.random.default_rng(2).normal(size=(6, 5, 8, 3)).astype(np.float32)
    mixture = GaussianMixture(logits, loc, **scale)
    xla = tf.function(lambda v: GaussianMixture(logits, loc, **scale).log_prob(v),
                      jit_compile=True)(z)
    np.testing.assert_allclose(xla, mixture.log_prob(z), rtol=1e-5, atol=1e-4)


def test_log_prob_normalises_in_one_dimension():
    logits, loc, scale = _params((), 3, 1, full=False, seed=3)
    grid = np.linspace(-15, 15, 30001, dtype=np.float32)[:, None]
    density = np.exp(GaussianMixture(logits, loc, **scale).log_prob(grid).numpy())
    np.testing.assert_allclose(np.trapezoid(density, grid[:, 0]), 1.0, atol=1e-4)


def test_rejects_missing_or_double_scale():
    logits, loc, scale = _params((2,), 2, 2, full=False)
    with pytest.raises(ValueError, match="exactly one of `scale_diag` and `scale_tril`"):
        GaussianMixture(logits, loc)
    with pytest.raises(ValueError, match="exactly one"):
        GaussianMixture(logits, loc, scale_diag=scale["scale_diag"],
                        scale_tril=np.eye(2, dtype=np.float32))


def test_stratified_sample_draws_each_component():
    logits, loc, scale = _params((3,), 4, 2, full=False, seed=4)
    scale = {"scale_diag": np.full_like(scale["scale_diag"], 0.05)}
    q = GaussianMixture(logits, loc, **scale)
    z, log_alpha = stratified_sample(q, 500, seed=tf.constant([1, 2]))
    assert z.shape == (500, 4, 3, 2) and log_alpha.shape == (4, 3)
    # T samples of component k sit at component k's mean, whatever its weight.
    np.testing.assert_allclose(z.numpy().mean(0), np.transpose(loc, (1, 0, 2)), atol=0.01)
    np.testing.assert_allclose(tf.reduce_logsumexp(log_alpha, 0), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.exp(log_alpha).T, tf.nn.softmax(logits), rtol=1e-6)


def test_stratified_sample_of_a_unimodal_distribution_has_one_component():
    q = tfd.MultivariateNormalDiag(tf.zeros([5, 3]), tf.ones([5, 3]))
    z, log_alpha = stratified_sample(q, 7, seed=tf.constant([1, 2]))
    assert z.shape == (7, 1, 5, 3)
    np.testing.assert_array_equal(log_alpha, np.zeros((1, 5)))


@pytest.mark.parametrize("mixture", [False, True])
def test_full_covariance_samples_have_covariance_l_l_transpose(mixture):
    """`stratified_sample` draws `loc + L eps` (covariance L L^T), for a plain
    full-covariance Gaussian and for each component of a full-covariance mixture.

    n = 20000 draws per component; the sample covariance's entries have SE
    sqrt((S_ii S_jj + S_ij^2) / n) <= 0.03 here, and the check allows 5 SE (false
    failure < 1e-5 per entry). L^T eps (covariance L^T L) differs from L L^T by >= 1.1
    in some entry, > 35 SE: it fails with certainty (shown by the control)."""
    tril = np.array([[[1.0, 0.0], [1.5, 0.5]], [[0.6, 0.0], [-0.9, 1.2]]], np.float32)
    loc = np.array([[1.0, -2.0], [0.0, 3.0]], np.float32)
    if mixture:
        q = GaussianMixture(np.zeros((1, 2), np.float32), loc[None], scale_tril=tril[None])
    else:
        q = tfd.MultivariateNormalTriL(loc, tril)  # batch of 2 Gaussians
    n = 20000
    z, _ = stratified_sample(q, n, seed=tf.constant([5, 6]))
    z = z.numpy().reshape(n, 2, 2) if mixture else z.numpy()[:, 0]  # [n, 2, d]
    for i in range(2):
        want = tril[i] @ tril[i].T
        got = np.cov(z[:, i].T)
        se = np.sqrt((np.outer(np.diag(want), np.diag(want)) + want**2) / n)
        np.testing.assert_array_less(np.abs(got - want), 5 * se)
        np.testing.assert_array_less(np.abs(z[:, i].mean(0) - loc[i]), 5 * np.sqrt(np.diag(want) / n))
        wrong = tril[i].T @ tril[i]
        assert np.max(np.abs(wrong - want) / se) > 35
