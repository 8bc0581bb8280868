"""Xu et al. B.3's q(z) moment penalty and its use in `tfvi.models.VAE`."""

import keras
import numpy as np
import pytest

import tfvi
from tfvi import regularizers


def test_moments_are_the_alpha_weighted_moments_of_all_samples():
    rng = np.random.default_rng(0)
    t, k, b, d = 4, 3, 5, 2
    z = rng.normal(size=(t, k, b, d)).astype(np.float32) * 2 + 1
    alpha = rng.dirichlet(np.ones(k), size=b).T.astype(np.float32)  # [K, batch]
    mean, var = regularizers.aggregate_posterior_moments(z, np.log(alpha))
    w = np.broadcast_to((alpha / (t * b))[None, :, :, None], z.shape)
    want_mean = (w * z).sum(axis=(0, 1, 2))
    want_var = (w * (z - want_mean) ** 2).sum(axis=(0, 1, 2))
    np.testing.assert_allclose(mean, want_mean, rtol=1e-5)
    np.testing.assert_allclose(var, want_var, rtol=1e-5)


def test_penalty_is_zero_at_standard_moments_and_exact_off_them():
    z = np.array([1.0, -1.0], np.float32).reshape(2, 1, 1, 1)  # mean 0, variance 1
    log_alpha = np.zeros((1, 1), np.float32)
    assert float(regularizers.qz_moment_penalty(z, log_alpha)) == pytest.approx(0.0)
    # Shift by 0.5 and scale by 2: Mean^2 + (Var - 1)^2 = 0.25 + 9.
    assert float(regularizers.qz_moment_penalty(2 * z + 0.5, log_alpha)) == \
        pytest.approx(9.25, rel=1e-6)
    with pytest.raises(ValueError, match=r"\[T, K, batch, d\]"):
        regularizers.qz_moment_penalty(z[0], log_alpha)


def _fit(weight, data):
    keras.utils.set_random_seed(0)
    # beta = 0: nothing but the penalty ties q(z) to N(0, I).
    model = tfvi.models.VAE(tfvi.layers.GaussianEncoder(2, hidden=(16,)),
                            tfvi.layers.BernoulliDecoder(12, hidden=(16,)),
                            objective="elbo", beta=0.0, input_dim=12, seed=0,
                            qz_regularizer=weight)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    history = model.fit(data, batch_size=64, epochs=40, verbose=0).history
    terms = model.log_weight_terms(data, samples=20)
    penalty = float(regularizers.qz_moment_penalty(terms["z"], terms["log_alpha"]))
    return history, penalty


def test_vae_loss_adds_the_weighted_penalty_and_it_pulls_q_z_to_standard_moments():
    rng = np.random.default_rng(1)
    data = (rng.random((256, 12)) < 0.3).astype(np.float32)
    history, with_penalty = _fit(5.0, data)
    np.testing.assert_allclose(
        history["loss"], -np.array(history["elbo"]) + 5.0 * np.array(history["qz_regularizer"]),
        rtol=1e-4, atol=1e-4)
    history_off, without = _fit(0.0, data)
    assert "qz_regularizer" not in history_off
    assert with_penalty < 0.1
    assert without > 5 * with_penalty


@pytest.mark.parametrize("kwargs, match", [
    (dict(qz_regularizer=-1.0), "non-negative"),
    (dict(qz_regularizer=1.0, objective="iwae", samples=2, gradient_estimator="dreg"),
     "reparameterised"),
])
def test_bad_regularizer_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tfvi.models.VAE(tfvi.layers.GaussianEncoder(2), tfvi.layers.BernoulliDecoder(4),
                        **kwargs)


def test_regularizer_weight_survives_a_keras_round_trip(tmp_path):
    model = tfvi.models.VAE(tfvi.layers.GaussianEncoder(2), tfvi.layers.BernoulliDecoder(4),
                            input_dim=4, qz_regularizer=0.5)
    path = str(tmp_path / "m.keras")
    model.save(path)
    assert keras.saving.load_model(path).qz_regularizer == 0.5
