"""Mixed precision (bfloat16 on CPU): the networks compute in bfloat16, every
log-density and bound in float32, and a short training run ends within 0.1 nats of
the float32 model trained the same way (same initial weights, data and seeds; truth:
the float32 model's bound). This is what lets `tfvi.precision` choose bfloat16 for
convolutional networks.

The 0.1-nat tolerance is issue 16's; the comparison is deterministic (fixed seeds,
no shuffling, a fixed evaluation seed), so the only difference is bfloat16 rounding
(measured 0.08 nats; `mixed_float16` moves the bound by 2.6).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvi import layers, models
from tfvi.data.mnist5k import load_mnist5k


def conv_vae():
    encoder_net = keras.Sequential([
        keras.layers.Conv2D(8, 3, 2, padding="same", activation="relu"),
        keras.layers.Conv2D(8, 3, 2, padding="same", activation="relu"),
        keras.layers.Flatten()])
    decoder_net = keras.Sequential([
        keras.layers.Dense(7 * 7 * 8, activation="relu"), keras.layers.Reshape((7, 7, 8)),
        keras.layers.Conv2DTranspose(8, 3, 2, padding="same", activation="relu"),
        keras.layers.Conv2DTranspose(8, 3, 2, padding="same", activation="relu")])
    return models.VAE(layers.GaussianEncoder(4, network=encoder_net),
                      layers.BernoulliDecoder((28, 28, 1), network=decoder_net),
                      input_dim=(28, 28, 1), seed=0)


def train_and_score(policy, x):
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        model = conv_vae()
        model.compile(keras.optimizers.Adam(3e-3))
        model.fit(x, batch_size=16, epochs=4, verbose=0, shuffle=False)
        terms = model.log_weight_terms(x, seed=tf.constant([5, 5]))
        return model, terms, float(tf.reduce_mean(model.bound_values(terms)["elbo"]))
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="module")
def digits():
    probs = load_mnist5k()["train_probs"][:32]
    return (np.random.default_rng(0).random(probs.shape) < probs).astype(np.float32)


def test_bfloat16_networks_float32_bounds_within_a_tenth_of_a_nat(digits):
    _, _, elbo32 = train_and_score("float32", digits)
    model, terms, elbo16 = train_and_score("mixed_bfloat16", digits)
    assert model.encoder.network.layers[0].compute_dtype == "bfloat16"
    assert model.decoder.network.layers[-1].compute_dtype == "bfloat16"
    assert model.encoder.compute_dtype == "float32" == model.decoder.head.compute_dtype
    assert model.prior.compute_dtype == "float32"
    for name in ("log_likelihood", "log_prior", "log_posterior"):
        assert terms[name].dtype == tf.float32
        assert np.all(np.isfinite(terms[name].numpy()))
    # training moved the bound by far more than the tolerance, so the check has teeth
    keras.utils.set_random_seed(0)
    untrained = conv_vae()
    elbo0 = float(tf.reduce_mean(untrained.bound_values(
        untrained.log_weight_terms(digits, seed=tf.constant([5, 5])))["elbo"]))
    assert elbo32 - elbo0 > 10.0, (elbo0, elbo32)
    assert np.isfinite(elbo16) and abs(elbo16 - elbo32) < 0.1, (elbo16, elbo32)
