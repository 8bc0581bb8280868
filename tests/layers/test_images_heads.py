"""Networks under distribution heads: any Keras network, image event shapes, old files.

Truths: numpy recomputations of the heads (dense + reshape, 1x1 linear convolution,
skip connection, Bernoulli log-likelihood summed over every event axis), slice-by-slice
evaluation for the flattened sample axes, and outputs stored by the code that predates
networks (tests/fixtures/legacy_mlp_*, written by the MLP-only layers).
"""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvi import layers, models

DATA = pathlib.Path(__file__).parents[1] / "fixtures"
RNG = np.random.default_rng(0)
EVENT = (6, 6, 1)


def conv_decoder_network():
    """z [n, d] -> [n, 6, 6, 3] (the event's spatial shape: the 1x1 head applies)."""
    return keras.Sequential([
        keras.layers.Dense(3 * 3 * 4, activation="relu"),
        keras.layers.Reshape((3, 3, 4)),
        keras.layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation="relu"),
    ])


def conv_encoder_network():
    return keras.Sequential([
        keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Flatten(),
    ])


def sigmoid_log_likelihood(logits, x):
    return x * -np.log1p(np.exp(-logits)) + (1 - x) * -np.log1p(np.exp(logits))


@pytest.mark.parametrize("name", ["bernoulli_mixture", "gaussian", "logit_normal", "vib"])
def test_files_saved_before_networks_still_load_with_the_same_outputs(name):
    ref = np.load(DATA / "legacy_mlp_outputs.npz")
    model = keras.saving.load_model(DATA / f"legacy_mlp_{name}.keras", safe_mode=True)
    decoder = model.decoder if hasattr(model, "decoder") else model.classifier
    assert decoder.network is None and model.encoder.network is None
    for key, value in model.encoder.posterior_parameters(ref["x"]).items():
        np.testing.assert_allclose(value, ref[f"{name}/encode/{key}"], rtol=1e-6)
    for key, value in decoder.decoder_parameters(ref["z"]).items():
        np.testing.assert_allclose(value, ref[f"{name}/decode/{key}"], rtol=1e-6)


def test_spatial_features_get_a_1x1_linear_head_and_log_prob_sums_every_event_axis():
    dec = layers.BernoulliDecoder(event_shape=EVENT, network=conv_decoder_network())
    z = RNG.normal(size=(2, 3, 4, 5)).astype(np.float32)  # [T, K, batch, d]
    x = (RNG.uniform(size=(4,) + EVENT) > 0.5).astype(np.float32)
    logits = dec.decoder_parameters(z)["logits"].numpy()
    assert dec.spatial_head and logits.shape == (2, 3, 4) + EVENT
    features = dec.trunk(z.reshape(-1, 5)).numpy()  # [24, 6, 6, 3]
    kernel, bias = (w.numpy() for w in dec.head.weights)
    assert kernel.shape == (3, 1)  # a 1x1 convolution from 3 channels to 1
    expected = (np.einsum("nhwc,co->nhwo", features, kernel) + bias).reshape(logits.shape)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    log_prob = dec(z).log_prob(dec.prepare_targets(x)).numpy()
    assert log_prob.shape == (2, 3, 4)
    np.testing.assert_allclose(
        log_prob, sigmoid_log_likelihood(logits, x).sum(axis=(-3, -2, -1)), rtol=1e-5)


def test_flat_features_get_a_dense_head_and_a_reshape():
    net = keras.Sequential([keras.layers.Dense(7, activation="tanh")])
    dec = layers.GaussianDecoder(event_shape=EVENT, network=net, scale="per_dimension")
    z = RNG.normal(size=(4, 5)).astype(np.float32)
    loc = dec.decoder_parameters(z)["loc"].numpy()
    kernel, bias = (w.numpy() for w in dec.head.weights)
    assert not dec.spatial_head and kernel.shape == (7, 36)
    np.testing.assert_allclose(loc, (net(z).numpy() @ kernel + bias).reshape((4,) + EVENT),
                               rtol=1e-5, atol=1e-6)
    assert dec.observation_scale().shape == EVENT


