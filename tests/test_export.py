"""SavedModel export: every signature loads in a process that imports only
TensorFlow and agrees with the in-memory model, with every prior (learned priors
included) and the Real NVP posterior."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import tfvi
from tests.helpers import run_tensorflow_only
from tfvi.export import ServingModule, export_model

LOADER = """
    path, inputs, out = sys.argv[1:4]
    m = tf.saved_model.load(path)
    res = score(m, np.load(inputs), num_samples=300)
    for k, v in m.signatures["sample"](n=tf.constant(7), seed=tf.constant([3, 4])).items():
        res["sample/" + k] = v.numpy()
    res["sample_many/z"] = m.sample(tf.constant(4000), tf.constant([5, 6]))["z"].numpy()
    np.savez(out, **res)
    report(signatures=sorted(m.signatures))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tfvi.models.VAE(
        tfvi.layers.MixtureEncoder(2, components=3, hidden=(16,)),
        tfvi.layers.BernoulliDecoder(64, hidden=(16,)),
        objective="siwae", samples=2, input_dim=64, seed=0)
    path = str(tmp_path_factory.mktemp("export") / "export")
    module = export_model(model, path, metadata={"note": "test"})
    x = tfvi.data.load_digits()["test_x"][:20]
    z = np.random.default_rng(0).standard_normal((5, 2)).astype(np.float32)
    inputs = str(tmp_path_factory.mktemp("io") / "in.npz")
    np.savez(inputs, x=x, z=z)
    out = inputs.replace("in.npz", "out.npz")
    report = run_tensorflow_only(LOADER, path, inputs, out, directory=os.path.dirname(inputs),
                                 timeout=300)
    return model, module, path, x, z, dict(np.load(out)), report


def test_loads_with_tensorflow_only(exported):
    *_, report = exported
    assert report["foreign_modules"] == []
    assert report["signatures"] == sorted(["encode", "decode", "sample", "prior_log_prob",
                                           "elbo", "log_likelihood"])


def test_encode_and_decode_match_the_model(exported):
    model, _, _, x, z, res, _ = exported
    params = model.encoder.posterior_parameters(tf.constant(x))
    assert set(k.split("/")[1] for k in res if k.startswith("encode/")) == set(params)
    for k, v in params.items():
        np.testing.assert_allclose(res[f"encode/{k}"], v.numpy(), rtol=1e-5, atol=1e-6)
    logits = model.decoder.decoder_parameters(tf.constant(z))["logits"].numpy()
    np.testing.assert_allclose(res["decode/logits"], logits, rtol=1e-5, atol=1e-5)


def test_sample_is_stateless_and_follows_the_prior(exported):
    _, module, _, _, _, res, _ = exported
    mem = module.sample(tf.constant(7), tf.constant([3, 4]))
    for k, v in mem.items():
        np.testing.assert_allclose(res[f"sample/{k}"], v.numpy(), rtol=1e-5, atol=1e-5)
    assert res["sample/z"].shape == (7, 2) and res["sample/x"].shape == (7, 64)
    assert set(np.unique(res["sample/x"])) <= {0.0, 1.0}
    z = res["sample_many/z"]  # standard-normal prior: mean 0, covariance I
    np.testing.assert_allclose(z.mean(0), 0.0, atol=0.1)
    np.testing.assert_allclose(np.cov(z.T), np.eye(2), atol=0.1)


