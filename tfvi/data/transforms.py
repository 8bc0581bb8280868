"""Data transforms: fixed and dynamic binarisation."""

import numpy as np
import tensorflow as tf

from tfvi.types import ArrayLike

__all__ = ["bernoulli_draw", "binarize", "dynamic_binarization", "split_arrays"]


def binarize(probs: ArrayLike, seed: int) -> np.ndarray:
    """A fixed Bernoulli draw of `probs` (values in [0, 1]): float32 0/1 array.

    The same `seed` gives the same binarisation (the fixed test sets of Xu et al. B.1).
    """
    probs = np.asarray(probs, np.float32)
    if probs.size and (probs.min() < 0 or probs.max() > 1):
        raise ValueError(
            f"`probs` must lie in [0, 1]; got values in [{probs.min()}, {probs.max()}]."
        )
    rng = np.random.default_rng(seed)
    return (rng.random(probs.shape) < probs).astype(np.float32)


def bernoulli_draw(probs, seed):
    """`x ~ Bernoulli(probs)` elementwise, in-graph: `1[u < probs]` with `u` uniform on
    [0, 1) from `tf.random.stateless_uniform(shape(probs), seed)` (`seed`: shape [2],
    int32 or int64); `x` has `probs`' dtype. The same seed gives the same draw."""
    u = tf.random.stateless_uniform(tf.shape(probs), seed=seed, dtype=probs.dtype)
    return tf.cast(u < probs, probs.dtype)


def dynamic_binarization(dataset: tf.data.Dataset, seed: int) -> tf.data.Dataset:
    """Maps a dataset of pixel probabilities to fresh Bernoulli draws on every pass.

    Elements may be `probs` or `(probs, y)`; only `probs` is binarised. Each element
    gets its own stateless seed from `tf.data.Dataset.random(seed)`, re-randomised on
    every iteration, so epochs differ but the whole sequence is repeatable.
    """
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def draw(element, s):
        s = tf.cast(s % (2**31 - 1), tf.int32)
        if isinstance(element, tuple):
            probs, rest = element[0], element[1:]
        else:
            probs, rest = element, ()
        x = bernoulli_draw(probs, s)
        return (x,) + tuple(rest) if rest else x

    return tf.data.Dataset.zip((dataset, seeds)).map(
        draw, num_parallel_calls=tf.data.AUTOTUNE)


def split_arrays(probs: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray,
                 test_binarization_seed: int) -> dict:
    """The arrays of a grey-image data set split by the index arrays `train` / `test`:
    `train_probs`, `train_labels`, `test_probs`, `test_labels`, and `test_x`, the test
    images binarised once with `test_binarization_seed` (the fixed evaluation draw)."""
    return {
        "train_probs": probs[train],
        "train_labels": labels[train],
        "test_probs": probs[test],
        "test_labels": labels[test],
        "test_x": binarize(probs[test], test_binarization_seed),
    }
