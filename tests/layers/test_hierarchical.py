"""Two-level hierarchical VAE: the joint-latent distribution, and IWAE/AIS against the
exact log p(x) of a two-level linear-Gaussian model."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfvi
import tfvi.export
from tfvi.distributions import TwoLevelLatent, stratified_sample
from tfvi.layers.hierarchical import ConditionalGaussian, HierarchicalEncoder, HierarchicalPrior

tfd = tfp.distributions

D, D1, D2 = 6, 2, 1


def test_two_level_log_prob_is_the_chain_rule_and_samples_follow_it():
    """log q(z) = log q(z2) + log q(z1|z2) for a linear conditional, equal to the joint
    Gaussian's density; and the sample mean/covariance of 40,000 draws match that joint
    Gaussian (tolerance 5 standard errors: a false failure below 1e-5 per entry; a
    sampler that dropped z1's dependence on z2 moves Cov[z1, z2] by 0.8, 100 SEs)."""
    a, bias, s1 = np.array([[0.8], [-0.5]]), np.array([0.3, -0.2]), np.array([0.6, 0.4])
    conditional = lambda z2: tfd.MultivariateNormalDiag(  # noqa: E731
        tf.linalg.matvec(tf.constant(a, tf.float32), z2) + bias, s1.astype(np.float32))
    q = TwoLevelLatent(tfd.MultivariateNormalDiag([0.5], [1.2]), conditional, 2)
    mean = np.concatenate([a[:, 0] * 0.5 + bias, [0.5]])
    cov = np.zeros((3, 3))
    cov[2, 2] = 1.44
    cov[:2, 2] = cov[2, :2] = a[:, 0] * 1.44
    cov[:2, :2] = 1.44 * a @ a.T + np.diag(s1 ** 2)
    joint = tfd.MultivariateNormalTriL(mean.astype(np.float32),
                                       np.linalg.cholesky(cov).astype(np.float32))
    z = joint.sample(7, seed=(1, 2))
    np.testing.assert_allclose(q.log_prob(z), joint.log_prob(z), atol=1e-4)

    draws = q.sample(40000, seed=(3, 4)).numpy().astype(np.float64)
    se_mean = np.sqrt(np.diag(cov) / 40000)
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * se_mean)
    se_cov = np.sqrt((cov ** 2 + np.outer(np.diag(cov), np.diag(cov))) / 40000)
    assert np.all(np.abs(np.cov(draws.T) - cov) < 5 * se_cov)


def test_mixture_top_is_stratified_over_its_components():
    top = tfvi.distributions.GaussianMixture(
        logits=tf.math.log([[0.25, 0.75]]), loc=[[[-3.0], [3.0]]], scale_diag=[[[0.1], [0.1]]])
    cond = ConditionalGaussian(2, hidden=())
    cond.build((None, 1))
    q = TwoLevelLatent(top, cond, 2)
    z, log_alpha = stratified_sample(q, 5, seed=(1, 2))
    assert z.shape == (5, 2, 1, 3)
    np.testing.assert_allclose(np.exp(log_alpha[:, 0]), [0.25, 0.75], atol=1e-6)
    # Component k's z2 samples sit at its mean: stratification happened on z2.
    np.testing.assert_allclose(z[:, :, 0, 2].numpy().mean(0), [-3.0, 3.0], atol=0.2)


def _linear_gaussian_model(seed=0):
    """A two-level linear-Gaussian VAE with random, frozen generative weights."""
    rng = np.random.default_rng(seed)
    prior = HierarchicalPrior(D1, upper_dim=D2, hidden=())
    decoder = tfvi.layers.GaussianDecoder(D, hidden=(), scale="fixed", init_scale=0.5)
    encoder = HierarchicalEncoder(D1, upper_dim=D2, hidden=())
    model = tfvi.models.VAE(encoder, decoder, prior, objective="iwae", samples=8,
                            input_dim=D, seed=seed)
    lower = prior.lower
    lower.loc_layer.kernel.assign(rng.normal(size=(D2, D1)).astype(np.float32))
    lower.loc_layer.bias.assign(rng.normal(size=D1).astype(np.float32) * 0.5)
    lower.scale_layer.kernel.assign(np.zeros((D2, D1), np.float32))
    lower.scale_layer.bias.assign(np.log(np.expm1([0.7, 0.4])).astype(np.float32))
    decoder.head.kernel.assign(rng.normal(size=(D1 + D2, D)).astype(np.float32))
    decoder.head.bias.assign(rng.normal(size=D).astype(np.float32))
    prior.trainable = False
    decoder.trainable = False
    return model


