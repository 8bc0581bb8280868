"""`tfvi.precision`: what `--precision=auto` and `--jit_compile=auto` choose. That the
bfloat16 choice keeps the bound within 0.1 nats of float32's after the same short
training is tested in tests/test_images_precision.py."""

import keras
import pytest
import tensorflow as tf

from tfvi import layers, models, precision


def conv_vae():
    encoder_net = keras.Sequential([keras.layers.Conv2D(4, 3, 2, padding="same"),
                                    keras.layers.Flatten()])
    return models.VAE(layers.GaussianEncoder(2, network=encoder_net),
                      layers.BernoulliDecoder((8, 8, 1), hidden=(8,)),
                      input_dim=(8, 8, 1), seed=0)


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
