"""Representation quality of latent codes (seed 003, sections 5.1 and 5.3):
k-nearest-neighbour classification accuracy, reconstruction RMSE, and k-means
cluster purity / normalised mutual information, all with scikit-learn.
"""

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from sklearn.neighbors import KNeighborsClassifier

from tfvi.types import ArrayLike

__all__ = ["knn_accuracy", "reconstruction_rmse", "cluster_scores", "latent_codes"]


def _check_pairs(name_z, z, name_y, y):
    z = np.asarray(z)
    y = np.asarray(y)
    if z.ndim != 2:
        raise ValueError(f"`{name_z}` must have shape [num_points, latent_dim]; got {z.shape}.")
    if y.shape != (z.shape[0],):
        raise ValueError(
            f"`{name_y}` must have shape [{z.shape[0]}] (one label per row of `{name_z}`); "
            f"got {y.shape}.")
    return z, y


def knn_accuracy(z_train: ArrayLike, y_train: ArrayLike, z_test: ArrayLike,
                 y_test: ArrayLike, k: int | Sequence[int] = 5) -> float | dict[int, float]:
    """Test accuracy of a k-NN classifier (Euclidean) fitted on the training codes.

    Args:
      z_train, y_train: `[n, d]` codes and `[n]` labels to fit on.
      z_test, y_test: `[m, d]` codes and `[m]` labels to score.
      k: an int, or a list/tuple of ints (seed 003 tries 1, 3, 5, 10).

    Returns:
      A float for an int `k`; a dict `{k: accuracy}` for a list.
    """
    z_train, y_train = _check_pairs("z_train", z_train, "y_train", y_train)
    z_test, y_test = _check_pairs("z_test", z_test, "y_test", y_test)
    if z_train.shape[1] != z_test.shape[1]:
        raise ValueError(
            f"`z_train` and `z_test` must have the same latent_dim; got "
            f"{z_train.shape[1]} and {z_test.shape[1]}.")
    scalar = isinstance(k, (int, np.integer)) and not isinstance(k, bool)
    ks = [k] if scalar else list(k)
    for kk in ks:
        if isinstance(kk, bool) or not isinstance(kk, (int, np.integer)) or not 1 <= kk <= len(z_train):
            raise ValueError(
                f"`k` must be an int (or list of ints) in [1, {len(z_train)}]; got {k!r}.")
    scores = {}
    for kk in ks:
        clf = KNeighborsClassifier(n_neighbors=int(kk)).fit(z_train, y_train)
        scores[int(kk)] = float(np.mean(clf.predict(z_test) == y_test))
    return scores[int(k)] if scalar else scores


def reconstruction_rmse(x: ArrayLike, x_reconstructed: ArrayLike) -> float:
    """Root-mean-squared error over all examples and dimensions (seed 003 Fig. 2c):
    sqrt(mean_{i,j} (x_ij - x'_ij)^2)."""
    x = np.asarray(x, dtype=np.float64)
    x_reconstructed = np.asarray(x_reconstructed, dtype=np.float64)
    if x.shape != x_reconstructed.shape:
        raise ValueError(
            f"`x` and `x_reconstructed` must have the same shape; got {x.shape} and "
            f"{x_reconstructed.shape}.")
    return float(np.sqrt(np.mean((x - x_reconstructed) ** 2)))


def cluster_scores(z: ArrayLike, labels: ArrayLike, num_clusters: int | None = None,
                   seed: int = 0) -> dict[str, float]:
    """k-means on the codes, scored against the labels.

    Returns `{"purity": ..., "nmi": ...}`: purity is the fraction of points whose
    cluster's majority label is their own; NMI is scikit-learn's normalised mutual
    information (arithmetic normalisation). `num_clusters` defaults to the number of
    distinct labels.
    """
    z, labels = _check_pairs("z", z, "labels", labels)
    classes = np.unique(labels)
    num_clusters = len(classes) if num_clusters is None else num_clusters
    if isinstance(num_clusters, bool) or not isinstance(num_clusters, (int, np.integer)) \
            or not 1 <= num_clusters <= len(z):
        raise ValueError(f"`num_clusters` must be an int in [1, {len(z)}]; got {num_clusters!r}.")
    assignment = KMeans(n_clusters=int(num_clusters), n_init=10, random_state=seed).fit_predict(z)
    majority = 0
    for c in range(int(num_clusters)):
        members = labels[assignment == c]
        if members.size:
            majority += np.max(np.unique(members, return_counts=True)[1])
    return {"purity": float(majority / len(labels)),
            "nmi": float(normalized_mutual_info_score(labels, assignment))}


def latent_codes(model: keras.Model, x: ArrayLike, batch_size: int = 1000,
                 sample: bool = False, seed: int = 0) -> np.ndarray:
    """Codes of `x` under a tfvi model's encoder: the posterior mean (default) or one
    sample z ~ q(z|x) (what KSG MI is computed on), as a numpy `[n, latent_dim]`."""
    import tensorflow as tf

    out = []
    for start in range(0, len(x), batch_size):
        q = model.encoder(tf.convert_to_tensor(x[start:start + batch_size], tf.float32))
        if sample:
            z = q.sample(seed=tf.constant([seed, start], tf.int32))
        else:
            z = q.mean()
        out.append(np.asarray(z))
    return np.concatenate(out, axis=0)