def _exact_log_marginal(model, x):
    """log p(x) of the linear-Gaussian model: z = [z1, z2] ~ N(m, S) jointly, x = W^T z
    + b + N(0, s^2 I), so p(x) = N(W^T m + b, W^T S W + s^2 I)."""
    lower, decoder = model.prior.lower, model.decoder
    a = lower.loc_layer.kernel.numpy().T                     # [D1, D2]
    s1 = tf.nn.softplus(lower.scale_layer.bias).numpy() + 1e-4
    m = np.concatenate([lower.loc_layer.bias.numpy(), np.zeros(D2)])
    cov = np.zeros((D1 + D2, D1 + D2))
    cov[D1:, D1:] = np.eye(D2)
    cov[:D1, D1:] = a
    cov[D1:, :D1] = a.T
    cov[:D1, :D1] = a @ a.T + np.diag(s1 ** 2)
    w, b = decoder.head.kernel.numpy(), decoder.head.bias.numpy()
    s = decoder.observation_scale().numpy()
    marginal = tfd.MultivariateNormalTriL(
        w.T @ m + b, np.linalg.cholesky(w.T @ cov @ w + s ** 2 * np.eye(D)))
    return marginal.log_prob(x.astype(np.float64)).numpy()


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    model = _linear_gaussian_model()
    z = model.prior().sample(1064, seed=(5, 6))
    x = model.decoder(z).sample(seed=(7, 8)).numpy()
    model.compile(optimizer=keras.optimizers.Adam(2e-2))
    model.fit(x[:1000], batch_size=100, epochs=40, verbose=0)
    return model, x[1000:]


def test_iwae_and_ais_match_the_exact_log_likelihood_of_a_two_level_model(trained):
    """From a trained q(z2|x) q(z1|x, z2): IWAE-5000 within 0.05 nats and AIS within
    0.02 nats of the exact log p(x) (means over 64 held-out examples); the ELBO sits
    below both, as a bound must."""
    model, x = trained
    exact = _exact_log_marginal(model, x)
    iwae = tfvi.evaluation.iwae_log_likelihood(model, x, num_samples=5000)
    assert abs(np.mean(iwae) - np.mean(exact)) < 0.05
    assert np.mean(iwae) < np.mean(exact) + 0.01
    ais = tfvi.evaluation.ais_log_likelihood(model, x, preset="quick",
                                             num_temperatures=200, verbose=0,
                                             seed=1).log_likelihood
    assert abs(np.mean(ais) - np.mean(exact)) < 0.02
    elbo = model.evaluate(x, batch_size=64, verbose=0, return_dict=True)["elbo"]
    assert elbo < np.mean(exact) - 0.05


def test_active_units_are_counted_per_layer(trained):
    """In the linear-Gaussian model both z1 coordinates and z2 carry information about
    x (random full-rank decoder), so all three units are active; a fourth, unused
    dimension would not be (checked on a one-level model whose encoder ignores x)."""
    model, x = trained
    assert tfvi.evaluation.active_units_per_layer(model, x, num_samples=200) == {
        "z1": 2, "z2": 1}
    idle = tfvi.models.VAE(tfvi.layers.GaussianEncoder(2, hidden=()),
                           tfvi.layers.GaussianDecoder(D, hidden=()), input_dim=D)
    for w in idle.encoder.weights:
        w.assign(tf.zeros_like(w))
    assert tfvi.evaluation.active_units_per_layer(idle, x) == {"z": 0}


def test_hierarchical_vae_round_trips_through_keras_files(trained, tmp_path):
    model, x = trained
    model.save(tmp_path / "hvae.keras")
    loaded = keras.saving.load_model(tmp_path / "hvae.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)
    z = model.predict(x, verbose=0)
    np.testing.assert_allclose(loaded.prior().log_prob(z), model.prior().log_prob(z),
                               atol=1e-5)


def test_siwae_trains_a_hierarchical_model_with_a_mixture_top():
    encoder = HierarchicalEncoder(
        2, top=tfvi.layers.MixtureEncoder(latent_dim=2, components=3, hidden=(16,)),
        hidden=(16,))
    prior = HierarchicalPrior(2, upper_dim=2, hidden=(16,))
    model = tfvi.models.VAE(encoder, tfvi.layers.BernoulliDecoder(64, hidden=(32,)), prior,
                            objective="siwae", samples=2, input_dim=64, seed=0)
    x = (tfvi.data.load_digits()["train_probs"][:200] > 0.5).astype(np.float32)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=False)
    before = model.evaluate(x, batch_size=100, verbose=0, return_dict=True)["siwae"]
    model.fit(x, batch_size=50, epochs=4, verbose=0)
    after = model.evaluate(x, batch_size=100, verbose=0, return_dict=True)["siwae"]
    assert np.isfinite(after) and after > before + 3.0
    assert model.encoder(x[:4]).batch_shape == [4] and model.latent_dim == 4


