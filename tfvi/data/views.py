"""Pure array views and targets for Morningstar et al.'s tasks (numpy in, numpy out).

* `single_column(x, image_shape)`: the centre column of each image, the encoder input
  of the single-column tasks (B.1, B.2); column `W // 2`, the pixels
  `centre_column_indices(image_shape)` name (the launcher's input pipeline gathers the
  same ones).
* `same_class_partners(labels, seed)` / `same_class_random_targets(x, labels, seed)`:
  for each example a random image of the same class, the target of the style-modality
  task (C.7).
"""

import numpy as np

from tfvi.types import ArrayLike

__all__ = ["centre_column_indices", "single_column", "same_class_partners",
           "same_class_random_targets"]


def _image_shape(image_shape):
    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 2:
        shape = shape + (1,)
    if len(shape) != 3 or min(shape) <= 0:
        raise ValueError(
            f"`image_shape` must be (H, W) or (H, W, C) with positive sizes; got {image_shape!r}.")
    return shape


def centre_column_indices(image_shape: tuple[int, ...]) -> np.ndarray:
    """Positions `[H*C]` of column `W // 2` in a flattened `[H*W*C]` image, row by row."""
    h, w, c = _image_shape(image_shape)
    return np.arange(h * w * c).reshape(h, w, c)[:, w // 2, :].reshape(h * c)


def single_column(x: ArrayLike, image_shape: tuple[int, int] = (8, 8)) -> np.ndarray:
    """`[N, H*W*C]` flattened images -> their centre column `[N, H*C]` (column W // 2)."""
    h, w, c = _image_shape(image_shape)
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != h * w * c:
        raise ValueError(
            f"`x` must have shape [N, {h * w * c}] for image_shape {image_shape}; got {x.shape}.")
    return x[:, centre_column_indices(image_shape)]


def same_class_partners(labels: ArrayLike, seed: int = 0) -> np.ndarray:
    """Index `[N]` of a random example with the same label, for each example."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"`labels` must have shape [N]; got {labels.shape}.")
    rng = np.random.default_rng(seed)
    partner = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        partner[idx] = rng.choice(idx, size=len(idx))
    return partner


def same_class_random_targets(x: ArrayLike, labels: ArrayLike,
                              seed: int = 0) -> np.ndarray:
    """`x[partner]`: each example's target is a random image of its own class (C.7)."""
    x = np.asarray(x)
    if len(x) != len(labels):
        raise ValueError(f"`x` has {len(x)} examples but `labels` has {len(labels)}.")
    return x[same_class_partners(labels, seed)]
