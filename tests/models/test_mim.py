"""MIM / A-MIM: the model's loss against an independent Monte Carlo estimate of seed
003's eq. (8) / (13) on a linear-Gaussian model with closed-form densities, the
Jensen bound of Algorithm 2, R_MIM (eq. 10) >= 0, warm-up, early stopping, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvi import bounds, data, layers, models, priors

tfd = tfp.distributions

D, d, NOISE = 3, 2, 0.7
N_MODEL, N_NUMPY = 20000, 200000


@pytest.fixture(scope="module")
def params():
    _, p = data.linear_gaussian(4, latent_dim=d, data_dim=D, noise_scale=NOISE, seed=11)
    w, b = p["weights"].astype(np.float64), p["bias"].astype(np.float64)
    sigma = np.linalg.inv(np.eye(d) + w @ w.T / NOISE**2)        # exact posterior cov
    a = w.T @ sigma / NOISE**2                                  # loc = x a - b a
    return {"w": w, "b": b, "a": a, "c": -b @ a, "chol": np.linalg.cholesky(sigma),
            "marginal_cov": w.T @ w + NOISE**2 * np.eye(D)}


def _perturbed(p):
    """An encoder that is *not* the exact posterior (shifted, scaled, wider)."""
    return dict(p, a=1.3 * p["a"] + 0.1, c=p["c"] - 0.2, chol=1.6 * p["chol"])


class _FixedGaussian(keras.layers.Layer):
    """An explicit data prior q(x) = N(mean, cov), the Prior interface (`call()`)."""

    def __init__(self, mean, cov, **kwargs):
        super().__init__(**kwargs)
        self.mean = np.asarray(mean, np.float32)
        self.chol = np.linalg.cholesky(cov).astype(np.float32)

    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs=None):
        return tfd.MultivariateNormalTriL(self.mean, self.chol)


def _model(p, symmetric=True, data_prior=None):
    encoder = layers.GaussianEncoder(d, hidden=(), covariance="full")
    decoder = layers.GaussianDecoder(D, hidden=(), scale="fixed", init_scale=NOISE)
    model = models.MIM(encoder, decoder, symmetric=symmetric, data_prior=data_prior,
                       input_dim=D, seed=0)
    encoder.loc_layer.kernel.assign(p["a"])
    encoder.loc_layer.bias.assign(p["c"])
    raw = p["chol"].copy()
    idx = np.arange(d)
    raw[idx, idx] = np.log(np.expm1(p["chol"][idx, idx] - 1e-5))  # softplus^-1(. - 1e-5)
    encoder.scale_layer.kernel.assign(np.zeros_like(encoder.scale_layer.kernel))
    encoder.scale_layer.bias.assign(tfp.math.fill_triangular_inverse(raw.astype(np.float32)))
    decoder.head.kernel.assign(p["w"])
    decoder.head.bias.assign(p["b"])
    return model


def _anchor_data(n, seed):
    """P(x): an arbitrary data distribution the model does not match exactly."""
    rng = np.random.default_rng(seed)
    return 1.3 * rng.standard_normal((n, D)) + 0.4


def _log_normal(x, mean, chol):
    diff = np.linalg.solve(chol, (x - mean).T).T
    return (-0.5 * np.sum(diff**2, -1) - np.sum(np.log(np.diag(chol)))
            - 0.5 * x.shape[-1] * np.log(2 * np.pi))


def _numpy_eq8(p, q, seed, symmetric=True):
    """Livne et al. eq. (8) (or eq. 13) by plain Monte Carlo, with the exact marginal
    q(x) = N(b, W^T W + s^2 I). `p`: model parameters, `q`: encoder parameters.
    Returns (estimate, standard error)."""
    rng = np.random.default_rng(seed)
    id_d, chol_x = np.eye(d), np.linalg.cholesky(p["marginal_cov"])

    def ell(x, z):
        log_q = _log_normal(z, x @ q["a"] + q["c"], q["chol"]) + _log_normal(
            x, p["b"], chol_x)
        log_p = _log_normal(x, z @ p["w"] + p["b"], NOISE * np.eye(D)) + _log_normal(
            z, 0.0, id_d)
        return -0.5 * (log_q + log_p)

    x = _anchor_data(N_NUMPY, seed + 1)
    enc = ell(x, x @ q["a"] + q["c"] + rng.standard_normal((N_NUMPY, d)) @ q["chol"].T)
    if not symmetric:
        return enc.mean(), enc.std() / np.sqrt(N_NUMPY)
    z = rng.standard_normal((N_NUMPY, d))
    dec = ell(z @ p["w"] + p["b"] + NOISE * rng.standard_normal((N_NUMPY, D)), z)
    return (0.5 * (enc.mean() + dec.mean()),
            0.5 * np.sqrt(enc.var() + dec.var()) / np.sqrt(N_NUMPY))


def _model_mim(model, seed=7):
    x = tf.constant(_anchor_data(N_MODEL, seed), tf.float32)
    _, values = model.mim_values(x, seed=tf.constant([seed, 1]), decoder_weight=0.5)
    mim = values["mim"].numpy().astype(np.float64)
    return mim.mean(), mim.std() / np.sqrt(N_MODEL), values


@pytest.mark.parametrize("symmetric", [True, False])
def test_mim_loss_equals_monte_carlo_eq8_with_explicit_data_prior(params, symmetric):
    q = _perturbed(params)
    model = _model(q | {"w": params["w"], "b": params["b"]}, symmetric=symmetric,
                   data_prior=_FixedGaussian(params["b"], params["marginal_cov"]))
    value, se, _ = _model_mim(model)
    truth, se_truth = _numpy_eq8(params, q, seed=3, symmetric=symmetric)
    assert abs(value - truth) < 4 * np.hypot(se, se_truth), (value, truth, se, se_truth)


def test_marginal_data_prior_bound_is_exact_at_the_true_posterior_and_an_upper_bound_otherwise(params):
    # Algorithm 2: log q(x) replaced by log p(x|z') + log p(z') - log q(z'|x), exact
    # (zero variance) when q(z|x) is the true posterior, a lower bound otherwise.
    value, se, values = _model_mim(_model(params))
    truth, se_truth = _numpy_eq8(params, params, seed=4)
    assert abs(value - truth) < 4 * np.hypot(se, se_truth), (value, truth)
    # ... and then both factorisations are the same joint: R_MIM = 0.
    np.testing.assert_allclose(values["regularizer"].numpy(), 0.0, atol=2e-4)

    q = _perturbed(params)
    value, se, values = _model_mim(_model(q | {"w": params["w"], "b": params["b"]}))
    truth, se_truth = _numpy_eq8(params, q, seed=5)
    assert value - truth > 6 * np.hypot(se, se_truth), (value, truth)


def test_regulariser_is_non_negative_and_the_gap_to_the_mixture_cross_entropy(params):
    q = _perturbed(params)
    model = _model(q | {"w": params["w"], "b": params["b"]},
                   data_prior=_FixedGaussian(params["b"], params["marginal_cov"]))
    x = tf.constant(_anchor_data(4000, 9), tf.float32)
    seed = tf.constant([3, 4])
    terms = model.mim_terms(x, seed=seed)
    _, values = model.mim_values(x, seed=seed, decoder_weight=0.5)
    reg = values["regularizer"].numpy()
    assert reg.min() >= -1e-6
    assert reg.mean() > 0.05          # the model joints differ for this encoder
    # Eq. (9)-(10): per sample, l - r = -log 1/2 (q(x,z) + p(x,z)) (the L_CE integrand).
    for side, weight in (("encoding", 0.5), ("decoding", 0.5)):
        lq = terms[side]["log_q_joint"].numpy().reshape(-1).astype(np.float64)
        lp = terms[side]["log_p_joint"].numpy().reshape(-1).astype(np.float64)
        ce = -(np.logaddexp(lq, lp) - np.log(2.0))
        ell = np.asarray(bounds.mim_cross_entropy(lq, 0.0, lp, 0.0))
        r = bounds.mim_regularizer(lq, lp).numpy()
        np.testing.assert_allclose(ell - r, ce, rtol=1e-6, atol=1e-6)
    # The model's metrics combine the halves with weight 1/2 each.
    np.testing.assert_allclose(
        values["mim"].numpy(),
        0.5 * (values["encoding_ce"].numpy() + values["decoding_ce"].numpy()), rtol=1e-6)


def test_decoder_weight_warmup_schedule_and_callbacks():
    warm = models.DecoderWeightWarmup(4)
    assert [warm.weight(e) for e in range(6)] == [0.0, 0.125, 0.25, 0.375, 0.5, 0.5]
    assert models.DecoderWeightWarmup(0).weight(0) == 0.5
    warmup, stop = models.mim_callbacks(3)
    assert stop.patience == 3 and stop.start_from_epoch == 3 and stop.restore_best_weights
    with pytest.raises(ValueError, match="warmup_epochs"):
        models.DecoderWeightWarmup(-1)


def test_mim_trains_with_warmup_and_round_trips_through_keras_file(tmp_path):
    x, _ = data.gmm2d(512, seed=0)
    model = models.MIM(layers.GaussianEncoder(2, hidden=(5, 5)),
                       layers.GaussianDecoder(2, hidden=(5, 5), scale="per_dimension"),
                       prior=priors.MixtureOfGaussians(2, components=3),
                       input_dim=2, seed=1)
    model.compile(keras.optimizers.Adam(1e-2), jit_compile=False)
    history = model.fit(x, batch_size=128, epochs=3, verbose=0,
                        validation_data=(x[:128],), callbacks=models.mim_callbacks(2))
    h = history.history
    assert h["decoder_weight"] == [0.0, 0.25, 0.5]
    # The trained loss weights the decoding half by the warm-up weight; val is eq. (8).
    for key in ("loss", "mim", "encoding_ce", "decoding_ce", "regularizer", "val_loss"):
        assert np.all(np.isfinite(h[key])), key
    assert h["loss"][0] < h["mim"][0]
    np.testing.assert_allclose(h["val_loss"], h["val_mim"], rtol=1e-6)
    assert min(h["regularizer"]) >= 0.0
    path = tmp_path / "mim.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, models.MIM) and loaded.symmetric
    assert isinstance(loaded.prior, priors.MixtureOfGaussians)
    np.testing.assert_array_equal(loaded.predict(x[:16], verbose=0),
                                  model.predict(x[:16], verbose=0))
    seed = tf.constant([1, 2])
    np.testing.assert_allclose(loaded.mim_values(x[:64], seed=seed)[1]["mim"],
                               model.mim_values(x[:64], seed=seed)[1]["mim"], rtol=1e-5)


def test_amim_with_mixture_posterior_and_bernoulli_decoder_trains():
    # Discrete decoder: decoding samples carry no gradient; the score-function
    # surrogate must leave the loss value unchanged and give finite gradients.
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(256, 6)) > 0.5).astype(np.float32)
    for symmetric in (True, False):
        model = models.MIM(layers.MixtureEncoder(2, components=2, hidden=(8,)),
                           layers.BernoulliDecoder(6, hidden=(8,)),
                           symmetric=symmetric, input_dim=6, seed=0)
        seed = tf.constant([5, 5])
        with tf.GradientTape() as tape:
            loss, values = model.mim_values(tf.constant(x), seed=seed, decoder_weight=0.5)
        np.testing.assert_allclose(loss, tf.reduce_mean(values["mim"]), rtol=1e-5)
        grads = tape.gradient(loss, model.trainable_variables)
        assert all(g is not None and np.all(np.isfinite(g)) for g in grads)
        head_bias = [g for g, v in zip(grads, model.trainable_variables)
                     if "head" in v.path and "bias" in v.path][0]
        assert np.abs(head_bias).max() > 0


def test_mim_rejects_bad_arguments():
    enc, dec = layers.GaussianEncoder(2, hidden=()), layers.GaussianDecoder(2, hidden=())
    with pytest.raises(ValueError, match="symmetric"):
        models.MIM(enc, dec, symmetric="yes")
    with pytest.raises(ValueError, match="decoder_weight"):
        models.MIM(enc, dec, decoder_weight=2.0)
    with pytest.raises(ValueError, match="latent_anchor"):
        models.MIM(enc, dec, latent_anchor=priors.StandardNormal(3))


# ------------------------------------------------------------ experiment scripts
def test_gmm_experiment_layout_noam_schedule_and_bayes_accuracy():
    from experiments import mim_gmm

    centers = mim_gmm.LAYOUTS["paper"]
    x, labels = mim_gmm.sample_gmm(centers, 40_000, seed=3)
    for c in range(5):
        comp = x[labels == c].astype(np.float64)
        np.testing.assert_allclose(comp.mean(0), centers[c], atol=0.015)
        np.testing.assert_allclose(comp.std(0), [0.25, 0.25], rtol=0.03)
    # Bayes (nearest-mean) accuracy: the centre component errs when either coordinate
    # leaves [-0.5, 0.5] towards a neighbour, i.e. 2 std: exact value by quadrature
    # of the 2-D Gaussian over the nearest-mean cells.
    g = np.linspace(-2.5, 2.5, 501)
    gx, gy = np.meshgrid(g, g)
    pts = np.stack([gx.ravel(), gy.ravel()], 1)
    nearest = np.argmin(((pts[:, None] - centers[None]) ** 2).sum(-1), 1)
    exact = 0.0
    for c in range(5):
        dens = np.exp(-0.5 * ((pts - centers[c]) ** 2).sum(1) / 0.0625) / (2 * np.pi * 0.0625)
        exact += 0.2 * np.sum(dens[nearest == c]) * (g[1] - g[0]) ** 2
    assert 0.94 < exact < 0.97
    assert abs(mim_gmm.bayes_accuracy(centers, x, labels) - exact) < 0.005
    # The authors' per-epoch Noam warm-up: 1e-3 min(e / W, sqrt(W / e)), e = epoch + 1.
    lr = [mim_gmm.noam_learning_rate(epoch, 3) for epoch in (0, 1, 2, 11, 47)]
    np.testing.assert_allclose(lr, [1e-3 / 3, 2e-3 / 3, 1e-3, 5e-4, 2.5e-4], rtol=1e-12)


@pytest.mark.parametrize("name", ["mim", "vae"])
def test_reset_to_reproduces_a_freshly_built_and_compiled_model(name):
    """The GMM script traces one model per cell and resets it per seed: training the
    reset model must give exactly the weights of a fresh build + compile."""
    from experiments import mim_gmm

    x, _ = data.gmm2d(256, seed=0)

    def fit(model):
        model.fit(x, batch_size=128, epochs=2, verbose=0, shuffle=True,
                  callbacks=mim_gmm.callbacks_for(name, 1, "noam")[:1])
        return model.get_weights()

    fresh = mim_gmm.build(name, 3, seed=5)
    fresh.compile(keras.optimizers.Adam(1e-3), jit_compile=False)
    expected = fit(fresh)
    reused = mim_gmm.build(name, 3, seed=9)
    reused.compile(keras.optimizers.Adam(1e-3), jit_compile=False)
    fit(reused)
    mim_gmm.reinitialize(reused, name, 3, seed=5)
    got = fit(reused)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_digits_experiment_plumbing(tmp_path):
    import json

    from experiments import mim_digits

    table = mim_digits.main(["--models", "vae", "amim", "--seeds", "0", "--epochs", "2",
                             "--warmup", "1", "--steps", "2", "--hidden", "8",
                             "--latent", "2", "--pseudo_inputs", "4",
                             "--nll_samples", "4", "--out", str(tmp_path)])
    with open(tmp_path / "results.json") as f:
        saved = json.load(f)
    assert [e["model"] for e in saved["table"]] == ["vae", "amim"] == [e["model"] for e in table]
    for run in saved["runs"]:
        assert run["epochs"] == 2
        for key in ("nll", "elbo", "mi"):
            assert np.isfinite(run[key]), key
        assert 0.0 <= run["mi_q"] <= np.log(297) + 1e-9
        # IWAE with S >= 1 is at least the one-sample ELBO in expectation; with
        # different draws allow slack, but -NLL can never be far below the ELBO.
        assert -run["nll"] > run["elbo"] - 1.0
        for key in ("knn5", "knn5_mean", "nmi"):
            assert 0.0 <= run[key] <= 1.0, key
    with pytest.raises(SystemExit):
        mim_digits.main(["--latent", "0", "--out", str(tmp_path)])


def test_launcher_estimators_describe_the_mim_loss_and_the_nll_proposal():
    from types import SimpleNamespace

    from tfvi.launch.families import mim as mim_family

    flags = SimpleNamespace(eval_iwae_samples=7, seed=3, mim_ksg_points=100)
    for symmetric, objective in ((True, "mim"), (False, "amim")):
        model = models.MIM(layers.GaussianEncoder(2, hidden=(4,)),
                           layers.GaussianDecoder(3, hidden=(4,)), symmetric=symmetric,
                           input_dim=3, seed=0)
        est = mim_family.mim_estimators(flags, model)
        assert est["bounds"]["objective"] == objective
        assert "samples_per_component" not in est["bounds"] and "beta" not in est["bounds"]
        assert ("decoding" in est["bounds"]["samples"]) == symmetric
        assert "Algorithm 2" in est["bounds"]["data_prior"]
        assert est["nll"]["num_samples"] == 7 and "encoder" in est["nll"]["proposal"]