def test_vampprior_on_z2_shares_the_top_encoder_and_exports(tmp_path):
    """p(z2) = VampPrior over the hierarchical encoder's q(z2|x) (Livne et al.'s image
    models): the prior's mixture components are q(z2|u_m) of the pseudo-inputs, the
    model trains, and the SavedModel's encode/sample/log_likelihood serve the joint
    latent."""
    encoder = HierarchicalEncoder(2, upper_dim=3, hidden=(16,))
    prior = HierarchicalPrior(2, top=tfvi.priors.VampPrior(latent_dim=3, num_pseudo_inputs=10),
                              hidden=(16,))
    model = tfvi.models.VAE(encoder, tfvi.layers.BernoulliDecoder(64, hidden=(32,)), prior,
                            objective="iwae", samples=2, input_dim=64, seed=0)
    assert prior.top.encoder is encoder.top
    x = (tfvi.data.load_digits()["train_probs"][:100] > 0.5).astype(np.float32)
    pseudo = tf.convert_to_tensor(prior.top.pseudo_inputs)
    q2 = encoder.top(pseudo)
    z2 = tf.random.normal([5, 3], seed=3)
    mixture = tf.reduce_logsumexp(q2.log_prob(z2[:, None]), axis=1) - np.log(10.0)
    np.testing.assert_allclose(prior.top().log_prob(z2), mixture, atol=1e-4)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=False)
    history = model.fit(x, batch_size=50, epochs=2, verbose=0).history
    assert np.all(np.isfinite(history["iwae"]))

    tfvi.export.export_model(model, str(tmp_path / "export"))
    served = tf.saved_model.load(str(tmp_path / "export"))
    params = served.signatures["encode"](x=tf.constant(x[:4]))
    np.testing.assert_allclose(params["top_loc"], encoder.top(x[:4]).mean(), atol=1e-5)
    sample = served.signatures["sample"](n=tf.constant(3), seed=tf.constant([1, 2]))
    assert sample["z"].shape == (3, 5) and sample["x"].shape == (3, 64)
    z = tf.constant(sample["z"])
    np.testing.assert_allclose(served.signatures["prior_log_prob"](z=z)["log_prob"],
                               prior().log_prob(z), atol=1e-4)
    served_ll = served.signatures["log_likelihood"](x=tf.constant(x[:8]),
                                                    num_samples=tf.constant(100))
    assert served_ll["log_likelihood"].shape == (8,)
    assert np.all(np.isfinite(served_ll["log_likelihood"]))


@pytest.mark.parametrize("symmetric", [True, False])
def test_mim_and_a_mim_train_a_hierarchical_model_with_a_vampprior(symmetric):
    """Livne et al.'s image setting in miniature: MIM (symmetric) and A-MIM on the
    two-level model with a VampPrior on z2; their loss falls in 4 epochs."""
    encoder = HierarchicalEncoder(2, upper_dim=3, hidden=(16,))
    prior = HierarchicalPrior(2, top=tfvi.priors.VampPrior(latent_dim=3, num_pseudo_inputs=10),
                              hidden=(16,))
    model = tfvi.models.MIM(encoder=encoder, decoder=tfvi.layers.BernoulliDecoder(64, hidden=(32,)),
                            prior=prior, symmetric=symmetric, input_dim=64, seed=0)
    x = (tfvi.data.load_digits()["train_probs"][:200] > 0.5).astype(np.float32)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=False)
    loss = model.fit(x, batch_size=50, epochs=4, verbose=0).history["loss"]
    assert np.all(np.isfinite(loss)) and loss[-1] < loss[0] - 1.0


def _images(n=16, seed=0):
    probs = tfvi.data.load_mnist5k()["train_probs"][:n]
    return (np.random.default_rng(seed).uniform(size=probs.shape) < probs).astype(np.float32)


