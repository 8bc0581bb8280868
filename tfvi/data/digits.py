"""scikit-learn's bundled 8x8 handwritten digits: the offline default data set.

1797 images of 64 pixels with 17 grey levels, scaled to [0, 1] pixel probabilities.
A fixed seeded split gives `test_size` test images; training batches are binarised
dynamically (a fresh Bernoulli draw each epoch) and the test set once, with a fixed
seed (the protocol of Xu et al., B.1).
"""

import numpy as np
import tensorflow as tf

from tfvi.data.transforms import dynamic_binarization, split_arrays

__all__ = ["load_digits", "digits_dataset", "DIGITS_DIM"]

DIGITS_DIM = 64


def load_digits(test_size: int = 297, split_seed: int = 0,
                test_binarization_seed: int = 1) -> dict[str, np.ndarray]:
    """The digits as numpy arrays.

    Returns:
      dict with `train_probs` `[N_train, 64]` float32 in [0, 1], `train_labels`,
      `test_probs`, `test_labels`, and `test_x`: the fixed binarisation of the test
      probabilities (float32 0/1).
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    data = _sk_load_digits()
    probs = (data.data / 16.0).astype(np.float32)
    labels = data.target.astype(np.int32)
    if not 0 < test_size < len(probs):
        raise ValueError(f"`test_size` must be in (0, {len(probs)}); got {test_size}.")
    order = np.random.default_rng(split_seed).permutation(len(probs))
    test, train = order[:test_size], order[test_size:]
    return split_arrays(probs, labels, train, test, test_binarization_seed)


def digits_dataset(split: str = "train", batch_size: int = 100, seed: int = 0,
                   with_labels: bool = False, shuffle: bool = True,
                   arrays: dict[str, np.ndarray] | None = None) -> tf.data.Dataset:
    """A `tf.data.Dataset` of binarised digits batches `[batch, 64]` (float32 0/1).

    `split="train"`: shuffled, dynamically binarised each epoch. `split="test"`: the
    fixed binarisation, in order. With `with_labels` elements are `(x, label)`.
    """
    if split not in ("train", "test"):
        raise ValueError(f"`split` must be 'train' or 'test'; got {split!r}.")
    arrays = arrays or load_digits()
    if split == "train":
        x, labels = arrays["train_probs"], arrays["train_labels"]
    else:
        x, labels = arrays["test_x"], arrays["test_labels"]
    ds = tf.data.Dataset.from_tensor_slices((x, labels) if with_labels else x)
    if split == "train":
        if shuffle:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        ds = dynamic_binarization(ds, seed=seed)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