def test_leading_sample_axes_are_flattened_and_restored():
    dec = layers.LogitNormalDecoder(event_shape=EVENT, network=conv_decoder_network())
    z = RNG.normal(size=(3, 2, 5)).astype(np.float32)
    loc = dec.decoder_parameters(z)["loc"].numpy()
    for t in range(3):  # each slice on its own: the same numbers
        np.testing.assert_allclose(loc[t], dec.decoder_parameters(z[t])["loc"].numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_skip_connection_with_an_image_event():
    dec = layers.BernoulliDecoder(event_shape=EVENT, network=conv_decoder_network(),
                                  skip=True)
    z = RNG.normal(size=(2, 4, 5)).astype(np.float32)
    logits = dec.decoder_parameters(z)["logits"].numpy()
    features = dec.trunk(z.reshape(-1, 5)).numpy()
    kernel, bias = (w.numpy() for w in dec.head.weights)
    (skip,) = (w.numpy() for w in dec.skip_layer.weights)
    head = np.einsum("nhwc,co->nhwo", features, kernel) + bias
    expected = head + (z.reshape(-1, 5) @ skip).reshape((-1,) + EVENT)
    np.testing.assert_allclose(logits, expected.reshape(logits.shape), rtol=1e-5, atol=1e-5)


def test_output_dim_and_event_shape_name_the_same_thing():
    assert layers.BernoulliDecoder(6).event_shape == (6,)
    assert layers.BernoulliDecoder(event_shape=6).event_shape == (6,)
    assert layers.BernoulliDecoder((28, 28, 1)).output_dim == 784
    with pytest.raises(ValueError, match="disagree"):
        layers.BernoulliDecoder(6, event_shape=(2, 3, 1))
    with pytest.raises(ValueError, match="event_shape"):
        layers.BernoulliDecoder(event_shape=(28, 0, 1))


def test_encoder_takes_any_network_and_round_trips(tmp_path):
    enc = layers.MixtureEncoder(3, components=2, network=conv_encoder_network())
    x = RNG.uniform(size=(4,) + EVENT).astype(np.float32)
    q = enc(x)
    assert q.batch_shape == (4,) and q.event_shape == (3,)
    model = models.VAE(enc, layers.BernoulliDecoder(EVENT, network=conv_decoder_network()),
                       objective="selbo", input_dim=EVENT)
    assert model.input_dim == EVENT
    model.save(tmp_path / "m.keras")
    clone = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert clone.input_dim == EVENT and clone.decoder.event_shape == EVENT
    np.testing.assert_array_equal(clone.encoder.posterior_parameters(x)["loc"],
                                  model.encoder.posterior_parameters(x)["loc"])
    z = RNG.normal(size=(2, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(clone.decoder.decoder_parameters(z)["logits"],
                                  model.decoder.decoder_parameters(z)["logits"])


def test_mlp_encoder_flattens_images():
    enc = layers.GaussianEncoder(2, hidden=(4,))
    x = RNG.uniform(size=(3,) + EVENT).astype(np.float32)
    loc = enc.posterior_parameters(x)["loc"].numpy()
    enc_flat = layers.GaussianEncoder(2, hidden=(4,))
    enc_flat.build((None, 36))
    enc_flat.set_weights(enc.get_weights())
    np.testing.assert_allclose(loc, enc_flat.posterior_parameters(x.reshape(3, 36))["loc"],
                               rtol=1e-6)


def test_bad_shapes_fail_with_one_line_naming_the_tensor():
    dec = layers.BernoulliDecoder(event_shape=(28, 28, 1), hidden=(4,))
    with pytest.raises(ValueError, match=r"targets `x` of shape \[batch, 28, 28, 1\]; "
                                         r"got shape \(2, 8, 8, 1\)"):
        dec.prepare_targets(np.zeros((2, 8, 8, 1), np.float32))
    enc = layers.GaussianEncoder(2, network=conv_encoder_network())
    enc.build((None,) + EVENT)
    with pytest.raises(ValueError, match=r"inputs `x` of shape \[batch, 6, 6, 1\]; "
                                         r"got shape \(2, 36\)"):
        enc.posterior_parameters(np.zeros((2, 36), np.float32))
    model = models.VAE(layers.GaussianEncoder(2, network=conv_encoder_network()),
                       layers.BernoulliDecoder(EVENT, hidden=(4,)), input_dim=EVENT)
    with pytest.raises(ValueError, match=r"`x` must have shape \[batch, 6, 6, 1\]"):
        model.fit(np.zeros((2, 36), np.float32), epochs=1, verbose=0)


def test_network_outputs_the_head_cannot_use():
    conv_only = keras.Sequential([keras.layers.Conv2D(2, 3, padding="same")])
    enc = layers.GaussianEncoder(2, network=conv_only)
    with pytest.raises(ValueError, match=r"features\) must have shape \[batch, F\]"):
        enc.build((None,) + EVENT)
    wrong_grid = keras.Sequential([keras.layers.Dense(50), keras.layers.Reshape((5, 5, 2))])
    dec = layers.BernoulliDecoder(event_shape=EVENT, network=wrong_grid)
    with pytest.raises(ValueError, match=r"\[n, F\] or \[n, 6, 6, C\].*got \(None, 5, 5, 2\)"):
        dec.build((None, 3))
    with pytest.raises(ValueError, match="`network` must be a Keras layer"):
        layers.GaussianEncoder(2, network=lambda x: x)
