"""Xu et al. Table 7 diagnostics: every column against its closed form on a linear-Gaussian
model, the KL against TFP's closed form, and the posterior-std histogram."""

import numpy as np
import pytest
import tensorflow as tf

import tfvi
from tfvi import plots
from tfvi.evaluation import diagnostics

D, LATENT = 8, 2


def _gaussian_kl_diag_to_full(m0, s0, m1, c1):
    """KL(N(m0, diag(s0^2)) || N(m1, c1)), `[B]`, for `[B, d]` m0, s0, m1 and `[d, d]` c1."""
    inv = np.linalg.inv(c1)
    diff = m1 - m0
    return 0.5 * (np.einsum("ii,bi->b", inv, s0**2) + np.einsum("bi,ij,bj->b", diff, inv, diff)
                  - len(c1) + np.log(np.linalg.det(c1)) - 2 * np.log(s0).sum(-1))


def test_table_columns_match_closed_forms_on_a_linear_gaussian_model():
    """Every column against its closed form, on a linear-Gaussian VAE whose diagonal
    q(z|x) is the exact posterior mean + 0.3 with 1.3x its marginal std: nll = -log p(x),
    kl = KL(q || N(0, I)), kl_z_given_x = KL(q || p(z|x)), elbo = log p(x) - KL(q || p(z|x)),
    reconstruction = elbo + kl (data means over 40 examples). Monte Carlo: ELBO terms
    with 400 samples (SE < 0.01 nats), NLL with IWAE-2000 (bias < 0.005 nats here);
    tolerance 0.05 nats, so a false failure needs a 5 SE excursion. A wrong column (a
    sign, a swapped term, a missing 1/S) is off by > 0.3 nats."""
    x, p = tfvi.data.linear_gaussian(40, latent_dim=LATENT, data_dim=D, noise_scale=0.5,
                                     seed=5)
    w, b, s = p["weights"], p["bias"], p["noise_scale"]
    encoder = tfvi.layers.GaussianEncoder(LATENT, hidden=())
    decoder = tfvi.layers.GaussianDecoder(D, hidden=(), scale="fixed", init_scale=s)
    model = tfvi.models.VAE(encoder, decoder, tfvi.priors.StandardNormal(LATENT),
                            input_dim=D, seed=0)
    decoder.head.kernel.assign(w)
    decoder.head.bias.assign(b)
    post_cov = np.linalg.inv(np.eye(LATENT) + w @ w.T / s**2)
    gain = w.T @ post_cov / s**2
    sd = 1.3 * np.sqrt(np.diag(post_cov))
    encoder.loc_layer.kernel.assign(gain.astype(np.float32))
    encoder.loc_layer.bias.assign((0.3 - b @ gain).astype(np.float32))
    encoder.scale_layer.kernel.assign(np.zeros_like(encoder.scale_layer.kernel))
    encoder.scale_layer.bias.assign(np.log(np.expm1(sd - 1e-5)).astype(np.float32))
    post_mean = (x - b) @ gain
    q_mean, q_sd = post_mean + 0.3, np.broadcast_to(sd, post_mean.shape)
    log_px = tfvi.evaluation.linear_gaussian_log_marginal(x, **p)
    kl_post = _gaussian_kl_diag_to_full(q_mean, q_sd, post_mean, post_cov)
    kl_prior = _gaussian_kl_diag_to_full(q_mean, q_sd, 0 * q_mean, np.eye(LATENT))
    want = {"nll": -log_px.mean(), "kl": kl_prior.mean(), "kl_z_given_x": kl_post.mean(),
            "elbo": (log_px - kl_post).mean(),
            "reconstruction": (log_px - kl_post + kl_prior).mean()}
    row = diagnostics.prior_diagnostics(model, x, num_samples=2000, elbo_samples=400,
                                        batch_size=20)
    for name, value in want.items():
        assert row[name] == pytest.approx(value, abs=0.05), (name, row[name], value)
    assert row["active_units"] == LATENT  # both posterior means vary with x
    assert row["protocol"]["nll_samples"] == 2000
    table = diagnostics.format_diagnostics_table({"linear": row})
    assert f"{row['nll']:.3f}" in table and "kl_z_given_x" in table


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
    path = plots.plot_posterior_std_histogram({"a": stds, "b": 2 * stds},
                                                    str(tmp_path / "h.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
