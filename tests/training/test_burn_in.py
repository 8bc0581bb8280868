"""Burn-in against the prior (B.3): decoder -> data marginal, encoder -> prior."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvi
from tfvi.training.burn_in import BurnIn, burn_in, burn_in_loss
from tfvi.data import views


@pytest.fixture(scope="module")
def burned():
    rng = np.random.default_rng(0)
    pixel_means = np.linspace(0.05, 0.95, 6).astype(np.float32)
    x = (rng.random((600, 6)) < pixel_means).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = tfvi.models.VAE(
        tfvi.layers.GaussianEncoder(2, hidden=(16,)),
        tfvi.layers.BernoulliDecoder(6, hidden=(16,)),
        tfvi.priors.MixtureOfGaussians(2, components=3, seed=0),
        input_dim=6, seed=0)
    prior_before = [v.numpy().copy() for v in model.prior.trainable_variables]
    loss_before = float(tf.reduce_mean(burn_in_loss(model, x, seed=tf.constant([0, 1]))))
    history = burn_in(model, x, epochs=8, batch_size=50, learning_rate=1e-2, samples=4,
                      verbose=0)
    return model, x, pixel_means, prior_before, loss_before, history


def test_burn_in_fits_decoder_to_data_marginal(burned):
    model, x, pixel_means, _, loss_before, history = burned
    z = model.prior().sample(4000, seed=tf.constant([3, 4]))
    probs = tf.reduce_mean(tf.sigmoid(model.decoder.decoder_parameters(z)["logits"]), 0)
    np.testing.assert_allclose(probs.numpy(), x.mean(0), atol=0.05)
    assert history[-1] < loss_before


def test_burn_in_spreads_encoder_over_prior_and_keeps_prior_fixed(burned):
    model, x, _, prior_before, _, _ = burned
    for before, after in zip(prior_before, model.prior.trainable_variables):
        np.testing.assert_array_equal(before, after.numpy())
    # Forward-KL fit of a Gaussian q to r: q's mean and covariance match r's moments.
    r = model.prior()
    z = r.sample(20000, seed=tf.constant([5, 6])).numpy()
    q = model.encoder(tf.constant(x[:100]))
    np.testing.assert_allclose(q.mean().numpy().mean(0), z.mean(0), atol=0.25)
    np.testing.assert_allclose(q.stddev().numpy().mean(0), z.std(0), rtol=0.25)


def test_burn_in_callback_and_validation():
    x = (np.random.default_rng(1).random((64, 6)) < 0.5).astype(np.float32)
    model = tfvi.models.VAE(tfvi.layers.GaussianEncoder(2, hidden=(8,)),
                            tfvi.layers.BernoulliDecoder(6, hidden=(8,)), input_dim=6,
                            seed=0)
    model.compile("adam", jit_compile=False)
    callback = BurnIn(x, epochs=1, verbose=0)
    model.fit(x, epochs=1, batch_size=32, verbose=0, callbacks=[callback])
    assert len(callback.history) == 1 and np.isfinite(callback.history[0])
    with pytest.raises(ValueError, match="epochs"):
        burn_in(model, x, epochs=-1)


def test_views():
    x = np.arange(2 * 64).reshape(2, 64)
    col = views.single_column(x, (8, 8))
    np.testing.assert_array_equal(col[0], np.arange(8) * 8 + 4)
    labels = np.array([0, 1, 0, 1, 2])
    partners = views.same_class_partners(labels, seed=0)
    np.testing.assert_array_equal(labels[partners], labels)
    np.testing.assert_array_equal(
        views.same_class_random_targets(np.arange(5)[:, None], labels, seed=0)[:, 0],
        partners)
    with pytest.raises(ValueError, match="x"):
        views.single_column(x[:, :60], (8, 8))
