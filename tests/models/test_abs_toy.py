"""Morningstar et al.'s |z| toy: a K=4 mixture posterior trained with SIWAE against the exact
log-evidence, its four modes, and SIWAE against SELBO and IWAE (Theorem A.2).

z ~ N(0, I_2), x ~ N(|z|, sigma^2 I_2), only the posterior is trained (the likelihood
is known); the exact mean log p(x) is `tfvi.data.abs_toy_log_marginal`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvi import data, layers, models

SIGMA = 0.1
EPOCHS = 60


def _train(objective, x):
    keras.utils.set_random_seed(0)
    encoder = layers.MixtureEncoder(2, components=4, hidden=(64, 64), covariance="full")
    model = models.VAE(encoder, data.abs_toy_likelihood(SIGMA), objective=objective,
                       samples=10, input_dim=2, seed=0)
    steps = EPOCHS * len(x) // 100
    model.compile(optimizer=keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(5e-3, steps, alpha=0.05)))  # XLA default
    history = model.fit(x, batch_size=100, epochs=EPOCHS, verbose=0)
    return model, history.history


@pytest.fixture(scope="module")
def toy():
    x, _ = data.abs_toy(2000, dim=2, sigma=SIGMA, seed=0)
    exact = data.abs_toy_log_marginal(x, SIGMA)
    return x, exact, _train("siwae", x), _train("selbo", x)


def _siwae(model, x, samples=10, stratified=True):
    terms = model.log_weight_terms(x, samples=samples, stratified=stratified,
                                   seed=tf.constant([1, 2]))
    return model.bound_values(terms, objective="siwae", beta=1.0)["siwae"].numpy()


def test_siwae_training_reaches_the_exact_log_evidence(toy):
    x, exact, (model, history), _ = toy
    assert not model.decoder.trainable_weights  # only the posterior is trained
    assert abs(history["siwae"][-1] - exact.mean()) < 0.1
    # The trained bound on the whole data set, after training, with fresh samples.
    assert abs(_siwae(model, x).mean() - exact.mean()) < 0.1
    assert _siwae(model, x).mean() < exact.mean()  # still a lower bound


def test_siwae_posterior_covers_all_four_quadrants(toy):
    _, _, (model, _), _ = toy
    z = model.encoder(np.array([[1.0, 1.0]], np.float32)).sample(
        20_000, seed=tf.constant([3, 4])).numpy()[:, 0]
    share = [np.mean((np.sign(z[:, 0]) == a) & (np.sign(z[:, 1]) == b))
             for a in (1, -1) for b in (1, -1)]
    assert min(share) > 0.1, share


def test_siwae_ends_above_selbo(toy):
    x, _, (siwae_model, siwae_history), (selbo_model, selbo_history) = toy
    assert siwae_history["siwae"][-1] > selbo_history["selbo"][-1]
    # Scored by the same estimator, the SIWAE-trained posterior is the better one.
    assert _siwae(siwae_model, x).mean() > _siwae(selbo_model, x).mean()


def test_siwae_is_tighter_than_iwae_at_equal_t(toy):
    x, _, (model, _), _ = toy
    siwae = _siwae(model, x, samples=5, stratified=True)
    iwae = _siwae(model, x, samples=5, stratified=False)  # T ancestral samples of q
    diff = siwae - iwae
    assert diff.mean() > 3 * diff.std() / np.sqrt(len(diff))
