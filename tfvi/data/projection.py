"""A PCA view of any data set: examples projected onto their top principal components.

Livne, Swersky & Fleet ("MIM: Mutual Information Machine", Fig. 3) compare MIM and a
VAE on images projected onto a 20-D linear subspace (their Fashion-MNIST projection
keeps 78.5% of the variance), where the KSG mutual-information estimator still works.
`fit_pca` finds the subspace on the training split only (mean and principal axes by
an SVD of the centred training matrix; each axis signed so that its largest-magnitude
entry is positive, so a refit on the same data gives the same codes);
`apply_view("pca20", arrays)` is the one call
behind a `--view=pca20` flag: it fits on `train_probs` and projects every example
array of a tfvi data dict (`load_digits`, `load_mnist5k`, ...).

    codes = (x - mean) @ components.T,    x_hat = codes @ components + mean,

with `x` flattened to `[N, D]`, `components` `[k, D]` orthonormal rows and
`variance_fraction` = (variance along the k axes) / (total variance), both on the
training split.
"""

import dataclasses
import re

import numpy as np

from tfvi.validation import check_positive_int

__all__ = ["PCAProjection", "apply_view", "fit_pca", "is_pca_view", "parse_view"]

_VIEW = re.compile(r"pca([1-9][0-9]*)$")
# Example arrays of a tfvi data dict that a view projects (labels are kept as they are).
_EXAMPLE_SUFFIXES = ("_probs", "_x")


@dataclasses.dataclass(frozen=True)
class PCAProjection:
    """A fitted PCA subspace. `mean` `[D]`, `components` `[k, D]` (orthonormal rows,
    by decreasing variance), `explained_variance` `[k]` (training variance along each
    axis), `variance_fraction` (their sum over the total training variance), and
    `example_shape` (the shape of one example before flattening)."""

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    variance_fraction: float
    example_shape: tuple

    @property
    def num_components(self):
        return len(self.components)

    def _flat(self, x):
        x = np.asarray(x, np.float32)
        if x.shape[1:] != self.example_shape:
            raise ValueError(f"`x` must have shape [N, {', '.join(map(str, self.example_shape))}]"
                             f"; got {x.shape}.")
        return x.reshape(len(x), -1)

    def transform(self, x):
        """`[N, *example_shape]` -> codes `[N, k]` float32."""
        return ((self._flat(x) - self.mean) @ self.components.T).astype(np.float32)

    def inverse_transform(self, codes):
        """codes `[N, k]` -> the projected examples `[N, *example_shape]`."""
        codes = np.asarray(codes, np.float32)
        if codes.ndim != 2 or codes.shape[1] != self.num_components:
            raise ValueError(f"`codes` must have shape [N, {self.num_components}]; got "
                             f"{codes.shape}.")
        flat = codes @ self.components + self.mean
        return flat.reshape((len(codes),) + self.example_shape).astype(np.float32)


def fit_pca(x_train, num_components):
    """The top `num_components` principal axes of `x_train` `[N, *shape]` (N >= 2)."""
    num_components = check_positive_int("num_components", num_components)
    x = np.asarray(x_train, np.float64)
    if x.ndim < 2 or len(x) < 2:
        raise ValueError(f"`x_train` must have shape [N, ...] with N >= 2; got {x.shape}.")
    flat = x.reshape(len(x), -1)
    if num_components > min(flat.shape):
        raise ValueError(f"`num_components` must be at most min(N, D) = {min(flat.shape)}; "
                         f"got {num_components}.")
    mean = flat.mean(axis=0)
    _, singular, vt = np.linalg.svd(flat - mean, full_matrices=False)
    # An axis's sign is arbitrary (and LAPACK's choice may differ between builds): fix it
    # so each axis's largest-magnitude entry is positive, making a refit reproducible.
    vt = vt * np.where(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
    variance = singular ** 2 / (len(flat) - 1)
    total = variance.sum()
    kept = variance[:num_components]
    return PCAProjection(
        mean=mean.astype(np.float32), components=vt[:num_components].astype(np.float32),
        explained_variance=kept.astype(np.float32),
        variance_fraction=float(kept.sum() / total) if total > 0 else 1.0,
        example_shape=tuple(x.shape[1:]))


def parse_view(view):
    """`"pcaK"` -> K (a positive int); anything else a ValueError naming `view`."""
    match = _VIEW.match(str(view))
    if match is None:
        raise ValueError(f"`view` must be 'pcaK' with K a positive int (e.g. 'pca20'); "
                         f"got {view!r}.")
    return int(match.group(1))


def is_pca_view(view):
    """True for a "pcaK" view name."""
    return _VIEW.match(str(view)) is not None


def apply_view(view, arrays, train_key="train_probs"):
    """The data dict `arrays` seen through `view` ("pca20": 20 principal components).

    Fits the PCA on `arrays[train_key]` only, then projects every array whose key ends
    in `_probs` or `_x` to codes `[N, K]`; other entries (labels) are kept. Returns
    `(new_arrays, projection)`; `projection.variance_fraction` is the training variance
    kept.
    """
    if train_key not in arrays:
        raise ValueError(f"`arrays` has no {train_key!r} entry to fit the view on; keys: "
                         f"{sorted(arrays)}.")
    projection = fit_pca(arrays[train_key], parse_view(view))
    out = {k: (projection.transform(v) if k.endswith(_EXAMPLE_SUFFIXES) else v)
           for k, v in arrays.items()}
    return out, projection
