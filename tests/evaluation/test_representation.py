"""k-NN accuracy, reconstruction RMSE and k-means purity/NMI against hand-made truths."""

import numpy as np
import pytest

from tfvi.evaluation import cluster_scores, knn_accuracy, reconstruction_rmse


def _blobs(n, seed, spread=0.1):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    return centres[labels] + spread * rng.standard_normal((n, 2)), labels


def test_knn_accuracy_on_separated_and_on_uninformative_codes():
    z_tr, y_tr = _blobs(300, 0)
    z_te, y_te = _blobs(200, 1)
    assert knn_accuracy(z_tr, y_tr, z_te, y_te, k=5) == 1.0
    scores = knn_accuracy(z_tr, y_tr, z_te, y_te, k=[1, 3, 5, 10])
    assert scores == {1: 1.0, 3: 1.0, 5: 1.0, 10: 1.0}
    # Codes independent of the labels: chance level (1/3) within sampling error.
    rng = np.random.default_rng(2)
    chance = knn_accuracy(rng.standard_normal((3000, 2)), y_tr.repeat(10),
                          rng.standard_normal((3000, 2)), rng.integers(0, 3, 3000), k=5)
    assert abs(chance - 1 / 3) < 0.04


def test_knn_accuracy_hand_computed_1nn():
    z_tr = np.array([[0.0], [1.0], [10.0]])
    y_tr = np.array([0, 0, 1])
    z_te = np.array([[0.4], [9.0], [6.0]])
    y_te = np.array([0, 1, 0])
    # 1-NN predictions: 0, 1, 1 -> two of three correct.
    assert knn_accuracy(z_tr, y_tr, z_te, y_te, k=1) == pytest.approx(2 / 3)


def test_reconstruction_rmse_hand_computed():
    x = np.array([[0.0, 0.0], [1.0, 1.0]])
    x_rec = np.array([[1.0, 0.0], [1.0, 3.0]])
    assert reconstruction_rmse(x, x_rec) == pytest.approx(np.sqrt((1 + 4) / 4))
    assert reconstruction_rmse(x, x) == 0.0


def test_cluster_purity_and_nmi():
    z, y = _blobs(300, 3)
    perfect = cluster_scores(z, y, seed=0)
    assert perfect["purity"] == 1.0 and perfect["nmi"] == pytest.approx(1.0)
    rng = np.random.default_rng(4)
    noise = cluster_scores(rng.standard_normal((600, 2)), rng.integers(0, 3, 600), seed=0)
    assert noise["nmi"] < 0.05 and noise["purity"] < 0.45
    # Hand-computed purity: clusters {a, a, b} and {b, b} -> (2 + 2) / 5.
    z = np.array([[0.0], [0.1], [0.2], [10.0], [10.1]])
    labels = np.array([0, 0, 1, 1, 1])
    assert cluster_scores(z, labels, num_clusters=2)["purity"] == pytest.approx(4 / 5)


def test_representation_metrics_reject_bad_shapes():
    with pytest.raises(ValueError, match="y_train"):
        knn_accuracy(np.zeros((5, 2)), np.zeros(4), np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="latent_dim"):
        knn_accuracy(np.zeros((5, 2)), np.zeros(5), np.zeros((3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="`k`"):
        knn_accuracy(np.zeros((5, 2)), np.zeros(5), np.zeros((3, 2)), np.zeros(3), k=6)
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_rmse(np.zeros((2, 2)), np.zeros((2, 3)))
