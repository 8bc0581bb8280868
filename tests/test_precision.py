"""`tfvi.precision`: what `--precision=auto` and `--jit_compile=auto` choose, and that
the choice for convolutional models (bfloat16 networks) keeps the bound within
0.1 nats of float32's after the same short training (truth: the float32 model)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvi import layers, models, precision
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


def mlp_vae():
    return models.VAE(layers.GaussianEncoder(2, hidden=(8,)),
                      layers.BernoulliDecoder(6, hidden=(8,)), input_dim=6, seed=0)


@pytest.fixture
def float32_afterwards():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_precision_is_bfloat16_only_for_convolutions_on_bf16_hardware(
        monkeypatch, has_bf16):
    monkeypatch.setattr(precision, "bfloat16_supported", lambda: has_bf16)
    for architecture in precision.CONVOLUTIONAL:
        expected = "mixed_bfloat16" if has_bf16 else "float32"
        assert precision.resolve_precision("auto", architecture) == expected
    for architecture in ("mlp", "dense_vae"):
        assert precision.resolve_precision("auto", architecture) == "float32"
    for explicit in ("float32", "mixed_bfloat16", "mixed_float16"):
        assert precision.resolve_precision(explicit, "resnet_vae") == explicit


def test_unknown_precision_names_the_argument():
    with pytest.raises(ValueError, match="precision"):
        precision.resolve_precision("bfloat16")


def test_set_precision_sets_the_global_policy(float32_afterwards):
    assert precision.set_precision("mixed_bfloat16", "mlp") == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert precision.set_precision("auto", "mlp") == "float32"
    assert keras.config.dtype_policy().name == "float32"


def test_jit_compile_auto_is_off_for_convolutions_on_for_dense_networks():
    assert precision.default_jit_compile("mlp") and precision.default_jit_compile("dense_vae")
    assert not any(precision.default_jit_compile(a) for a in precision.CONVOLUTIONAL)
    conv, mlp = conv_vae(), mlp_vae()
    assert precision.architecture_of(conv) == "conv"
    assert precision.architecture_of(mlp) == "mlp"
    conv.compile("adam")
    mlp.compile("adam")
    assert conv.jit_compile is False and mlp.jit_compile is True
    mlp.compile("adam", jit_compile=False)  # an explicit choice is kept
    assert mlp.jit_compile is False


def test_no_xla_under_a_distribution_strategy():
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        model = mlp_vae()
        assert precision.auto_jit_compile(model) is False


def train_and_score(policy, x):
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        model = conv_vae()
        model.compile(keras.optimizers.Adam(3e-3))
        model.fit(x, batch_size=16, epochs=4, verbose=0, shuffle=False)
        terms = model.log_weight_terms(x, seed=tf.constant([5, 5]))
        return model, float(tf.reduce_mean(model.bound_values(terms)["elbo"]))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_bfloat16_training_keeps_the_bound_within_a_tenth_of_a_nat():
    probs = load_mnist5k()["train_probs"][:32]
    x = (np.random.default_rng(0).random(probs.shape) < probs).astype(np.float32)
    model32, elbo32 = train_and_score("float32", x)
    model16, elbo16 = train_and_score("mixed_bfloat16", x)
    assert model16.encoder.network.layers[0].compute_dtype == "bfloat16"
    assert model32.encoder.network.layers[0].compute_dtype == "float32"
    # training moved the bound by far more than the tolerance, so the check has teeth
    keras.utils.set_random_seed(0)
    untrained = conv_vae()
    terms = untrained.log_weight_terms(x, seed=tf.constant([5, 5]))
    elbo0 = float(tf.reduce_mean(untrained.bound_values(terms)["elbo"]))
    assert elbo32 - elbo0 > 10.0, (elbo0, elbo32)
    assert np.isfinite(elbo16) and abs(elbo16 - elbo32) < 0.1, (elbo16, elbo32)
