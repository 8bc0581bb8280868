"""Model-level AIS (`tfvi.evaluation.ais_log_likelihood`) and BDMC on a linear-Gaussian
VAE, whose exact log p(x) is known (`tfvi.evaluation.exact_log_likelihood`)."""

import json

import keras
import numpy as np
import pytest

import tfvi


@pytest.fixture(scope="module")
def model():
    # An untrained encoder: a poor proposal, so AIS has work to do. Seeded, so the
    # weights do not depend on which tests ran before in this process.
    keras.utils.set_random_seed(0)
    return tfvi.models.VAE(
        tfvi.layers.GaussianEncoder(3, hidden=(16,)),
        tfvi.layers.GaussianDecoder(12, hidden=(), scale="fixed", init_scale=0.7),
        tfvi.priors.StandardNormal(3), input_dim=12, seed=0)


def test_bdmc_brackets_exact_log_marginal(model):
    # A small budget: the stochastic bounds are loose enough to separate from the
    # Monte Carlo noise, and bracket the exact value.
    short = tfvi.evaluation.bdmc(model, 24, num_temperatures=20, seed=0)
    exact = tfvi.evaluation.exact_log_likelihood(model, short.x)
    assert short.lower.shape == short.upper.shape == (24,)
    assert short.lower.mean() < exact.mean() < short.upper.mean()
    assert short.gap == pytest.approx(short.upper.mean() - short.lower.mean())
    # More temperatures: a tighter bracket, and the lower bound close to exact.
    long = tfvi.evaluation.bdmc(model, 24, num_temperatures=300, seed=0)
    np.testing.assert_array_equal(long.x, short.x)  # same simulated data
    assert abs(long.gap) < 0.5 * short.gap
    assert np.abs(long.lower - exact).mean() < 0.15


def test_ais_log_likelihood_matches_exact_and_records_protocol(model):
    x = np.random.default_rng(0).normal(size=(10, 12)).astype(np.float32)
    est = tfvi.evaluation.ais_log_likelihood(model, x, preset="quick",
                                             num_temperatures=1000, batch_size=4,
                                             seed=3, verbose=0)
    exact = tfvi.evaluation.exact_log_likelihood(model, x)
    assert est.log_likelihood.shape == (10,) and est.log_likelihood.dtype == np.float64
    assert abs((est.log_likelihood - exact).mean()) < 0.05
    assert est.mean_acceptance > 0.45  # the trajectory cap may raise it above 0.6
    p = est.protocol
    assert (p["num_chains"], p["num_temperatures"], p["num_leapfrog_steps"],
            p["schedule"], p["seed"]) == (16, 1000, 10, "sigmoid", 3)
    json.dumps(p)  # ready for metrics.json
    assert tfvi.evaluation.AIS_PRESETS["wu"] == dict(
        num_chains=16, num_temperatures=10_000, num_leapfrog_steps=10, schedule="linear",
        num_pilot_chains=4)
    assert p["num_pilot_chains"] == 4
    with pytest.raises(ValueError, match="preset"):
        tfvi.evaluation.ais_log_likelihood(model, x, preset="slow")
