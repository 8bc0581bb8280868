"""IWAE log-likelihood estimates against the exact log-evidence of linear-Gaussian models."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfvi
from tfvi import bounds, data, evaluation, layers, models


@pytest.fixture(scope="module")
def trained_linear_gaussian():
    """The true generative model (decoder fixed at the data's W, b, s), with an
    amortised diagonal encoder trained by the ELBO: a reasonable, imperfect q."""
    keras.utils.set_random_seed(0)
    x, p = data.linear_gaussian(512, latent_dim=2, data_dim=5, noise_scale=0.25, seed=1)
    encoder = layers.GaussianEncoder(2, hidden=(), covariance="diag")
    decoder = layers.GaussianDecoder(5, hidden=(), scale="fixed", init_scale=p["noise_scale"])
    model = models.VAE(encoder, decoder, objective="elbo", samples=1, input_dim=5, seed=0)
    decoder.head.kernel.assign(p["weights"])
    decoder.head.bias.assign(p["bias"])
    decoder.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(3e-2), jit_compile=False)
    model.fit(x, batch_size=128, epochs=60, verbose=0)
    return model, x[:200], evaluation.exact_log_likelihood(model, x[:200])


def test_exact_log_likelihood_matches_quadrature(trained_linear_gaussian):
    """The closed form against an independent truth: log of the integral of
    p(x|z) p(z) over the 2-d latent by the trapezoid rule on a 401 x 401 grid over
    [-7, 7]^2 (the posterior sd here is ~0.1, resolved by ~3 grid steps per sd;
    quadrature error < 1e-4 nats), for 6 examples."""
    model, x, exact = trained_linear_gaussian
    _, p = data.linear_gaussian(512, latent_dim=2, data_dim=5, noise_scale=0.25, seed=1)
    w, b, s = p["weights"].astype(np.float64), p["bias"].astype(np.float64), p["noise_scale"]
    grid = np.linspace(-7.0, 7.0, 401)
    z = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    log_prior = -0.5 * (z**2).sum(-1) - np.log(2 * np.pi)
    mean = z @ w + b  # [G, 5]
    for i in range(6):
        log_lik = (-0.5 * ((x[i] - mean) ** 2).sum(-1) / s**2
                   - 5 * np.log(s) - 2.5 * np.log(2 * np.pi))
        log_joint = (log_lik + log_prior).reshape(401, 401)
        top = log_joint.max()
        integral = np.trapezoid(np.trapezoid(np.exp(log_joint - top), grid, axis=1), grid)
        assert exact[i] == pytest.approx(np.log(integral) + top, abs=1e-3)
    np.testing.assert_allclose(
        exact, evaluation.linear_gaussian_log_marginal(x, **p), rtol=1e-6)


def test_iwae_5000_is_within_005_nats_of_exact(trained_linear_gaussian):
    model, x, exact = trained_linear_gaussian
    estimate = evaluation.iwae_log_likelihood(model, x, num_samples=5000, batch_size=100)
    assert estimate.dtype == np.float64 and estimate.shape == exact.shape
    assert abs(np.mean(estimate - exact)) < 0.05


def test_elbo_le_iwae_k_le_log_evidence(trained_linear_gaussian):
    model, x, exact = trained_linear_gaussian
    terms = model.log_weight_terms(x, samples=1000, seed=tf.constant([1, 2]))
    log_w = (terms["log_likelihood"] + terms["log_prior"] - terms["log_posterior"])[:, 0]
    # Per-example gaps to the exact log p(x) (paired, so the spread of log p(x) over
    # examples does not enter the standard errors); IWAE-10 averaged over 100 groups.
    gap = {
        "elbo": exact - bounds.elbo(log_w).numpy(),
        "iwae10": exact - tf.reduce_mean(tf.reshape(
            bounds.iwae(tf.reshape(log_w, [10, -1])), [100, -1]), 0).numpy(),
        "iwae1000": exact - bounds.iwae(log_w).numpy(),
    }
    mean = {k: v.mean() for k, v in gap.items()}
    se = {k: v.std() / np.sqrt(len(v)) for k, v in gap.items()}
    assert mean["elbo"] > mean["iwae10"] + 3 * np.hypot(se["elbo"], se["iwae10"]) > 0
    assert mean["iwae10"] > mean["iwae1000"] + 3 * np.hypot(se["iwae10"], se["iwae1000"])
    assert mean["iwae1000"] > -3 * se["iwae1000"] - 1e-3   # IWAE <= log p(x), up to noise


def test_estimate_is_repeatable_and_does_not_depend_on_chunking(trained_linear_gaussian):
    model, x, _ = trained_linear_gaussian
    x = x[:50]
    a = evaluation.iwae_log_likelihood(model, x, num_samples=600, seed=3)
    b = evaluation.iwae_log_likelihood(model, x, num_samples=600, seed=3)
    c = evaluation.iwae_log_likelihood(model, x, num_samples=600, seed=3,
                                       max_chunk_elements=50 * 7)
    np.testing.assert_array_equal(a, b)
    assert abs(np.mean(a - c)) < 0.02  # different chunk draws, same estimator


def test_exact_log_likelihood_refuses_nonlinear_models():
    model = models.VAE(layers.GaussianEncoder(2), layers.GaussianDecoder(5, hidden=(8,)),
                       input_dim=5)
    with pytest.raises(ValueError, match="needs a linear-Gaussian decoder"):
        evaluation.exact_log_likelihood(model, np.zeros((2, 5), np.float32))


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_samples=0), "`num_samples` must be a positive integer; got 0"),
    (dict(batch_size=-1), "`batch_size` must be a positive integer"),
    (dict(x=np.zeros(5, np.float32)), r"`x` must have shape \[N, input_dim\]"),
])
def test_bad_arguments(trained_linear_gaussian, kwargs, match):
    model, x, _ = trained_linear_gaussian
    kwargs.setdefault("x", x[:4])
    with pytest.raises(ValueError, match=match):
        evaluation.iwae_log_likelihood(model, **kwargs)


class _LinearGaussianWithMixtureProposal:
    """A stand-in model (anything with `log_weight_terms` and `num_components` works):
    the exact linear-Gaussian joint and a fixed, imperfect 2-component mixture q(z|x)
    (the exact posterior mean shifted by +-0.6, widened 1.4x, weights 0.25/0.75)."""

    num_components = 2

    def __init__(self, params):
        w, b, s = params["weights"], params["bias"], params["noise_scale"]
        self.w, self.b, self.s = w, b, s
        cov = np.linalg.inv(np.eye(len(w)) + w @ w.T / s**2)
        self.gain = w.T @ cov / s**2
        self.sd = 1.4 * np.sqrt(np.diag(cov)).astype(np.float32)

    def log_weight_terms(self, x, y=None, samples=1, stratified=True, seed=None):
        x = tf.convert_to_tensor(x)
        q = self._q(x)
        if stratified:
            z, log_alpha = tfvi.distributions.stratified_sample(q, samples, seed=seed)
        else:
            z = q.sample(samples, seed=seed)[:, tf.newaxis]
            log_alpha = tf.zeros_like(z[0, :, :, 0])
        mean = tf.einsum("tkbd,de->tkbe", z, self.w) + self.b
        return {"log_likelihood": tf.reduce_sum(
                    tfp.distributions.Normal(mean, self.s).log_prob(x), -1),
                "log_prior": tfp.distributions.MultivariateNormalDiag(
                    tf.zeros(len(self.w))).log_prob(z),
                "log_posterior": q.log_prob(z), "log_alpha": log_alpha, "z": z}

    def _q(self, x):
        mean = tf.matmul(x - self.b, tf.constant(self.gain, tf.float32))
        loc = tf.stack([mean + 0.6, mean - 0.6], axis=1)
        logits = tf.math.log(tf.constant([0.25, 0.75]))[tf.newaxis] + 0.0 * loc[..., 0]
        return tfvi.distributions.GaussianMixture(
            logits, loc, scale_diag=tf.broadcast_to(self.sd, tf.shape(loc)))


@pytest.mark.parametrize("stratified", [True, False])
def test_iwae_log_likelihood_with_a_mixture_proposal_matches_exact(stratified):
    """IWAE-S with S = 4000 over 40 chunks (10 samples per component per chunk) against
    the exact log p(x) of a linear-Gaussian model, with a K = 2 mixture proposal, both
    stratified (alpha_k weights, S/K per component) and ancestral.

    Tolerance 0.02 nats on the mean over 60 examples. The estimator's bias is about
    -Var(w/p)/(2S) < 0.002 nats here and its spread (mean of 60) < 0.005, so a false
    failure needs a > 4 SE excursion (< 1e-4). Caught bugs, each > 0.1 nats: dropping
    log alpha_k (>= 0.29 nats with weights 0.25/0.75), dividing by S instead of S/K
    (log 2 = 0.69) and reusing one chunk's samples for every chunk (IWAE-10's bias,
    measured > 0.1 nats by the control below)."""
    x, p = data.linear_gaussian(60, latent_dim=2, data_dim=3, noise_scale=0.4, seed=4)
    model = _LinearGaussianWithMixtureProposal(p)
    exact = evaluation.linear_gaussian_log_marginal(x, **p)
    estimate = evaluation.iwae_log_likelihood(
        model, x, num_samples=4000, batch_size=30, stratified=stratified,
        max_chunk_elements=600)
    assert estimate.dtype == np.float64 and estimate.shape == exact.shape
    assert abs(np.mean(estimate - exact)) < 0.02, np.mean(estimate - exact)
    # Control: the bias of one 20-sample chunk is far outside the tolerance.
    small = evaluation.iwae_log_likelihood(model, x, num_samples=20, batch_size=30,
                                           stratified=stratified)
    assert np.mean(small - exact) < -0.1


def test_chunked_iwae_keeps_an_exact_running_logsumexp_over_chunks():
    """The kernel against the same draws scored by hand: one chunk is SIWAE of
    `bounds` (log-weights from `bounds.log_weights`); chunks of 7, 7, 6 samples per
    component (seeds folded with their first sample) give log-sum-exp over all 20
    draws minus log 20; S as a tensor inside a graph (the SavedModel's path) gives
    the same as a Python int, up to float32 round-off."""
    x, p = data.linear_gaussian(8, latent_dim=2, data_dim=3, noise_scale=0.4, seed=4)
    model = _LinearGaussianWithMixtureProposal(p)
    seed = tf.constant([3, 4])

    def draws(n, first):
        terms = model.log_weight_terms(
            x, samples=n, seed=tf.random.experimental.stateless_fold_in(seed, first))
        log_w = bounds.log_weights(terms["log_likelihood"], terms["log_prior"],
                                   terms["log_posterior"])
        return tf.cast(log_w, tf.float64), tf.cast(terms["log_alpha"], tf.float64)

    one_chunk = evaluation.chunked_iwae(model, x, None, 40, seed, chunk_size=20)
    assert one_chunk.dtype == tf.float64 and one_chunk.shape == (8,)
    np.testing.assert_allclose(one_chunk, bounds.siwae(*draws(20, 0)), rtol=1e-10)

    parts = [draws(n, first) for n, first in ((7, 0), (7, 7), (6, 14))]
    log_w = tf.concat([w for w, _ in parts], axis=0)
    expected = tf.reduce_logsumexp(log_w + parts[0][1], axis=[0, 1]) - np.log(20.0)
    chunked = evaluation.chunked_iwae(model, x, None, 40, seed, chunk_size=7)
    np.testing.assert_allclose(chunked, expected, rtol=1e-10)
    assert np.max(np.abs(chunked - one_chunk)) > 1e-3  # other draws, not the same ones

    in_graph = tf.function(lambda s: evaluation.chunked_iwae(
        model, x, None, s, seed, chunk_size=tf.constant(7)))
    # The graph may fuse the float32 log-density ops differently: round-off of ~1e-6.
    np.testing.assert_allclose(in_graph(tf.constant(40)), chunked, rtol=0, atol=1e-5)


def test_image_targets_get_small_iwae_chunks_by_default():
    # 50,000 decoder evaluations per chunk of a 28x28 conv decoder need ~17 GB; image
    # events default to 1,000. Chunk c uses the seed fold_in(seed, t_c), so the
    # estimate identifies the chunking: the default must equal the 1,000 one.
    assert evaluation.likelihood.default_chunk_elements(np.zeros((3, 28, 28, 1))) == 1_000
    assert evaluation.likelihood.default_chunk_elements(np.zeros((3, 784))) == 50_000
    keras.utils.set_random_seed(0)
    conv = keras.Sequential([keras.layers.Conv2D(2, 3), keras.layers.Flatten()])
    model = models.VAE(layers.GaussianEncoder(2, network=conv),
                       layers.BernoulliDecoder(event_shape=(6, 6, 1), hidden=(8,)),
                       input_dim=(6, 6, 1))
    x = (np.random.default_rng(0).uniform(size=(4, 6, 6, 1)) < 0.5).astype(np.float32)

    def estimate(**kwargs):
        return evaluation.iwae_log_likelihood(model, x, num_samples=600, batch_size=4,
                                              seed=3, **kwargs)

    np.testing.assert_array_equal(estimate(), estimate(max_chunk_elements=1_000))
    assert not np.array_equal(estimate(), estimate(max_chunk_elements=50_000))
