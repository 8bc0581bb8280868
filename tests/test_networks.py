"""The papers' networks: shapes, parameter counts by hand, L2 terms, round trips."""

import keras
import numpy as np
import pytest

from tfvi import layers, models, networks

X = (np.random.default_rng(0).uniform(size=(2, 28, 28, 1)) > 0.5).astype(np.float32)
Z = np.random.default_rng(1).normal(size=(2, 40)).astype(np.float32)


def conv(k, c_in, c_out):
    """Weights of a k x k (transposed) convolution with bias."""
    return k * k * c_in * c_out + c_out


def dense(n_in, n_out):
    return n_in * n_out + n_out


def residual(c_in, c_out, stride):
    """conv1 + conv2 (3x3), plus a 1x1 shortcut when the shape changes."""
    shortcut = conv(1, c_in, c_out) if stride != 1 or c_in != c_out else 0
    return conv(3, c_in, c_out) + conv(3, c_out, c_out) + shortcut


ENCODER = [(1, 32, 1), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 64, 2), (64, 16, 1)]
DECODER = [(16, 64, 1), (64, 64, 2), (64, 64, 1), (64, 32, 2), (32, 32, 1)]
CASES = {
    "dense_vae": (dense(784, 500) + dense(500, 500), dense(40, 500) + dense(500, 500),
                  (2, 500), (2, 500), 2, 2),
    "conv_vae": (sum(conv(3, a, b) for a, b, _ in ENCODER),
                 dense(40, 784) + sum(conv(3, a, b) for a, b, _ in DECODER),
                 (2, 784), (2, 28, 28, 32), 6, 6),
    "resnet_vae": (sum(residual(*c) for c in ENCODER),
                   dense(40, 784) + sum(residual(*c) for c in DECODER),
                   (2, 784), (2, 28, 28, 32), 12, 11),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_xu_networks_shapes_parameters_and_l2_terms(name):
    n_enc, n_dec, enc_shape, dec_shape, l2_enc, l2_dec = CASES[name]
    make_encoder, make_decoder = networks.ARCHITECTURES[name]
    enc, dec = make_encoder(), make_decoder()
    assert tuple(enc(X).shape) == enc_shape
    assert tuple(dec(Z).shape) == dec_shape
    assert enc.count_params() == n_enc and dec.count_params() == n_dec
    # One L2 term per non-linear kernel, none on the linear shortcuts.
    assert len(enc.losses) == l2_enc and len(dec.losses) == l2_dec
    kernels = [w for w in enc.weights if "kernel" in w.path and "shortcut" not in w.path]
    expected = 1e-4 * sum(float(np.sum(np.square(w.numpy()))) for w in kernels)
    np.testing.assert_allclose(float(sum(enc.losses)), expected, rtol=1e-4)


def test_tfp_example_networks_shapes_and_parameters():
    enc = networks.tfp_example_encoder(latent_dim=16)
    dec = networks.tfp_example_decoder((28, 28, 1))
    assert tuple(enc(X).shape) == (2, 64)
    assert tuple(dec(Z).shape) == (2, 28, 28, 32)
    assert enc.count_params() == (conv(5, 1, 32) + conv(5, 32, 32) + conv(5, 32, 64)
                                  + conv(5, 64, 64) + conv(7, 64, 64))
    assert dec.count_params() == (conv(7, 40, 64) + 2 * conv(5, 64, 64) + conv(5, 64, 32)
                                  + 2 * conv(5, 32, 32))
    with pytest.raises(ValueError, match="divisible by 4"):
        networks.tfp_example_decoder((30, 30, 1))


def test_residual_block_is_the_residual_sum():
    block = networks.ResidualBlock(4, strides=2)
    x = np.random.default_rng(2).normal(size=(1, 6, 6, 3)).astype(np.float32)
    y = block(x).numpy()
    act = keras.activations.leaky_relu
    expected = block.conv2(act(block.conv1(act(x)))) + block.shortcut(x)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    assert y.shape == (1, 3, 3, 4)
    assert networks.ResidualBlock(3)(x).shape == x.shape  # identity shortcut
    assert networks.ResidualBlock(3).shortcut is None


@pytest.mark.parametrize("name", ["resnet_vae", "tfp_example"])
def test_networks_under_heads_round_trip_through_keras_files(name, tmp_path):
    if name == "tfp_example":
        enc_net, dec_net = networks.tfp_example_encoder(8), networks.tfp_example_decoder()
    else:
        enc_net, dec_net = (f() for f in networks.ARCHITECTURES[name])
    model = models.VAE(layers.GaussianEncoder(40, network=enc_net),
                       layers.BernoulliDecoder((28, 28, 1), network=dec_net, skip=True),
                       input_dim=(28, 28, 1))
    model.save(tmp_path / "m.keras")
    clone = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(clone.encoder.posterior_parameters(X)["loc"],
                                  model.encoder.posterior_parameters(X)["loc"])
    np.testing.assert_array_equal(clone.decoder.decoder_parameters(Z)["logits"],
                                  model.decoder.decoder_parameters(Z)["logits"])


def test_gated_layers_are_h_times_sigmoid_g_and_count_their_weights():
    """Tomczak & Welling's gated layers: out = h(x) * sigmoid(g(x)), two twin layers."""
    x = np.random.default_rng(2).normal(size=(3, 5)).astype(np.float32)
    dense_layer = networks.GatedDense(4)
    out = dense_layer(x).numpy()
    h = x @ dense_layer.h.kernel.numpy() + dense_layer.h.bias.numpy()
    g = x @ dense_layer.g.kernel.numpy() + dense_layer.g.bias.numpy()
    np.testing.assert_allclose(out, h / (1.0 + np.exp(-g)), rtol=1e-5, atol=1e-6)
    conv_layer = networks.GatedConv2D(6, 3, strides=2)
    assert conv_layer(X).shape == (2, 14, 14, 6)
    assert conv_layer.count_params() == 2 * conv(3, 1, 6)
    streams = networks.GatedStreams(2, (0, 7))
    y = streams(x).numpy()
    np.testing.assert_array_equal(y[:, :2], x[:, :2])
    assert y.shape == (3, 9) == streams.compute_output_shape((3, 5))
    with pytest.raises(ValueError, match="split"):
        networks.GatedStreams(0)


@pytest.mark.parametrize("width", [1.0, 0.5])
def test_hvae_networks_have_the_vampprior_code_shapes(width):
    """Tomczak & Welling's convHVAE at `width`: 294 features on 28x28 for both encoder
    branches, the decoder's features keep the image size with 64 * width channels."""
    top = networks.hvae_top_encoder(width)
    assert top(X).shape == (2, 294)
    c = [round(32 * width), round(64 * width)]
    plan = [(1, c[0], 7), (c[0], c[0], 3), (c[0], c[1], 5), (c[1], c[1], 3), (c[1], 6, 3)]
    assert top.count_params() == sum(2 * conv(k, a, b) for a, b, k in plan)
    assert networks.hvae_lower_features(width)(X).shape == (2, 294)
    z = np.concatenate([Z[:, :10], Z[:, :6]], axis=1)
    decoder = networks.hvae_decoder(10, (28, 28, 1), width)
    assert decoder(z).shape == (2, 28, 28, round(64 * width))
    units = round(300 * width)
    assert networks.hvae_lower_posterior(294, width)(
        np.zeros((2, 294 + 6), np.float32)).shape == (2, units)
    assert networks.hvae_lower_prior(width)(Z[:, :6]).shape == (2, units)
    assert networks.hvae_pixel_conditioning(10)(z).shape == (2, 28, 28, 2)