def test_elbo_and_log_likelihood_match_in_memory_and_tfvi_estimators(exported):
    model, module, _, x, _, res, _ = exported
    np.testing.assert_allclose(res["elbo/elbo"], module.elbo(tf.constant(x))["elbo"].numpy(),
                               rtol=1e-5, atol=1e-4)
    ll_mem = module.log_likelihood(tf.constant(x), tf.constant(300))["log_likelihood"].numpy()
    np.testing.assert_allclose(res["log_likelihood/log_likelihood"], ll_mem, rtol=1e-6,
                               atol=1e-4)
    # Same estimator as tfvi.evaluation (different seeds): agree up to MC noise.
    ref = tfvi.evaluation.iwae_log_likelihood(model, x, num_samples=300, seed=1)
    assert abs(ref.mean() - ll_mem.mean()) < 0.1
    # The ELBO of the model (many draws) is below the IWAE estimate.
    terms = model.log_weight_terms(tf.constant(x), samples=500, seed=tf.constant([9, 9]))
    elbo = model.bound_values(terms)["elbo"].numpy()
    np.testing.assert_allclose(res["elbo/elbo"].mean(), elbo.mean(), atol=0.3)
    assert ll_mem.mean() > elbo.mean()


def test_metadata_is_written(exported):
    _, _, path, *_ = exported
    with open(os.path.join(path, "tfvi.json")) as f:
        meta = json.load(f)
    assert meta["input_dim"] == 64 and meta["latent_dim"] == 2 and meta["num_components"] == 3
    assert meta["note"] == "test" and not meta["has_target"]


def test_export_with_a_separate_target():
    """Single-column view: `elbo`/`log_likelihood` take `(x, y)`."""
    model = tfvi.models.VAE(tfvi.layers.GaussianEncoder(2, hidden=(8,)),
                            tfvi.layers.BernoulliDecoder(64, hidden=(8,)),
                            objective="iwae", samples=3, input_dim=8, seed=0)
    module = ServingModule(model, tf.TensorSpec([None, 64], tf.float32))
    y = tfvi.data.load_digits()["test_x"][:4]
    x = y.reshape(-1, 8, 8)[:, :, 4]
    ll = module.log_likelihood(tf.constant(x), tf.constant(y), tf.constant(50))
    ref = tfvi.evaluation.iwae_log_likelihood(model, x, num_samples=50, y=y)
    assert ll["log_likelihood"].shape == (4,)
    assert abs(ll["log_likelihood"].numpy().mean() - ref.mean()) < 1.0


# ------------------------------------------------------------------ learned priors
LATENT = 3
LEARNED = ["vamp", "realnvp", "maf", "realnvp+rnvp_posterior"]


def _learned_model(kind, x):
    if kind.endswith("rnvp_posterior"):
        encoder = tfvi.layers.RealNVPPosterior(LATENT, depth=2, hidden=(16,), flow_hidden=(8,),
                                               seed=1)
    else:
        encoder = tfvi.layers.GaussianEncoder(LATENT, hidden=(16,))
    encoder.build((None, 64))
    if kind == "vamp":
        prior = tfvi.priors.VampPrior(encoder, num_pseudo_inputs=7, init_from_data=x, seed=0)
    elif kind.startswith("realnvp"):
        prior = tfvi.priors.RealNVPPrior(LATENT, depth=2, hidden=(8,), seed=0)
    else:
        prior = tfvi.priors.MAFPrior(LATENT, depth=2, hidden=(8, 8))
    model = tfvi.models.VAE(encoder, tfvi.layers.BernoulliDecoder(64, hidden=(16,)), prior,
                            objective="iwae", samples=2, input_dim=64, seed=0)
    # Move every weight off its initial value: a new flow is the identity (prior =
    # N(0, I)), which would let an export that ignored the learned prior pass.
    for i, v in enumerate(model.trainable_variables):
        v.assign(v + 0.3 * tf.random.normal(v.shape, seed=i))
    return model


@pytest.fixture(scope="module", params=LEARNED)
def learned_export(request, tmp_path_factory):
    x = tfvi.data.load_digits()["test_x"][:10]
    model = _learned_model(request.param, x)
    path = str(tmp_path_factory.mktemp("learned") / "export")
    export_model(model, path)
    return request.param, model, tf.saved_model.load(path), path, x


