"""AIWAE (seed 001, Algorithm 1) on a linear-Gaussian model with a known gradient."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
import keras

import tfvi

tfd = tfp.distributions


def _model(temperatures=30, samples=16, step=0.3, rate=0.1):
    return tfvi.models.AIWAE(
        tfvi.layers.GaussianEncoder(3, hidden=(16,)),
        tfvi.layers.GaussianDecoder(10, hidden=(), scale="fixed", init_scale=0.7),
        tfvi.priors.StandardNormal(3), samples=samples, temperatures=temperatures,
        leapfrog_steps=5, initial_step_size=step, step_size_adaptation_rate=rate,
        input_dim=10, seed=0)


def _exact_bias_gradient(model, x):
    w = tf.convert_to_tensor(model.decoder.head.kernel)
    b = tf.convert_to_tensor(model.decoder.head.bias)
    s = model.decoder.observation_scale()
    cov = tf.matmul(w, w, transpose_a=True) + tf.eye(10) * s**2
    return tf.reduce_mean(tf.linalg.solve(cov, tf.transpose(x - b)), axis=1).numpy()


def test_decoder_gets_ais_gradient_of_log_marginal_and_encoder_elbo():
    model = _model()
    x = np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32) + 1.0
    model.compile(optimizer=keras.optimizers.SGD(1e-3))
    b0 = model.decoder.head.bias.numpy().copy()
    enc0 = [v.numpy().copy() for v in model.encoder.trainable_variables]
    exact = _exact_bias_gradient(model, x)
    logs = {k: v[-1] for k, v in
            model.fit(x, batch_size=64, epochs=1, verbose=0).history.items()}
    # SGD: delta b = lr * sum_k w~_k grad_b log p(x, z_k), an estimate of the exact
    # grad_b log p(x) (averaged over the batch).
    ais_grad = (model.decoder.head.bias.numpy() - b0) / 1e-3
    np.testing.assert_allclose(ais_grad, exact, atol=0.15 * np.abs(exact).max())
    assert any(np.any(v.numpy() != v0) for v, v0 in
               zip(model.encoder.trainable_variables, enc0))  # phi moved (ELBO)
    assert set(logs) >= {"loss", "iwae", "elbo", "acceptance"}
    assert 0.0 < logs["acceptance"] <= 1.0 and np.isfinite(logs["loss"])


def test_step_sizes_adapt_and_round_trip(tmp_path):
    model = _model(temperatures=4, samples=3, step=2.0, rate=1.0)  # far too large
    x = np.random.default_rng(1).normal(size=(32, 10)).astype(np.float32)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(x, batch_size=16, epochs=4, verbose=0)
    steps = model.step_sizes.numpy()
    assert steps.shape == (3,) and np.all(steps < 2.0)
    assert history.history["acceptance"][-1] > history.history["acceptance"][0]
    path = str(tmp_path / "aiwae.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, tfvi.models.AIWAE)
    np.testing.assert_array_equal(loaded.step_sizes.numpy(), steps)
    assert (loaded.temperatures, loaded.leapfrog_steps, loaded.samples) == (4, 5, 3)
    with pytest.raises(ValueError, match="temperatures"):
        _model(temperatures=1)


def test_launcher_trains_aiwae(tmp_path):
    from absl import flags

    from tfvi.launch import train as T

    T.setup()
    flag_values = flags.FLAGS
    flag_values.unparse_flags()
    flag_values(["tfvi-train", "--preset=smoke", "--model=aiwae", "--posterior=gaussian",
                 "--components=1", "--samples=3", "--ais_temperatures=3",
                 "--ais_leapfrog_steps=2", "--epochs=1", "--eval_iwae_samples=20",
                 "--eval_max_examples=50", "--verbose=0", "--noplots", "--noexport",
                 f"--workdir={tmp_path / 'w'}"])
    metrics = T.train(flag_values)
    assert metrics["epochs_trained"] == 1 and np.isfinite(metrics["test"]["nll"])
    flag_values.unparse_flags()
