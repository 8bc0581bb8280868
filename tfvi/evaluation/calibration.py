"""Posterior predictive classification: class probabilities, accuracy, and the
expected calibration error of Morningstar et al., B.1 (`tfvi.plots.plot_reliability_diagram`
draws its reliability diagram).

Posterior predictive (B.1, "Evaluation"): for an encoder q(z|x) and classifier
p(y|z),

    p(y|x) ~= (1/S) sum_s p(y|z_s),   z_s ~ q(z|x)      (S = 10^4 in the paper),

`[N, num_classes]`; the prediction is its argmax.

ECE as B.1 defines it: the examples are ranked by the predicted probability of
their *true* class `p(y_true)`, split into `bins` bins of equal count (10% each for
10 bins); in each bin the confidence is the mean `p(y_true)` and the "probability of
the truth" the fraction of correct (argmax) predictions; ECE is the average over
bins of `|confidence - accuracy|`. Note that this ranks by confidence in the true
class, not in the predicted class as Guo et al. (2017) do (`rank_by="predicted"`
gives Guo's equal-count variant). Under B.1's definition a predictor is calibrated
when, among examples with `p(y_true) = c`, a fraction c is classified correctly.
"""

import keras
import numpy as np
import tensorflow as tf

from tfvi.types import ArrayLike

__all__ = ["posterior_predictive", "accuracy", "expected_calibration_error",
           "calibration_bins"]


def _check_probs_labels(probs, labels):
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2:
        raise ValueError(f"`probs` must have shape [N, num_classes]; got {probs.shape}.")
    if labels.shape != (probs.shape[0],):
        raise ValueError(
            f"`labels` must have shape [{probs.shape[0]}]; got {labels.shape}.")
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(
            f"`labels` must be integers in [0, {probs.shape[1]}); got values in "
            f"[{labels.min()}, {labels.max()}].")
    return probs, labels.astype(np.int64)


def calibration_bins(probs: ArrayLike, labels: ArrayLike, bins: int = 10,
                     rank_by: str = "true_class") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin `(confidence, accuracy, count)` arrays, `[bins]` each (see module doc).

    Args:
      probs: `[N, num_classes]` predicted class probabilities.
      labels: `[N]` integer labels.
      bins: number of equal-count bins (N must be at least `bins`).
      rank_by: "true_class" (B.1: confidence = p(y_true)) or "predicted"
        (Guo et al.: confidence = max_c p(c)).
    """
    probs, labels = _check_probs_labels(probs, labels)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins <= 0:
        raise ValueError(f"`bins` must be a positive integer; got {bins!r}.")
    if len(labels) < bins:
        raise ValueError(f"Need at least `bins`={bins} examples; got {len(labels)}.")
    if rank_by not in ("true_class", "predicted"):
        raise ValueError(
            f"`rank_by` must be 'true_class' or 'predicted'; got {rank_by!r}.")
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    if rank_by == "true_class":
        confidence = probs[np.arange(len(labels)), labels]
    else:
        confidence = probs.max(axis=1)
    order = np.argsort(confidence, kind="stable")
    groups = np.array_split(order, bins)
    conf = np.array([confidence[g].mean() for g in groups])
    acc = np.array([correct[g].mean() for g in groups])
    count = np.array([len(g) for g in groups])
    return conf, acc, count


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike, bins: int = 10,
                               rank_by: str = "true_class") -> float:
    """ECE of Morningstar et al., B.1: mean over `bins` equal-count bins, ranked by the
    confidence in the true class, of |mean p(y_true) - fraction correct|. Float."""
    conf, acc, _ = calibration_bins(probs, labels, bins, rank_by)
    return float(np.mean(np.abs(conf - acc)))


def accuracy(probs: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of examples whose argmax class is the label."""
    probs, labels = _check_probs_labels(probs, labels)
    return float(np.mean(probs.argmax(axis=1) == labels))


def posterior_predictive(model: keras.Model, x: ArrayLike, num_samples: int = 10_000,
                         batch_size: int = 100, max_chunk_elements: int = 200_000,
                         seed: int = 0, verbose: int = 0) -> np.ndarray:
    """Monte Carlo posterior predictive `(1/S) sum_s p(y|z_s)`, `z_s ~ q(z|x)`.

    Args:
      model: anything with `encoder` (returning q(z|x)) and `decoder` (a classifier
        layer returning a `tfd.Categorical` over classes), e.g. `VIBClassifier`.
      x: `[N, input_dim]` inputs.
      num_samples: S posterior samples per example (drawn ancestrally from mixtures).
      batch_size: examples per step.
      max_chunk_elements: bounds samples x batch per chunk (memory).
      seed: integer seed; the result is a deterministic function of it.
      verbose: 1 shows a progress bar.

    Returns:
      numpy float32 `[N, num_classes]`, rows summing to 1.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
        raise ValueError(f"`num_samples` must be a positive integer; got {num_samples!r}.")
    x = np.asarray(x, np.float32)
    if x.ndim < 2:
        raise ValueError(f"`x` must have shape [N, input_dim]; got {x.shape}.")
    chunk = max(1, min(num_samples, max_chunk_elements // batch_size))

    @tf.function
    def chunk_sum(xb, n, s):
        z = model.encoder(xb).sample(n, seed=s)  # [n, batch, d]
        return tf.reduce_sum(model.decoder(z).probs_parameter(), axis=0)

    out = []
    bar = keras.utils.Progbar(len(x)) if verbose else None
    for b, start in enumerate(range(0, len(x), batch_size)):
        xb = tf.constant(x[start:start + batch_size])
        total, done = 0.0, 0
        while done < num_samples:
            n = min(chunk, num_samples - done)
            s = tf.constant([seed, b * 1_000_003 + done], tf.int32)
            total = total + chunk_sum(xb, n, s).numpy().astype(np.float64)
            done += n
        out.append(total / num_samples)
        if bar is not None:
            bar.add(len(xb))
    return np.concatenate(out).astype(np.float32)
