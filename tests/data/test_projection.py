"""The PCA view: orthonormal axes, the variance kept against numpy's SVD, round trips,
fitting on the training split only."""

import numpy as np
import pytest

from tfvi.data.projection import apply_view, fit_pca, parse_view


def _data(n=300, d=12, seed=0):
    """Data with a known, decreasing spectrum: x = s * u @ R + offset."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    scales = np.geomspace(5.0, 0.1, d)
    return (rng.normal(size=(n, d)) * scales) @ rotation.T + 3.0


def test_components_are_orthonormal_and_ordered_by_variance():
    projection = fit_pca(_data(), 5)
    c = projection.components.astype(np.float64)
    np.testing.assert_allclose(c @ c.T, np.eye(5), atol=1e-5)
    assert np.all(np.diff(projection.explained_variance) <= 0)


def test_variance_fraction_matches_the_eigenvalues_of_the_covariance():
    x = _data()
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(x, rowvar=False)))[::-1]
    projection = fit_pca(x, 4)
    np.testing.assert_allclose(projection.explained_variance, eigenvalues[:4], rtol=1e-4)
    np.testing.assert_allclose(projection.variance_fraction,
                               eigenvalues[:4].sum() / eigenvalues.sum(), rtol=1e-5)
    # Variance of the training codes along each axis is the explained variance.
    np.testing.assert_allclose(projection.transform(x).var(axis=0, ddof=1),
                               eigenvalues[:4], rtol=1e-3)
    assert fit_pca(x, 12).variance_fraction == pytest.approx(1.0, abs=1e-6)


def test_images_round_trip_through_the_subspace():
    rng = np.random.default_rng(1)
    images = rng.uniform(size=(50, 4, 4, 1)).astype(np.float32)
    projection = fit_pca(images, 16)  # full rank: the round trip is exact
    codes = projection.transform(images)
    assert codes.shape == (50, 16)
    np.testing.assert_allclose(projection.inverse_transform(codes), images, atol=1e-4)
    low = fit_pca(images, 3)
    back = low.inverse_transform(low.transform(images))
    assert back.shape == images.shape
    # A projection: applying it twice changes nothing.
    np.testing.assert_allclose(low.inverse_transform(low.transform(back)), back, atol=1e-5)


def test_apply_view_fits_on_the_training_split_only():
    rng = np.random.default_rng(2)
    arrays = {"train_probs": rng.uniform(size=(40, 3, 3, 1)),
              "test_probs": rng.uniform(size=(10, 3, 3, 1)) + 100.0,
              "test_x": rng.uniform(size=(10, 3, 3, 1)),
              "train_labels": np.arange(40)}
    out, projection = apply_view("pca2", arrays)
    reference = fit_pca(arrays["train_probs"], 2)
    np.testing.assert_allclose(projection.mean, reference.mean, atol=1e-6)
    assert out["test_probs"].shape == (10, 2) and out["test_x"].shape == (10, 2)
    np.testing.assert_array_equal(out["train_labels"], arrays["train_labels"])


@pytest.mark.parametrize("bad", ["pca0", "pca", "pcaX", "20", "svd20"])
def test_bad_view_names_are_rejected(bad):
    with pytest.raises(ValueError, match="`view` must be 'pcaK'"):
        parse_view(bad)
    assert parse_view("pca20") == 20


def test_too_many_components_is_one_clear_error():
    with pytest.raises(ValueError, match="num_components"):
        fit_pca(_data(n=5, d=3), 4)
