"""Synthetic data sets with known truths.

* `abs_toy`: Morningstar et al.'s toy, z ~ N(0, I_d), x ~ N(|z|, sigma^2 I_d). Per dimension
  p(x_i) = 2 N(x_i; 0, 1 + sigma^2) Phi(x_i / (sigma sqrt(1 + sigma^2))), and the
  posterior of x = (1, 1) has one mode in each quadrant. (Morningstar et al.'s reported SIWAE
  of -1.505 for d = 2 matches sigma ~ 0.05, where the exact mean log p(x) is -1.53.)
* `linear_gaussian`: z ~ N(0, I_d), x ~ N(z W + b, s^2 I_D) with known W, b, s.
* `gmm2d`: a mixture of five isotropic 2-D Gaussians with standard deviation 0.25
  (Livne, Swersky & Fleet, "MIM: Mutual Information Machine", section 5.1), with
  component labels and its exact log-density `gmm2d_log_density`.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import special, stats

from tfvi.layers.decoders import KnownLikelihood
from tfvi.types import ArrayLike

tfd = tfp.distributions

__all__ = [
    "abs_toy",
    "abs_toy_log_marginal",
    "abs_toy_likelihood",
    "linear_gaussian",
    "gmm2d",
    "gmm2d_log_density",
    "GMM2D_LAYOUTS",
]


def _check_positive(name, value):
    if not value > 0:
        raise ValueError(f"`{name}` must be positive; got {value!r}.")


def abs_toy(num_examples: int, dim: int = 2, sigma: float = 0.1,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draws `[num_examples, dim]` data from the |z| toy; returns `(x, z)`."""
    _check_positive("sigma", sigma)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((num_examples, dim)).astype(np.float32)
    x = np.abs(z) + sigma * rng.standard_normal(z.shape).astype(np.float32)
    return x.astype(np.float32), z


def abs_toy_log_marginal(x: ArrayLike, sigma: float) -> np.ndarray:
    """Exact log p(x) `[N]` (float64) of the |z| toy, summed over dimensions."""
    _check_positive("sigma", sigma)
    x = np.asarray(x, np.float64)
    var = 1.0 + sigma**2
    per_dim = (np.log(2.0) + stats.norm.logpdf(x, 0.0, np.sqrt(var))
               + special.log_ndtr(x / (sigma * np.sqrt(var))))
    return per_dim.sum(axis=-1)


@keras.saving.register_keras_serializable(package="tfvi")
def abs_gaussian_likelihood(z, sigma):
    """p(x|z) = N(x; |z|, sigma^2 I), event shape `[d]`."""
    return tfd.Independent(tfd.Normal(tf.abs(z), sigma), 1)


def abs_toy_likelihood(sigma):
    """The toy's known likelihood as a `KnownLikelihood` decoder (serialisable)."""
    _check_positive("sigma", sigma)
    return KnownLikelihood(abs_gaussian_likelihood, fn_kwargs={"sigma": float(sigma)})


def linear_gaussian(num_examples: int, latent_dim: int = 2, data_dim: int = 5,
                    noise_scale: float = 0.5,
                    seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Data from a linear-Gaussian model with random known parameters.

    Returns:
      `(x, params)` with `x` `[num_examples, data_dim]` float32 and `params` a dict of
      `weights` `[latent_dim, data_dim]`, `bias` `[data_dim]`, `noise_scale`.
      `tfvi.evaluation.linear_gaussian_log_marginal(x, **params)` is the exact log p(x).
    """
    _check_positive("noise_scale", noise_scale)
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((latent_dim, data_dim)).astype(np.float32)
    bias = rng.standard_normal(data_dim).astype(np.float32)
    z = rng.standard_normal((num_examples, latent_dim)).astype(np.float32)
    x = z @ weights + bias + noise_scale * rng.standard_normal((num_examples, data_dim))
    params = {"weights": weights, "bias": bias, "noise_scale": float(noise_scale)}
    return x.astype(np.float32), params


GMM2D_CENTERS = np.array(
    [[np.cos(a), np.sin(a)] for a in 2 * np.pi * np.arange(5) / 5], np.float32) * 2.0
GMM2D_STD = 0.25
# "paper": the authors' toy4 (MIM code, `GMMDist.factory(4)`): the origin and four means
# on the unit circle, 4 std apart, so the components overlap; "circle": five means on a
# circle of radius 2, well separated.
GMM2D_LAYOUTS = {
    "paper": np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]],
                      np.float32),
    "circle": GMM2D_CENTERS,
}


def _gmm2d_centers(layout):
    if isinstance(layout, str):
        if layout not in GMM2D_LAYOUTS:
            raise ValueError(f"`layout` must be one of {sorted(GMM2D_LAYOUTS)} or a [C, 2] "
                             f"array of means; got {layout!r}.")
        return GMM2D_LAYOUTS[layout]
    centers = np.asarray(layout, np.float32)
    if centers.ndim != 2 or centers.shape[1] != 2:
        raise ValueError(f"`layout` as means must have shape [C, 2]; got {centers.shape}.")
    return centers


def gmm2d(num_examples: int, seed: int = 0, layout: str | ArrayLike = "circle",
          std: float = GMM2D_STD) -> tuple[np.ndarray, np.ndarray]:
    """`(x, labels)`: `[num_examples, 2]` float32 points from equally weighted isotropic
    Gaussians (standard deviation `std`) and the int32 component of each point.
    `layout`: "circle" (five means on a circle of radius 2), "paper" (Livne et al.'s
    origin plus four means on the unit circle) or a `[C, 2]` array of means."""
    _check_positive("std", std)
    centers = _gmm2d_centers(layout)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(centers), num_examples).astype(np.int32)
    x = centers[labels] + std * rng.standard_normal((num_examples, 2))
    return x.astype(np.float32), labels


def gmm2d_log_density(x: ArrayLike, layout: str | ArrayLike = "circle",
                      std: float = GMM2D_STD) -> np.ndarray:
    """Exact log P(x) `[...]` (float64) of `gmm2d`'s mixture at points `x` `[..., 2]`."""
    centers = _gmm2d_centers(layout).astype(np.float64)
    x = np.asarray(x, np.float64)
    sq = np.sum((x[..., None, :] - centers) ** 2, axis=-1)
    log_comp = -0.5 * sq / std**2 - np.log(2 * np.pi * std**2)
    return np.logaddexp.reduce(log_comp, axis=-1) - np.log(len(centers))
