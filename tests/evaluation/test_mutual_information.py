"""KSG mutual information against the analytic MI of correlated Gaussians."""

import numpy as np
import pytest

from tfvi.evaluation import ksg_mutual_information


def _correlated_gaussians(n, dim, rho, seed):
    """x, z in R^dim with corr(x_i, z_i) = rho, independent across i:
    I(x; z) = -dim/2 log(1 - rho^2)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim))
    z = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal((n, dim))
    return x, z, -0.5 * dim * np.log(1 - rho**2)


@pytest.mark.parametrize("dim", [1, 2])
def test_ksg_matches_analytic_mi_of_correlated_gaussians(dim):
    x, z, truth = _correlated_gaussians(3000, dim, 0.8, seed=dim)
    estimate = ksg_mutual_information(x, z, k=5)
    assert abs(estimate - truth) < 0.05, (estimate, truth)


def test_ksg_downward_bias_in_six_joint_dimensions_shrinks_with_more_points():
    # dim = 3 (a 6-D joint space, MI = 1.53 nats): KSG's known finite-sample bias is
    # about -0.1 nats at 3000 points (measured over seeds: 1.37-1.45) and shrinks as
    # N grows, as a consistent estimator's must.
    x, z, truth = _correlated_gaussians(12000, 3, 0.8, seed=0)
    small = ksg_mutual_information(x[:3000], z[:3000], k=5)
    large = ksg_mutual_information(x, z, k=5, max_points=12000)
    assert -0.2 < small - truth < 0.0
    assert abs(large - truth) < abs(small - truth)
    assert abs(large - truth) < 0.1


def test_ksg_is_near_zero_for_independent_variables_and_symmetric():
    rng = np.random.default_rng(0)
    x, z = rng.standard_normal((2000, 2)), rng.standard_normal((2000, 2))
    assert abs(ksg_mutual_information(x, z)) < 0.05
    x, z, _ = _correlated_gaussians(2000, 2, 0.8, seed=7)
    # I(x; z) = I(z; x); with the max-norm the estimator is symmetric too.
    np.testing.assert_allclose(ksg_mutual_information(x, z),
                               ksg_mutual_information(z, x), atol=1e-6)


def test_ksg_subsamples_to_max_points_and_is_repeatable():
    x, z, truth = _correlated_gaussians(10000, 2, 0.8, seed=3)
    a = ksg_mutual_information(x, z, max_points=2000, seed=1)
    assert a == ksg_mutual_information(x, z, max_points=2000, seed=1)
    assert a != ksg_mutual_information(x, z, max_points=2000, seed=2)
    assert abs(a - truth) < 0.1


def test_ksg_rejects_bad_arguments():
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="same number of points"):
        ksg_mutual_information(x, np.zeros((9, 2)))
    with pytest.raises(ValueError, match="`k`"):
        ksg_mutual_information(x, x, k=0)
    with pytest.raises(ValueError, match="max_points"):
        ksg_mutual_information(x, x, k=5, max_points=3)
    with pytest.raises(ValueError, match="shape"):
        ksg_mutual_information(np.zeros((10, 2, 2)), x)


def test_encoder_mutual_information_limits_and_gaussian_value():
    import tensorflow_probability as tfp

    from tfvi.evaluation import encoder_mutual_information

    tfd = tfp.distributions

    class _Model:
        def __init__(self, loc_fn, scale):
            self.loc_fn, self.scale = loc_fn, scale

        def encoder(self, x):
            loc = self.loc_fn(x)
            return tfd.MultivariateNormalDiag(loc, self.scale * np.ones_like(loc))

    n = 400
    x = np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32)
    # z independent of x: every log q(z_i|x_n) is the same, I = 0 exactly.
    assert abs(encoder_mutual_information(_Model(lambda v: 0.0 * v, 1.0), x)) < 1e-9
    # Codes far apart relative to their spread: q(z) is N separated bumps, I = log N.
    far = encoder_mutual_information(_Model(lambda v: 1e3 * v, 1e-3), x)
    np.testing.assert_allclose(far, np.log(n), atol=1e-6)
    # x ~ N(0, I), z = x + N(0, s^2): the population value 0.5 log(1 + 1/s^2) per
    # dimension; with N points the plug-in q(z) is a KDE, within 0.1 nats at s = 0.5.
    big = np.random.default_rng(1).standard_normal((3000, 2)).astype(np.float32)
    est = encoder_mutual_information(_Model(lambda v: v, 0.5), big, seed=3)
    assert abs(est - 2 * 0.5 * np.log(1 + 1 / 0.25)) < 0.1
    with pytest.raises(ValueError, match="num_points"):
        encoder_mutual_information(_Model(lambda v: v, 1.0), x[:1])


def test_shrunk_codes_bias_ksg_unless_standardized():
    # The MI is invariant to rescaling z; the raw estimator is not (codes 100x smaller
    # than the data lose most of their estimated MI, as a MIM encoder's shrunk codes
    # do), the standardised one is, and it stays near the truth.
    x, z, truth = _correlated_gaussians(2000, 2, 0.8, seed=11)
    raw, shrunk = ksg_mutual_information(x, z), ksg_mutual_information(x, 0.01 * z)
    assert abs(raw - truth) < 0.05 and shrunk < 0.5 * truth
    np.testing.assert_allclose(
        ksg_mutual_information(x, 0.01 * z, standardize=True),
        ksg_mutual_information(3.0 * x, z, standardize=True), atol=1e-9)
    assert abs(ksg_mutual_information(x, 0.01 * z, standardize=True) - truth) < 0.05