def test_exported_prior_log_prob_is_the_learned_prior(learned_export):
    _, model, loaded, _, _ = learned_export
    z = tf.constant(np.random.default_rng(1).standard_normal((50, LATENT)) * 1.5, tf.float32)
    exported = loaded.signatures["prior_log_prob"](z=z)["log_prob"].numpy()
    np.testing.assert_allclose(exported, model.prior().log_prob(z).numpy(), rtol=1e-5,
                               atol=1e-5)
    standard = tfvi.priors.StandardNormal(LATENT)().log_prob(z).numpy()
    assert np.abs(exported - standard).max() > 0.1  # the learned prior is not N(0, I)


def test_exported_sample_draws_from_the_learned_prior(learned_export):
    _, model, loaded, _, _ = learned_export
    seed = tf.constant([3, 4])
    out = loaded.signatures["sample"](n=tf.constant(200), seed=seed)
    # Same stateless seed split as the serving function: exact same draws.
    seed_z, _ = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    z_mem = model.prior().sample(200, seed=seed_z)
    np.testing.assert_allclose(out["z"].numpy(), z_mem.numpy(), rtol=1e-4, atol=1e-4)
    logits = model.decoder.decoder_parameters(out["z"])["logits"].numpy()
    np.testing.assert_allclose(out["logits"].numpy(), logits, rtol=1e-4, atol=1e-4)
    assert set(np.unique(out["x"].numpy())) <= {0.0, 1.0}


def test_exported_bounds_score_under_the_learned_prior(learned_export):
    _, model, loaded, _, x = learned_export
    xt = tf.constant(x)
    n = 50  # one chunk: seed fold_in([1, 2], 0), as in ServingModule._log_likelihood
    seed = tf.random.experimental.stateless_fold_in(tf.constant([1, 2], tf.int32), 0)
    terms = model.log_weight_terms(xt, samples=n, seed=seed)
    log_w = tf.cast(terms["log_likelihood"] + terms["log_prior"] - terms["log_posterior"],
                    tf.float64)
    expected = (tf.reduce_logsumexp(log_w, axis=[0, 1]) - np.log(n)).numpy()
    got = loaded.signatures["log_likelihood"](x=xt, num_samples=tf.constant(n))
    np.testing.assert_allclose(got["log_likelihood"].numpy(), expected, rtol=1e-5, atol=1e-4)
    # The same samples scored under N(0, I) instead give a different estimate.
    log_std = tfvi.priors.StandardNormal(LATENT)().log_prob(terms["z"])
    log_w_std = tf.cast(terms["log_likelihood"] + log_std - terms["log_posterior"], tf.float64)
    other = (tf.reduce_logsumexp(log_w_std, axis=[0, 1]) - np.log(n)).numpy()
    assert np.abs(other - expected).max() > 0.05
    terms = model.log_weight_terms(xt, samples=16, seed=tf.constant([0, 0], tf.int32))
    elbo = tf.reduce_mean(terms["log_likelihood"] + terms["log_prior"]
                          - terms["log_posterior"], axis=[0, 1]).numpy()
    got = loaded.signatures["elbo"](x=xt)["elbo"].numpy()
    np.testing.assert_allclose(got, elbo, rtol=1e-5, atol=1e-4)


PRIOR_LOADER = """
    m = tf.saved_model.load(sys.argv[1])
    z = tf.constant(np.load(sys.argv[2]))
    report(log_prob=m.signatures["prior_log_prob"](z=z)["log_prob"].numpy().tolist())
"""


def test_learned_prior_export_loads_with_tensorflow_only(tmp_path):
    """Flow prior and flow posterior: the SavedModel needs neither tfvi nor TFP."""
    model = _learned_model("realnvp+rnvp_posterior", tfvi.data.load_digits()["test_x"][:10])
    path = str(tmp_path / "export")
    export_model(model, path)
    z = np.random.default_rng(2).standard_normal((4, LATENT)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    report = run_tensorflow_only(PRIOR_LOADER, path, tmp_path / "z.npy", directory=tmp_path,
                                 timeout=300)
    assert report["foreign_modules"] == []
    np.testing.assert_allclose(report["log_prob"], model.prior().log_prob(z).numpy(),
                               rtol=1e-5, atol=1e-5)