def _conv_hvae(x, likelihood="bernoulli", **kwargs):
    from tfvi.layers.hierarchical import conv_hvae
    return conv_hvae(lower_dim=3, upper_dim=2, width=0.125, num_pseudo_inputs=4,
                     init_from_data=x, likelihood=likelihood, seed=0, **kwargs)


@pytest.mark.parametrize("likelihood,objective", [
    ("bernoulli", "elbo"), ("bernoulli", "iwae"), ("bernoulli", "siwae"),
    ("pixelcnn", "iwae"), ("bernoulli", "mim"), ("bernoulli", "amim"),
    ("pixelcnn", "amim")])
def test_conv_hvae_trains_on_28x28_with_every_bound(likelihood, objective):
    """Livne et al.'s convHVAE / PixelHVAE (VampPrior on z2) take a few steps of every
    objective on 28x28 digits; the loss stays finite and the shapes are documented."""
    x = _images()
    encoder, decoder, prior = _conv_hvae(x, likelihood)
    if objective in ("mim", "amim"):
        model = tfvi.models.MIM(encoder=encoder, decoder=decoder, prior=prior,
                                symmetric=objective == "mim", input_dim=(28, 28, 1), seed=0)
    else:
        model = tfvi.models.VAE(encoder, decoder, prior, objective=objective, samples=2,
                                input_dim=(28, 28, 1), seed=0)
    assert prior.top.encoder is encoder.top
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    loss = model.fit(x, batch_size=8, epochs=1, verbose=0).history["loss"]
    assert np.all(np.isfinite(loss))
    q = encoder(x[:4])
    z = q.sample(seed=(1, 2))
    assert z.shape == (4, 5) and q.batch_shape == [4]
    assert decoder(z).log_prob(x[:4]).shape == (4,)


@pytest.mark.parametrize("likelihood", ["bernoulli", "pixelcnn"])
def test_conv_hvae_round_trips_through_keras_files_and_exports(likelihood, tmp_path):
    x = _images(8)
    encoder, decoder, prior = _conv_hvae(x, likelihood)
    model = tfvi.models.VAE(encoder, decoder, prior, objective="iwae", samples=2,
                            input_dim=(28, 28, 1), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    model.fit(x, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "hvae.keras")
    loaded = keras.saving.load_model(tmp_path / "hvae.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)
    z = model.prior().sample(3, seed=(3, 4))
    np.testing.assert_allclose(loaded.prior().log_prob(z), model.prior().log_prob(z),
                               atol=1e-4)
    np.testing.assert_allclose(loaded.decoder(z).log_prob(x[:3]),
                               model.decoder(z).log_prob(x[:3]), atol=1e-4)

    tfvi.export.export_model(model, str(tmp_path / "export"))
    served = tf.saved_model.load(str(tmp_path / "export"))
    assert {"encode", "decode", "sample", "elbo", "log_likelihood"} <= set(served.signatures)
    params = served.signatures["encode"](x=tf.constant(x[:4]))
    np.testing.assert_allclose(params["top_loc"], encoder.top(x[:4]).mean(), atol=1e-5)
    sample = served.signatures["sample"](n=tf.constant(2), seed=tf.constant([1, 2]))
    assert sample["z"].shape == (2, 5) and sample["x"].shape == (2, 28, 28, 1)
    ll = served.signatures["log_likelihood"](x=tf.constant(x[:4]),
                                             num_samples=tf.constant(4))["log_likelihood"]
    assert ll.shape == (4,) and np.all(np.isfinite(ll)) and np.all(ll < 0)


def test_conv_hvae_rejects_unknown_choices():
    with pytest.raises(ValueError, match="likelihood"):
        _conv_hvae(_images(4), likelihood="gaussian")
    with pytest.raises(ValueError, match="prior"):
        _conv_hvae(_images(4), prior="mog")


def test_log_prob_broadcasts_samples_against_the_batch():
    """q(z|x).log_prob(z[:, None]) scores every z under every x (what I_q(x; z) needs):
    entry [i, j] equals q(z_i | x_j) computed one pair at a time."""
    encoder = HierarchicalEncoder(2, upper_dim=1, hidden=(8,))
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    q = encoder(x)
    z = q.sample(seed=(1, 2))                                   # [3, 3]
    table = q.log_prob(z[:, None, :]).numpy()                   # [3, 3]
    for i in range(3):
        for j in range(3):
            np.testing.assert_allclose(table[i, j], encoder(x[j:j + 1]).log_prob(z[i:i + 1]),
                                       rtol=1e-5, atol=1e-5)
