"""Learned priors (VampPrior, Real NVP, MAF) and the Real NVP posterior inside the VAE:
training with every bound, `.keras` round-trips, traceable sampling/log_prob."""

import numpy as np
import pytest
import tensorflow as tf
import keras

import tfvi

D, LATENT = 12, 3


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return (rng.random((64, D)) < 0.4).astype(np.float32)


def _encoder(kind):
    if kind == "gauss":
        return tfvi.layers.GaussianEncoder(LATENT, hidden=(16,))
    if kind == "mixture":
        return tfvi.layers.MixtureEncoder(LATENT, components=2, hidden=(16,))
    return tfvi.layers.RealNVPPosterior(LATENT, depth=2, hidden=(16,), flow_hidden=(8,),
                                        seed=1)


def _prior(kind, encoder, data):
    if kind == "vamp":
        return tfvi.priors.VampPrior(encoder, num_pseudo_inputs=7, init_from_data=data,
                                     seed=0)
    if kind == "realnvp":
        return tfvi.priors.RealNVPPrior(LATENT, depth=2, hidden=(8,), seed=0)
    if kind == "maf":
        return tfvi.priors.MAFPrior(LATENT, depth=2, hidden=(8, 8))
    return tfvi.priors.StandardNormal(LATENT)


def _model(prior_kind, encoder_kind, objective, data, samples=3):
    encoder = _encoder(encoder_kind)
    decoder = tfvi.layers.BernoulliDecoder(output_dim=D, hidden=(16,))
    return tfvi.models.VAE(encoder, decoder, _prior(prior_kind, encoder, data),
                           objective=objective, samples=samples, input_dim=D, seed=0)


@pytest.mark.parametrize("prior_kind", ["vamp", "realnvp", "maf"])
def test_prior_event_shape_and_normalised_density(prior_kind, data):
    encoder = _encoder("gauss")
    encoder.build((None, D))
    p = _prior(prior_kind, encoder, data)()
    assert p.event_shape == [LATENT] and p.batch_shape == []
    z = p.sample(5, seed=[1, 2])
    assert z.shape == (5, LATENT) and z.dtype == tf.float32
    # Importance-sampled normaliser: E_{N(0, 2^2 I)}[p(z) / N(z)] = 1.
    ref = tfvi.priors.StandardNormal(LATENT)()
    zz = 2.0 * ref.sample(20000, seed=[3, 4])
    log_ref = ref.log_prob(zz / 2.0) - LATENT * np.log(2.0)
    z_norm = tf.reduce_mean(tf.exp(p.log_prob(zz) - log_ref)).numpy()
    assert abs(z_norm - 1.0) < 0.1


def test_vamp_prior_is_the_mixture_of_encoder_posteriors(data):
    encoder = _encoder("mixture")
    encoder.build((None, D))
    prior = tfvi.priors.VampPrior(encoder, num_pseudo_inputs=4, init_from_data=data, seed=0)
    z = tf.random.normal([6, LATENT], seed=5)
    u = tf.convert_to_tensor(prior.pseudo_inputs)
    # (1/M) sum_m q(z|u_m), each q(z|u_m) a 2-component mixture, by TFP's own densities.
    per_m = encoder(u).log_prob(z[:, None, :])  # [6, M]
    expected = tf.reduce_logsumexp(per_m, axis=1) - np.log(4.0)
    np.testing.assert_allclose(prior().log_prob(z), expected, atol=1e-4)
    # Initialised from data rows.
    rows = {tuple(r) for r in data}
    assert all(tuple(r) in rows for r in prior.pseudo_inputs.numpy())


@pytest.mark.parametrize("prior_kind,encoder_kind,objective", [
    ("vamp", "gauss", "elbo"), ("vamp", "gauss", "iwae"), ("vamp", "mixture", "siwae"),
    ("maf", "gauss", "elbo"), ("maf", "gauss", "iwae"), ("maf", "mixture", "siwae"),
    ("realnvp", "gauss", "iwae"), ("realnvp", "mixture", "siwae"),
    ("normal", "flow", "elbo"), ("normal", "flow", "iwae"), ("realnvp", "flow", "siwae"),
])
def test_trains_with_every_bound(prior_kind, encoder_kind, objective, data):
    model = _model(prior_kind, encoder_kind, objective, data)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    variables = model.trainable_variables
    # Every weight is counted once (the VampPrior shares the encoder's), and the prior's
    # own weights are among them.
    assert len({id(v) for v in variables}) == len(variables)
    prior_ids = {id(v) for v in model.prior.trainable_variables}
    assert prior_ids <= {id(v) for v in variables}
    before = [v.numpy().copy() for v in variables]
    first = model.evaluate(data, batch_size=64, verbose=0, return_dict=True)["loss"]
    model.fit(data, batch_size=16, epochs=3, verbose=0)
    last = model.evaluate(data, batch_size=64, verbose=0, return_dict=True)["loss"]
    assert np.isfinite(last) and last < first
    changed = [id(v) for v, b in zip(variables, before) if not np.allclose(v.numpy(), b)]
    if prior_kind != "normal":
        own = prior_ids - {id(v) for v in model.encoder.trainable_variables}
        assert own & set(changed)


