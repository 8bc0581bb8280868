"""`min_scale` on the Gaussian/mixture encoders: a hard floor on the posterior scale."""

import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvi import layers

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
FLOOR = math.exp(-3.0)  # Livne et al.'s log-variance clamp at -6


def _encoder(min_scale, covariance="diag", components=1, bias=0.0):
    """An encoder whose raw scale is `bias` (zero kernel): softplus(bias) + 1e-5."""
    cls = layers.GaussianEncoder if components == 1 else layers.MixtureEncoder
    kwargs = {} if components == 1 else {"components": components}
    encoder = cls(3, hidden=(4,), covariance=covariance, min_scale=min_scale, **kwargs)
    encoder.build((None, 5))
    encoder.scale_layer.kernel.assign(tf.zeros_like(encoder.scale_layer.kernel))
    encoder.scale_layer.bias.assign(tf.fill(encoder.scale_layer.bias.shape, bias))
    return encoder


def _diag(params):
    if "scale_diag" in params:
        return params["scale_diag"]
    return tf.linalg.diag_part(params["scale_tril"])


@pytest.mark.parametrize("covariance,components", [("diag", 1), ("full", 1), ("diag", 3)])
def test_floor_holds_below_and_is_inactive_above(covariance, components):
    x = tf.random.stateless_normal([4, 5], [1, 2])
    low = _encoder(FLOOR, covariance, components, bias=-20.0)  # softplus(-20) ~ 2e-9
    np.testing.assert_allclose(_diag(low.posterior_parameters(x)).numpy(), FLOOR, rtol=1e-6)
    high = _encoder(FLOOR, covariance, components, bias=2.0)
    expected = math.log1p(math.exp(2.0)) + 1e-5
    np.testing.assert_allclose(_diag(high.posterior_parameters(x)).numpy(), expected,
                               rtol=1e-5)


def test_default_keeps_the_unfloored_scale():
    x = tf.zeros([2, 5])
    scale = _diag(_encoder(None, bias=-20.0).posterior_parameters(x)).numpy()
    assert scale.max() < 1e-4  # softplus(-20) + 1e-5: far below any floor


def test_gradient_flows_above_the_floor_and_stops_below():
    x = tf.random.stateless_normal([4, 5], [3, 4])
    for bias, flows in ((2.0, True), (-20.0, False)):
        encoder = _encoder(FLOOR, bias=bias)
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(_diag(encoder.posterior_parameters(x)))
        grad = tape.gradient(total, encoder.scale_layer.bias).numpy()
        # d scale / d bias = sigmoid(bias) above the floor, 0 at the clamp.
        expected = 4 / (1 + math.exp(-bias)) if flows else 0.0
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


def test_config_round_trip_and_bad_value():
    encoder = _encoder(0.05)
    clone = layers.GaussianEncoder.from_config(encoder.get_config())
    assert clone.min_scale == 0.05
    with pytest.raises(ValueError, match="min_scale"):
        layers.GaussianEncoder(2, min_scale=0.0)


def test_conv_hvae_passes_min_scale_to_q_z2():
    encoder, _, _ = layers.conv_hvae(image_shape=(8, 8, 1), lower_dim=2, upper_dim=2,
                                     width=0.25, prior="standard", min_scale=0.05)
    assert encoder.top.min_scale == 0.05
    default, _, _ = layers.conv_hvae(image_shape=(8, 8, 1), lower_dim=2, upper_dim=2,
                                     width=0.25, prior="standard")
    assert default.top.min_scale is None


def test_old_keras_file_still_loads_without_min_scale():
    model = keras.saving.load_model(os.path.join(FIXTURES, "legacy_mlp_gaussian.keras"))
    assert model.encoder.min_scale is None
