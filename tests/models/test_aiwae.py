"""AIWAE (Ding & Freedman, Algorithm 1) on a linear-Gaussian model with a known gradient."""

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


D, LATENT, NOISE = 4, 2, 0.5


def _linear_gaussian_aiwae(temperatures, samples):
    """An AIWAE on a linear-Gaussian model (decoder W0, b0 off the data's truth, so the
    gradient is large) whose encoder is the exact posterior shifted by +0.5 and widened
    1.3x: AIS weights must correct the shift that the chains keep after T - 1 steps."""
    keras.utils.set_random_seed(0)
    model = tfvi.models.AIWAE(
        tfvi.layers.GaussianEncoder(LATENT, hidden=()),
        tfvi.layers.GaussianDecoder(D, hidden=(), scale="fixed", init_scale=NOISE),
        tfvi.priors.StandardNormal(LATENT), samples=samples, temperatures=temperatures,
        leapfrog_steps=3, initial_step_size=0.3, input_dim=D, seed=0)
    x, p = tfvi.data.linear_gaussian(64, latent_dim=LATENT, data_dim=D, noise_scale=NOISE,
                                     seed=2)
    w0, b0 = 0.7 * p["weights"], p["bias"] + 0.3
    cov = np.linalg.inv(np.eye(LATENT) + w0 @ w0.T / NOISE**2)
    gain = w0.T @ cov / NOISE**2  # posterior mean = (x - b0) @ gain
    model.decoder.head.kernel.assign(w0)
    model.decoder.head.bias.assign(b0)
    model.encoder.loc_layer.kernel.assign(gain.astype(np.float32))
    model.encoder.loc_layer.bias.assign((0.5 - b0 @ gain).astype(np.float32))
    model.encoder.scale_layer.kernel.assign(np.zeros_like(model.encoder.scale_layer.kernel))
    sd = 1.3 * np.sqrt(np.diag(cov))
    model.encoder.scale_layer.bias.assign(np.log(np.expm1(sd - 1e-5)).astype(np.float32))
    return model, x


def _exact_decoder_gradient(model, x):
    """d/d(W, b) of mean_x log N(x; b, W^T W + s^2 I): by Fisher's identity the
    posterior expectation of grad log p(x, z) that AIWAE estimates."""
    w = tf.Variable(model.decoder.head.kernel.numpy())
    b = tf.Variable(model.decoder.head.bias.numpy())
    with tf.GradientTape() as tape:
        cov = tf.matmul(w, w, transpose_a=True) + NOISE**2 * tf.eye(D)
        log_p = tfd.MultivariateNormalTriL(b, tf.linalg.cholesky(cov)).log_prob(x)
        mean = tf.reduce_mean(log_p)
    return np.concatenate([g.numpy().ravel() for g in tape.gradient(mean, [w, b])])


def _decoder_flat(model):
    return np.concatenate([model.decoder.head.kernel.numpy().ravel(),
                           model.decoder.head.bias.numpy().ravel()])


def test_decoder_gets_ais_gradient_of_log_marginal_and_encoder_elbo():
    """One SGD step moves (W, b) by lr x the AIS-weighted score, whose expectation is
    the exact grad log p(x) (K = 64 chains, T = 3). Measured relative error 0.10-0.11
    (two seeds); allowed 0.35. Uniform chain weights give 1.07 (the chains keep the
    encoder's shift after two transitions), annealing to p^0.5 q^0.5 is also far off:
    both fail with certainty (benchmarks/mutation_audit.py)."""
    model, x = _linear_gaussian_aiwae(temperatures=3, samples=64)
    exact = _exact_decoder_gradient(model, x)
    lr = 1e-2
    model.compile(optimizer=keras.optimizers.SGD(lr))
    theta0 = _decoder_flat(model)
    enc0 = [v.numpy().copy() for v in model.encoder.trainable_variables]
    logs = {k: v[-1] for k, v in
            model.fit(x, batch_size=64, epochs=1, verbose=0).history.items()}
    ais_grad = (_decoder_flat(model) - theta0) / lr
    error = np.linalg.norm(ais_grad - exact) / np.linalg.norm(exact)
    assert error < 0.35, error
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


def test_legacy_aiwae_file_loads_with_identical_outputs():
    """`tests/fixtures/legacy_aiwae.keras` was saved at commit 14c64fa, when AIWAE subclassed
    VAE (its config carried `objective_options`/`gradient_estimator` and its own
    variables `[beta, step_sizes]`); its outputs then are in `legacy_aiwae_outputs.npz`."""
    import os

    data = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
    want = np.load(os.path.join(data, "legacy_aiwae_outputs.npz"))
    model = keras.saving.load_model(os.path.join(data, "legacy_aiwae.keras"), safe_mode=True)
    assert isinstance(model, tfvi.models.AIWAE) and not isinstance(model, tfvi.models.VAE)
    np.testing.assert_array_equal(model.step_sizes.numpy(), want["step_sizes"])
    np.testing.assert_array_equal(model.predict(want["x"], verbose=0), want["mean"])
    terms = model.log_weight_terms(tf.constant(want["x"]), samples=3, seed=tf.constant([1, 2]))
    for key in ("log_likelihood", "log_posterior"):
        np.testing.assert_array_equal(terms[key].numpy(), want[key])
    model.fit(want["x"], batch_size=16, epochs=1, verbose=0)  # training goes on
    assert np.all(np.isfinite(model.step_sizes.numpy()))
