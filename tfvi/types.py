"""Type aliases of tfvi's public signatures (the package ships `py.typed`).

`TensorLike` is what TensorFlow converts to a tensor (`tf.Tensor`, numpy arrays, Python
numbers and nested lists); `ArrayLike` is numpy's (what `np.asarray` accepts).
"""

import numpy.typing as npt
import tensorflow as tf

__all__ = ["ArrayLike", "TensorLike"]

TensorLike = tf.types.experimental.TensorLike
ArrayLike = npt.ArrayLike
