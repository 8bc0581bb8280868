"""Representation quality of latent codes (Livne et al., sections 5.1 and 5.3):
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

__all__ = ["knn_accuracy", "reconstruction_rmse", "cluster_scores", "latent_codes",
           "reconstructions", "representation_metrics"]


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
      k: an int, or a list/tuple of ints (Livne et al. tries 1, 3, 5, 10).

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
    """Root-mean-squared error over all examples and dimensions (Livne et al. Fig. 2c):
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
    """Codes of `x` under a tfvi model's encoder: the posterior mean (default; a flow
    posterior, which has no analytic mean, gives its `point_estimate` as the model's
    `call` does) or one sample z ~ q(z|x) (what KSG MI is computed on), as a numpy
    `[n, latent_dim]`."""
    out = []
    for start in range(0, len(x), batch_size):
        xb = tf.convert_to_tensor(x[start:start + batch_size], tf.float32)
        if sample:
            z = model.encoder(xb).sample(seed=tf.constant([seed, start], tf.int32))
        elif hasattr(model.encoder, "point_estimate"):
            z = model.encoder.point_estimate(xb)
        else:
            z = model.encoder(xb).mean()
        out.append(np.asarray(z))
    return np.concatenate(out, axis=0)


def reconstructions(model, x, seed=0, batch_size=1000):
    """Mean of p(x|z) at one sample z ~ q(z|x), `[n, D]` (Livne et al., MIM, Fig. 1's
    reconstructions), or None when the decoder's distribution has no closed-form
    mean (e.g. a known likelihood)."""
    out = []
    for start in range(0, len(x), batch_size):
        q = model.encoder(tf.convert_to_tensor(x[start:start + batch_size], tf.float32))
        z = q.sample(seed=tf.constant([seed, 3 + start], tf.int32))
        try:
            out.append(np.asarray(model.decoder(z).mean()))
        except (NotImplementedError, AttributeError):
            return None
    return np.concatenate(out, axis=0)


def representation_metrics(model, x, targets=None, labels=None, train_codes=None,
                           train_labels=None, ksg_points=3000, knn_k=(1, 3, 5, 10),
                           seed=0):
    """The representation figures of Livne et al. (MIM, sections 5.1 and 5.3) for any
    model with an encoder q(z|x) (and a decoder for the RMSE), so runs of different
    families compare on the same columns.

    Args:
      model: a tfvi model with `encoder` (and `decoder`).
      x: `[n, D]` inputs of the split.
      targets: `[n, D']` reconstruction targets (default `x`); pass `False` to skip
        the RMSE (e.g. a classifier's decoder predicts labels).
      labels: optional `[n]` class labels: k-NN accuracy on posterior means (fitted
        on `train_codes` / `train_labels`) and k-means purity / NMI.
      ksg_points: at most this many (x, z ~ q(z|x)) pairs for the KSG estimate.

    Returns:
      `{"ksg_mutual_information", "reconstruction_rmse", "knn{k}_accuracy",
      "kmeans_purity", "kmeans_nmi"}` (entries that do not apply are left out).
    """
    from tfvi.evaluation.mutual_information import ksg_mutual_information

    def flat(a):  # images as vectors
        a = np.asarray(a)
        return a.reshape(len(a), -1)

    out = {"ksg_mutual_information": ksg_mutual_information(
        flat(x), latent_codes(model, x, sample=True, seed=seed), k=5, max_points=ksg_points,
        seed=seed)}
    if targets is not False and hasattr(model, "decoder"):
        rec = reconstructions(model, x, seed)
        if rec is not None:
            out["reconstruction_rmse"] = reconstruction_rmse(
                flat(x if targets is None else targets), flat(rec))
    if labels is not None and train_codes is not None and train_labels is not None:
        codes = latent_codes(model, x)
        labels = np.asarray(labels)
        ks = [k for k in knn_k if k <= len(train_codes)]
        for k, acc in knn_accuracy(train_codes, train_labels, codes, labels, k=ks).items():
            out[f"knn{k}_accuracy"] = acc
        if len(np.unique(labels)) <= len(codes):
            scores = cluster_scores(codes, labels, seed=seed)
            out["kmeans_purity"], out["kmeans_nmi"] = scores["purity"], scores["nmi"]
    return out
