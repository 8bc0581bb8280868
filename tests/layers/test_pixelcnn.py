"""PixelCNN likelihood: causality, exact teacher-forced log p(x|z), sampling law."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

import tfvi
from tfvi.layers.pixelcnn import (PixelCNN, PixelCNNBernoulli, PixelCNNDecoder,
                                  causal_mask)


def _pixelcnn(channels=1, first_mask="A", scale=1.0, size=(5, 5), **kwargs):
    kwargs.setdefault("filters", 8)
    kwargs.setdefault("num_blocks", 2)
    kwargs.setdefault("dropout", 0.0)
    net = PixelCNN(channels, first_kernel_size=3, **kwargs)
    net.input_conv.mask_type = first_mask
    net.build((None,) + size + (channels,), (None,) + size + (1,))
    if scale != 1.0:
        for w in net.trainable_weights:
            w.assign(w * scale)
    return net


def _raster_jacobian(net, x, channels):
    """J[i, j] = max |d logits_i / d x_j| over channels, pixels i, j in raster order."""
    x = tf.constant(x)
    h = tf.zeros(x.shape[:-1] + (1,))
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = net(x, h)
    jac = tape.jacobian(logits, x).numpy()[0, ..., 0, :, :, :]  # [H, W, C, H, W, C]
    n = x.shape[1] * x.shape[2]
    jac = np.abs(jac.reshape(n, channels, n, channels))
    return jac.max(axis=(1, 3))


@pytest.mark.parametrize("channels", [1, 2])
def test_logits_at_each_pixel_ignore_that_pixel_and_later_ones(channels):
    """d logit_i / d x_j = 0 for every j >= i (raster order), over all pixels of a 5x5
    image; the left and upper neighbours do reach pixel i (the check has power), and a
    stack whose first layer is type B (sees its own pixel) fails the same check."""
    x = np.random.default_rng(0).normal(size=(1, 5, 5, channels)).astype(np.float32)
    jac = _raster_jacobian(_pixelcnn(channels), x, channels)
    assert np.all(jac[np.triu_indices(25)] == 0.0)
    left = [jac[i, i - 1] for i in range(25) if i % 5]
    above = [jac[i, i - 5] for i in range(5, 25)]
    assert min(left) > 1e-6 and min(above) > 1e-6

    leaky = _raster_jacobian(_pixelcnn(channels, first_mask="B"), x, channels)
    assert np.all(np.diag(leaky) > 1e-6)


def test_causal_mask_type_a_hides_centre_and_later_taps():
    a = causal_mask(3, 1, 1, "A")[..., 0, 0]
    b = causal_mask(3, 1, 1, "B")[..., 0, 0]
    np.testing.assert_array_equal(a, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(b, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="mask_type"):
        causal_mask(3, 1, 1, "C")
    with pytest.raises(ValueError, match="odd"):
        causal_mask(4, 1, 1, "A")


def test_log_prob_is_the_sum_of_conditionals_computed_one_pixel_at_a_time():
    """A PixelCNN with no latent input: log p(x) from one teacher-forced pass equals
    sum_i log p(x_i | x_<i), each conditional read off a pass in which every pixel
    j >= i is replaced by fresh random bits (to 1e-4)."""
    rng = np.random.default_rng(1)
    net = _pixelcnn(size=(4, 4), scale=2.0)
    dist = PixelCNNBernoulli(tf.zeros([3, 4, 4, 1]), net)
    x = rng.integers(0, 2, size=(3, 4, 4, 1)).astype(np.float32)
    total = np.zeros(3)
    for i in range(16):
        r, c = divmod(i, 4)
        scrambled = x.copy().reshape(3, 16)
        scrambled[:, i:] = rng.integers(0, 2, size=(3, 16 - i))
        logits = net(scrambled.reshape(3, 4, 4, 1), tf.zeros([3, 4, 4, 1])).numpy()
        l, xi = logits[:, r, c, 0], x[:, r, c, 0]
        total += xi * l - np.logaddexp(0.0, l)
    np.testing.assert_allclose(dist.log_prob(x).numpy(), total, atol=1e-4)


def test_sampling_draws_from_the_model_conditionals():
    """Chi-square goodness of fit of 20,000 draws on a 2x2 image (16 outcomes) against
    the exact law exp(log_prob) (which must sum to 1). Level 1e-3 (the false-failure
    rate). Power: the product of the exact per-pixel marginals (what a sampler that
    ignored the earlier pixels would draw) has non-centrality lambda = N * sum (q - p)^2
    / p, asserted > 80, so the test rejects it with probability > 0.999 (15 degrees of
    freedom); draws from it are rejected here too."""
    net = _pixelcnn(size=(2, 2), scale=3.0, num_blocks=1)
    dist = PixelCNNBernoulli(tf.zeros([1, 2, 2, 1]), net)
    outcomes = np.array(list(itertools.product([0, 1], repeat=4)), np.float32)
    p = np.exp(dist.log_prob(outcomes.reshape(16, 1, 2, 2, 1)).numpy()[:, 0])
    np.testing.assert_allclose(p.sum(), 1.0, atol=1e-5)

    n = 20000
    draws = dist.sample(n, seed=(3, 4)).numpy().reshape(n, 4)
    assert set(np.unique(draws)) <= {0.0, 1.0}
    index = draws @ np.array([8, 4, 2, 1])
    counts = np.bincount(index.astype(int), minlength=16)
    assert stats.chisquare(counts, n * p).pvalue > 1e-3

    marginals = outcomes.T @ p
    q = np.prod(np.where(outcomes == 1, marginals, 1 - marginals), axis=1)
    assert n * np.sum((q - p) ** 2 / p) > 80
    wrong = np.random.default_rng(5).choice(16, size=n, p=q / q.sum())
    assert stats.chisquare(np.bincount(wrong, minlength=16), n * p).pvalue < 1e-3


def test_decoder_keeps_leading_sample_axes_and_round_trips():
    decoder = PixelCNNDecoder((4, 4, 1), filters=8, num_blocks=1, dropout=0.5)
    decoder.build((None, 3))
    z = tf.random.normal([2, 3, 5, 3], seed=1)
    x = tf.cast(tf.random.uniform([5, 4, 4, 1], seed=2) < 0.5, tf.float32)
    p = decoder(z)
    assert p.batch_shape == [2, 3, 5] and p.event_shape == [4, 4, 1]
    log_prob = p.log_prob(x)
    assert log_prob.shape == (2, 3, 5)
    assert decoder(z[:, :, :2]).sample(seed=(1, 2)).shape == (2, 3, 2, 4, 4, 1)

    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(decoder))
    assert clone.built  # the serialized build config rebuilds it
    clone.set_weights(decoder.get_weights())
    np.testing.assert_allclose(clone(z).log_prob(x), log_prob, atol=1e-5)
    # Dropout is on only in training, so the training-mode log p differs.
    assert not np.allclose(decoder(z, training=True).log_prob(x), log_prob, atol=1e-3)


def test_decoder_rejects_a_network_of_the_wrong_spatial_shape():
    bad = keras.Sequential([keras.layers.Dense(12), keras.layers.Reshape((2, 2, 3))])
    with pytest.raises(ValueError, match=r"\[n, 4, 4, F\]"):
        PixelCNNDecoder((4, 4, 1), network=bad).build((None, 3))
    with pytest.raises(ValueError, match="targets"):
        PixelCNNDecoder((4, 4, 1)).prepare_targets(np.zeros((2, 16), np.float32))


def test_pixel_vae_trains_with_the_iwae_bound_and_saves(tmp_path):
    """The decoder plugs into tfvi.models.VAE unchanged: the encoder reads flat images,
    the PixelCNN scores them as [8, 8, 1]; the IWAE bound improves in 60 steps and the
    .keras file reloads to the same bound."""
    images = (tfvi.data.load_digits()["train_probs"][:200] > 0.5).astype(np.float32)
    targets = images.reshape(-1, 8, 8, 1)
    model = tfvi.models.VAE(
        encoder=tfvi.layers.GaussianEncoder(latent_dim=4, hidden=(32,)),
        decoder=PixelCNNDecoder((8, 8, 1), filters=8, num_blocks=1, dropout=0.0),
        objective="iwae", samples=2, input_dim=64, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=False)
    before = model.evaluate(images, targets, batch_size=100, verbose=0, return_dict=True)
    model.fit(images, targets, batch_size=20, epochs=6, verbose=0)
    after = model.evaluate(images, targets, batch_size=100, verbose=0, return_dict=True)
    assert after["iwae"] > before["iwae"] + 5.0

    model.save(tmp_path / "pixel.keras")
    loaded = keras.saving.load_model(tmp_path / "pixel.keras", safe_mode=True)
    x, y = images[:5], targets[:5]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
    z = model.predict(x, verbose=0)
    np.testing.assert_allclose(loaded.decoder(z).log_prob(y), model.decoder(z).log_prob(y),
                               atol=1e-4)
