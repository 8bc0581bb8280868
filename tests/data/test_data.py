"""Bundled digits and synthetic sets: splits, binarisation, and their known densities."""

import numpy as np
import pytest
from scipy import integrate

from tfvi import data, evaluation


def test_digits_split_is_fixed_disjoint_and_binarised():
    a, b = data.load_digits(), data.load_digits()
    assert a["train_probs"].shape == (1500, 64) and a["test_x"].shape == (297, 64)
    np.testing.assert_array_equal(a["test_x"], b["test_x"])
    assert set(np.unique(a["test_x"])) == {0.0, 1.0}
    assert 0.0 <= a["train_probs"].min() and a["train_probs"].max() <= 1.0
    train_rows = {r.tobytes() for r in a["train_probs"]}
    assert sum(r.tobytes() in train_rows for r in a["test_probs"]) < 5  # digits has a few duplicates


def test_dynamic_binarisation_changes_each_epoch_but_repeats_across_runs():
    arrays = data.load_digits()

    def two_epochs():
        ds = data.digits_dataset("train", batch_size=1500, seed=4, arrays=arrays, shuffle=False)
        return [next(iter(ds)).numpy() for _ in range(2)]

    first, second = two_epochs(), two_epochs()
    assert not np.array_equal(first[0], first[1])
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert set(np.unique(first[0])) == {0.0, 1.0}
    # A Bernoulli draw of the pixel probabilities: the means agree.
    np.testing.assert_allclose(first[0].mean(0), arrays["train_probs"].mean(0), atol=0.05)


def test_digits_dataset_rejects_unknown_split():
    with pytest.raises(ValueError, match="`split` must be 'train' or 'test'"):
        data.digits_dataset("valid")


@pytest.mark.parametrize("sigma", [0.1, 0.5])
def test_abs_toy_marginal_is_a_normalised_density_matching_samples(sigma):
    total, _ = integrate.quad(lambda v: np.exp(data.abs_toy_log_marginal([[v]], sigma)[0]),
                              -10, 10, points=[0.0], limit=200)
    assert total == pytest.approx(1.0, abs=1e-6)
    x, _ = data.abs_toy(200_000, dim=1, sigma=sigma, seed=1)
    hist, edges = np.histogram(x[:, 0], bins=40, range=(-1, 3), density=True)
    centres = (edges[:-1] + edges[1:]) / 2
    np.testing.assert_allclose(hist, np.exp(data.abs_toy_log_marginal(centres[:, None], sigma)),
                               atol=0.02)


def test_linear_gaussian_marginal_matches_monte_carlo():
    x, p = data.linear_gaussian(3, latent_dim=2, data_dim=3, noise_scale=0.8, seed=2)
    z = np.random.default_rng(0).standard_normal((400_000, 2))
    mean = z @ p["weights"] + p["bias"]
    log_lik = (-0.5 * ((x[:, None, :] - mean[None]) / 0.8) ** 2
               - np.log(0.8) - 0.5 * np.log(2 * np.pi)).sum(-1)
    monte_carlo = np.log(np.exp(log_lik).mean(1))
    np.testing.assert_allclose(evaluation.linear_gaussian_log_marginal(x, **p), monte_carlo,
                               atol=0.01)


def test_gmm2d_has_five_components_of_std_025():
    x, labels = data.gmm2d(20_000, seed=0)
    assert set(np.unique(labels)) == set(range(5))
    for k in range(5):
        np.testing.assert_allclose(x[labels == k].std(0), 0.25, atol=0.01)


@pytest.mark.parametrize("layout", ["circle", "paper"])
def test_gmm2d_layouts_and_log_density(layout):
    """Component means are the layout's; the log-density integrates to 1 on a grid and
    equals the TFP mixture's."""
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    centers = data.GMM2D_LAYOUTS[layout]
    x, labels = data.gmm2d(20_000, seed=1, layout=layout)
    for k in range(5):
        np.testing.assert_allclose(x[labels == k].mean(0), centers[k], atol=0.02)
    axis = np.linspace(-4, 4, 401)
    grid = np.stack(np.meshgrid(axis, axis), -1)
    mass = np.exp(data.gmm2d_log_density(grid, layout)).sum() * (axis[1] - axis[0]) ** 2
    assert mass == pytest.approx(1.0, abs=1e-4)
    mixture = tfd.MixtureSameFamily(
        tfd.Categorical(logits=np.zeros(5)),
        tfd.MultivariateNormalDiag(centers.astype(np.float64), np.full((5, 2), 0.25)))
    np.testing.assert_allclose(data.gmm2d_log_density(x[:100], layout),
                               mixture.log_prob(x[:100].astype(np.float64)), rtol=1e-6)


def test_gmm2d_rejects_an_unknown_layout():
    with pytest.raises(ValueError, match="`layout` must be one of"):
        data.gmm2d(10, layout="square")
    with pytest.raises(ValueError, match=r"`layout` as means must have shape \[C, 2\]"):
        data.gmm2d(10, layout=np.zeros((3, 3)))


def test_binarize_rejects_values_outside_the_unit_interval():
    with pytest.raises(ValueError, match=r"`probs` must lie in \[0, 1\]"):
        data.binarize(np.array([0.5, 1.5]), seed=0)


def test_style_modality_targets_are_other_images_of_the_same_class():
    """Morningstar et al. C.7: each target is a random training image of the input's class."""
    d = data.load_digits()
    x, labels = d["train_probs"], d["train_labels"]
    partner = data.views.same_class_partners(labels, seed=0)
    targets = data.views.same_class_random_targets(x, labels, seed=0)
    np.testing.assert_array_equal(targets, x[partner])
    np.testing.assert_array_equal(labels[partner], labels)  # same class, always
    # A uniform draw within its class returns the input itself with probability
    # 1/n_c: C/N ~ 10/1500 of the examples on average, not the input in general.
    expected_self = len(np.unique(labels)) / len(labels)
    self_rate = np.mean(np.all(targets == x, axis=1))
    assert self_rate < 4 * expected_self + 0.01
    # Every member of a class is reachable as a target (a uniform draw, not a fixed
    # pairing): over 20 seeds the partners cover at least 95% of each class.
    seen = np.zeros(len(labels), bool)
    for seed in range(20):
        seen[data.views.same_class_partners(labels, seed=seed)] = True
    assert seen.mean() > 0.95
    assert not np.array_equal(partner, data.views.same_class_partners(labels, seed=1))
    with pytest.raises(ValueError, match="labels"):
        data.views.same_class_random_targets(x, labels[:-1])