@pytest.mark.parametrize("prior_kind,encoder_kind", [
    ("vamp", "gauss"), ("vamp", "mixture"), ("realnvp", "gauss"), ("maf", "gauss"),
    ("realnvp", "flow"),
])
def test_keras_round_trip(prior_kind, encoder_kind, data, tmp_path):
    model = _model(prior_kind, encoder_kind, "iwae" if encoder_kind != "mixture" else "siwae",
                   data)
    # Move every weight off its initial value (zero-initialised flow outputs included).
    for i, v in enumerate(model.trainable_variables):
        v.assign(v + 0.1 * tf.random.normal(v.shape, seed=i))
    if prior_kind == "realnvp":
        model.prior.initialize(model.encoder(data).sample(seed=[0, 1]))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert len(loaded.weights) == len(model.weights)
    assert len(loaded.trainable_variables) == len(model.trainable_variables)
    if prior_kind == "vamp":
        assert loaded.prior.encoder is loaded.encoder
    z = tf.random.normal([9, LATENT], seed=3)
    np.testing.assert_allclose(loaded.prior().log_prob(z), model.prior().log_prob(z),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loaded.predict(data, verbose=0), model.predict(data, verbose=0),
                               atol=1e-5)
    seed = tf.constant([4, 2])
    a = model.log_weight_terms(tf.constant(data[:5]), seed=seed)
    b = loaded.log_weight_terms(tf.constant(data[:5]), seed=seed)
    for key in ("log_likelihood", "log_prior", "log_posterior"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("prior_kind", ["vamp", "realnvp", "maf"])
def test_sample_and_log_prob_trace_with_stateless_seeds(prior_kind, data):
    model = _model(prior_kind, "gauss", "elbo", data)

    @tf.function(jit_compile=True, input_signature=[tf.TensorSpec([2], tf.int32)])
    def sample_and_score(seed):
        p = model.prior()
        z = p.sample(4, seed=seed)
        return z, p.log_prob(z)

    z1, lp1 = sample_and_score(tf.constant([1, 2]))
    z2, _ = sample_and_score(tf.constant([1, 2]))
    z3, _ = sample_and_score(tf.constant([1, 3]))
    np.testing.assert_array_equal(z1, z2)
    assert not np.allclose(z1, z3)
    np.testing.assert_allclose(lp1, model.prior().log_prob(z1), rtol=1e-4, atol=1e-4)


def test_vamp_prior_validates_arguments(data):
    with pytest.raises(ValueError, match="num_pseudo_inputs"):
        tfvi.priors.VampPrior(_encoder("gauss"), num_pseudo_inputs=0)
    with pytest.raises(ValueError, match="encoder"):
        tfvi.priors.VampPrior(num_pseudo_inputs=3)
    other = _encoder("gauss")
    prior = tfvi.priors.VampPrior(other, num_pseudo_inputs=3, init_from_data=data)
    with pytest.raises(ValueError, match="different encoder"):
        tfvi.models.VAE(_encoder("gauss"), tfvi.layers.BernoulliDecoder(output_dim=D),
                        prior, input_dim=D)


@pytest.mark.parametrize("kind", ["realnvp", "maf"])
def test_flow_prior_stays_normalised_after_training(kind):
    """A 2-D flow prior fitted by maximum likelihood (200 Adam steps) to a banana-shaped
    sample, so it is far from its identity initialisation (control: the mean
    log-density of the data rises by > 0.5 nats), still integrates to 1: trapezoid rule
    on a 321 x 321 grid over [-8, 8]^2 (discretisation and tail error < 2e-3 here;
    tolerance 0.01). A wrong log-determinant sign or a missing Jacobian term moves the
    integral by far more than 1%."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    u = rng.normal(size=(512, 2))
    banana = np.stack([u[:, 0], 0.5 * u[:, 1] + 0.5 * u[:, 0] ** 2 - 0.5], 1)
    banana = tf.constant(banana.astype(np.float32))
    prior = (tfvi.priors.RealNVPPrior(2, depth=4, hidden=(16,), seed=0) if kind == "realnvp"
             else tfvi.priors.MAFPrior(2, depth=3, hidden=(16, 16)))
    prior.build()
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(prior().log_prob(banana))
        optimizer.apply(tape.gradient(loss, prior.trainable_variables),
                        prior.trainable_variables)
        return loss

    before = -float(step())
    for _ in range(199):
        after = -float(step())
    assert after > before + 0.5, (before, after)
    grid = np.linspace(-8.0, 8.0, 321, dtype=np.float32)
    zz = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    density = np.exp(prior().log_prob(tf.constant(zz)).numpy()).reshape(321, 321)
    total = np.trapezoid(np.trapezoid(density, grid, axis=1), grid)
    assert abs(total - 1.0) < 0.01, total
