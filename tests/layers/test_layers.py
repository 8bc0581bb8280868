"""Encoders, decoders and priors: distributions, shapes, serialisation, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvi import data, layers, priors
from tfvi.distributions import GaussianMixture

tfd = tfp.distributions
X = np.random.default_rng(0).uniform(size=(5, 6)).astype(np.float32)


@pytest.mark.parametrize("covariance,cls", [("diag", tfd.MultivariateNormalDiag),
                                            ("full", tfd.MultivariateNormalTriL)])
def test_gaussian_encoder_returns_mvn(covariance, cls):
    q = layers.GaussianEncoder(3, hidden=(8,), covariance=covariance)(X)
    assert isinstance(q, cls)
    assert q.batch_shape == (5,) and q.event_shape == (3,)
    assert q.sample(4).shape == (4, 5, 3)


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_mixture_encoder_returns_gaussian_mixture(covariance):
    enc = layers.MixtureEncoder(3, components=4, hidden=(8,), covariance=covariance)
    q = enc(X)
    assert isinstance(q, GaussianMixture)
    assert q.batch_shape == (5,) and q.event_shape == (3,)
    params = enc.posterior_parameters(X)
    assert params["logits"].shape == (5, 4) and params["loc"].shape == (5, 4, 3)
    scale = params["scale_diag"] if covariance == "diag" else params["scale_tril"]
    assert scale.shape == ((5, 4, 3) if covariance == "diag" else (5, 4, 3, 3))
    assert np.all(np.linalg.eigvals(np.asarray(q.covariance())).real > 0)


def test_one_component_mixture_is_the_gaussian_encoder():
    mixture = layers.MixtureEncoder(3, components=1, hidden=(8,))
    gaussian = layers.GaussianEncoder(3, hidden=(8,))
    mixture.build(X.shape)
    gaussian.build(X.shape)
    assert [w.shape for w in mixture.weights] == [w.shape for w in gaussian.weights]
    gaussian.set_weights(mixture.get_weights())
    assert "logits" not in mixture.posterior_parameters(X)
    np.testing.assert_allclose(mixture(X).log_prob(np.zeros(3, np.float32)),
                               gaussian(X).log_prob(np.zeros(3, np.float32)))


def test_decoders_broadcast_over_sample_dimensions():
    z = np.random.default_rng(1).normal(size=(2, 3, 5, 4)).astype(np.float32)  # [T,K,B,d]
    x = (X > 0.5).astype(np.float32)
    for dec in [layers.BernoulliDecoder(6, hidden=(8,)),
                layers.GaussianDecoder(6, hidden=(8,), scale="per_dimension"),
                layers.LogitNormalDecoder(6, hidden=(8,))]:
        log_prob = dec(z).log_prob(dec.prepare_targets(x))
        assert log_prob.shape == (2, 3, 5)
        assert np.all(np.isfinite(log_prob))
    cat = layers.CategoricalDecoder(10)
    assert cat(z).log_prob(cat.prepare_targets(np.arange(5))).shape == (2, 3, 5)


def test_bernoulli_decoder_is_the_bernoulli_log_likelihood():
    dec = layers.BernoulliDecoder(6, hidden=())
    z = np.ones((5, 4), np.float32)
    x = (X > 0.5).astype(np.float32)
    logits = dec.decoder_parameters(z)["logits"].numpy()
    expected = (x * -np.log1p(np.exp(-logits)) + (1 - x) * -np.log1p(np.exp(logits))).sum(-1)
    np.testing.assert_allclose(dec(z).log_prob(x), expected, rtol=1e-5)


def test_bernoulli_validation_rejects_non_binary_targets():
    dec = layers.BernoulliDecoder(6, hidden=(), validate_args=True)
    with pytest.raises(ValueError, match="must be 0 or 1"):
        dec.prepare_targets(X)
    dec.prepare_targets((X > 0.5).astype(np.float32))  # binary data passes


def test_logit_normal_clips_targets_at_the_edges():
    dec = layers.LogitNormalDecoder(6, hidden=())
    x = np.tile([[0.0, 1.0, 0.5, 0.2, 0.999, 0.0]], (5, 1)).astype(np.float32)
    targets = dec.prepare_targets(x).numpy()
    assert targets.min() == pytest.approx(1e-3) and targets.max() == pytest.approx(1 - 1e-3)
    assert np.all(np.isfinite(dec(np.zeros((5, 4), np.float32)).log_prob(targets)))


def test_gaussian_decoder_scales():
    fixed = layers.GaussianDecoder(3, hidden=(), scale="fixed", init_scale=0.3)
    fixed.build((None, 2))
    assert {w.name for w in fixed.trainable_weights} == {"kernel", "bias"}
    assert "raw_scale" in {w.name for w in fixed.non_trainable_weights}
    np.testing.assert_allclose(fixed.observation_scale(), 0.3, rtol=1e-6)
    shared = layers.GaussianDecoder(3, hidden=(), scale="shared", init_scale=0.3)
    np.testing.assert_allclose(shared.observation_scale(), 0.3, rtol=1e-5)
    per_dim = layers.GaussianDecoder(3, hidden=(), scale="per_dimension")
    assert per_dim.observation_scale().shape == (3,)


def test_skip_connection_adds_one_affine_layer():
    plain = layers.BernoulliDecoder(6, hidden=(8,))
    skip = layers.BernoulliDecoder(6, hidden=(8,), skip=True)
    plain.build((None, 4))
    skip.build((None, 4))
    assert skip.count_params() - plain.count_params() == 4 * 6


def test_known_likelihood_has_no_weights_and_is_the_given_model():
    dec = data.abs_toy_likelihood(0.3)
    z = np.array([[1.0, -2.0]], np.float32)
    dist = dec(z)
    assert not dec.trainable_weights
    np.testing.assert_allclose(dist.mean(), np.abs(z))
    np.testing.assert_allclose(dist.stddev(), 0.3, rtol=1e-6)


def test_priors():
    standard = priors.StandardNormal(3)()
    assert standard.event_shape == (3,) and standard.batch_shape == ()
    mog = priors.MixtureOfGaussians(3, components=5, covariance="full", seed=0)
    assert len(mog.trainable_weights) == 3
    r = mog()
    assert isinstance(r, GaussianMixture) and r.event_shape == (3,)
    np.testing.assert_allclose(np.diagonal(r.components_distribution.covariance(), 0, -2, -1),
                               1.0, rtol=1e-4)
    assert layers.MixtureOfGaussians is priors.MixtureOfGaussians


@pytest.mark.parametrize("make", [
    lambda: layers.GaussianEncoder(3, hidden=(8, 4), covariance="full"),
    lambda: layers.MixtureEncoder(3, components=2, hidden=(8,), activation="relu"),
    lambda: layers.BernoulliDecoder(6, hidden=(8,), skip=True, validate_args=True),
    lambda: layers.GaussianDecoder(6, hidden=(), scale="fixed", init_scale=0.5),
    lambda: layers.LogitNormalDecoder(6, init_scale=0.2),
    lambda: layers.CategoricalDecoder(10, hidden=(4,)),
    lambda: data.abs_toy_likelihood(0.2),
    lambda: priors.StandardNormal(3),
    lambda: priors.MixtureOfGaussians(3, components=4, covariance="full"),
])
def test_config_round_trip(make):
    layer = make()
    config = keras.saving.serialize_keras_object(layer)
    clone = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("make,match", [
    (lambda: layers.GaussianEncoder(0), "`latent_dim` must be a positive integer; got 0"),
    (lambda: layers.MixtureEncoder(2, components=0), "`components` must be a positive integer"),
    (lambda: layers.MixtureEncoder(2, components=-3), "`components`"),
    (lambda: layers.GaussianEncoder(2, covariance="dense"), r"`covariance` must be one of \['diag', 'full'\]"),
    (lambda: layers.BernoulliDecoder(0), "`output_dim` must be a positive integer"),
    (lambda: layers.GaussianDecoder(3, scale="learned"), "`scale` must be one of"),
    (lambda: layers.GaussianDecoder(3, init_scale=0.0), "`init_scale` must be positive"),
    (lambda: layers.MLP(hidden=(4, 0)), "`hidden` must hold positive layer widths"),
    (lambda: priors.MixtureOfGaussians(2, components=0), "`components`"),
    (lambda: layers.KnownLikelihood("not a function"), "`distribution_fn` must be callable"),
])
def test_bad_arguments_raise_value_error_naming_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_encoder_rejects_inputs_of_the_wrong_dimension():
    enc = layers.GaussianEncoder(2, hidden=(4,))
    enc.build((None, 6))
    with pytest.raises(ValueError, match=r"expects inputs `x` of shape \[batch, 6\]"):
        enc(tf.zeros([3, 7]))
