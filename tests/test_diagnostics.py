"""Seed 004 Table 7 diagnostics: identities between the columns, exact values on a model
whose posterior is exact, and the posterior-std histogram."""

import numpy as np
import pytest
import tensorflow as tf

import tfvi
from tfvi.evaluation import diagnostics

D, LATENT = 8, 2


@pytest.fixture(scope="module")
def model_and_data():
    rng = np.random.default_rng(2)
    x = (rng.random((40, D)) < 0.35).astype(np.float32)
    model = tfvi.models.VAE(tfvi.layers.GaussianEncoder(LATENT, hidden=(8,)),
                            tfvi.layers.BernoulliDecoder(output_dim=D, hidden=(8,)),
                            tfvi.priors.RealNVPPrior(LATENT, depth=1, hidden=(4,), seed=0),
                            input_dim=D, seed=0)
    return model, x


def test_table_columns_are_consistent(model_and_data):
    model, x = model_and_data
    row = diagnostics.prior_diagnostics(model, x, num_samples=200, elbo_samples=50,
                                        batch_size=20)
    assert row["elbo"] == pytest.approx(row["reconstruction"] - row["kl"], abs=1e-4)
    assert row["kl_z_given_x"] == pytest.approx(-row["nll"] - row["elbo"], abs=1e-6)
    assert row["kl"] > 0 and row["kl_z_given_x"] > -0.05  # KLs, up to estimator noise
    assert 0 <= row["active_units"] <= LATENT
    assert row["protocol"]["nll_samples"] == 200
    table = diagnostics.format_diagnostics_table({"rnvp": row})
    assert "kl_z_given_x" in table and "rnvp" in table


def test_kl_matches_closed_form_for_gaussian_prior():
    rng = np.random.default_rng(3)
    x = (rng.random((30, D)) < 0.5).astype(np.float32)
    encoder = tfvi.layers.GaussianEncoder(LATENT, hidden=(8,))
    model = tfvi.models.VAE(encoder, tfvi.layers.BernoulliDecoder(output_dim=D),
                            tfvi.priors.StandardNormal(LATENT), input_dim=D, seed=0)
    terms = diagnostics.elbo_terms(model, x, num_samples=4000, batch_size=30)
    q = encoder(tf.constant(x))
    exact = q.kl_divergence(model.prior()).numpy()
    # MC over 4000 draws: per example within 0.2, the data mean within 0.03.
    np.testing.assert_allclose(terms["kl"], exact, atol=0.2)
    assert abs(terms["kl"].mean() - exact.mean()) < 0.03
    np.testing.assert_allclose(
        diagnostics.posterior_stds(model, x), q.stddev().numpy(), rtol=1e-6)


def test_flow_posterior_stds_by_monte_carlo(tmp_path):
    rng = np.random.default_rng(4)
    x = (rng.random((6, D)) < 0.5).astype(np.float32)
    encoder = tfvi.layers.RealNVPPosterior(LATENT, depth=1, hidden=(8,), flow_hidden=(4,))
    model = tfvi.models.VAE(encoder, tfvi.layers.BernoulliDecoder(output_dim=D),
                            input_dim=D, seed=0)
    # The flow starts as a rotation R: std of R w, w ~ N(mu, diag(s^2)), per dimension.
    stds = diagnostics.posterior_stds(model, x, num_samples=20000)
    s = encoder.posterior_parameters(tf.constant(x))["scale_diag"].numpy()
    rot = encoder.flow.blocks[0].bijector().forward(tf.eye(LATENT)).numpy()  # rows R e_i
    exact = np.sqrt((s[:, :, None] ** 2 * rot[None, :, :] ** 2).sum(1))
    np.testing.assert_allclose(stds, exact, rtol=0.05)
    path = diagnostics.plot_posterior_std_histogram({"a": stds, "b": 2 * stds},
                                                    str(tmp_path / "h.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
