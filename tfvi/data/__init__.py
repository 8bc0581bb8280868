"""Data: the bundled digits, synthetic sets with known truths, transforms."""

from tfvi.data.digits import DIGITS_DIM, digits_dataset, load_digits
from tfvi.data.mnist5k import MNIST5K_SHAPE, load_mnist5k
from tfvi.data.synthetic import (
    abs_toy,
    abs_toy_likelihood,
    abs_toy_log_marginal,
    GMM2D_LAYOUTS,
    gmm2d,
    gmm2d_log_density,
    linear_gaussian,
)
from tfvi.data.transforms import binarize, dynamic_binarization

__all__ = [
    "DIGITS_DIM",
    "MNIST5K_SHAPE",
    "abs_toy",
    "abs_toy_likelihood",
    "abs_toy_log_marginal",
    "binarize",
    "digits_dataset",
    "dynamic_binarization",
    "GMM2D_LAYOUTS",
    "gmm2d",
    "gmm2d_log_density",
    "linear_gaussian",
    "load_digits",
    "load_mnist5k",
]
from tfvi.data import views  # noqa: E402  (Morningstar et al. single-column / same-class views)
