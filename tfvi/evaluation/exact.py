"""Exact log-evidence where it has a closed form, to check estimators against.

Linear-Gaussian model: z ~ N(0, I_d), x | z ~ N(W^T z + b, diag(s^2)) gives

    p(x) = N(x; b, W^T W + diag(s^2)),

with `W` the `[d, D]` kernel of the decoder's affine head (Keras' `x @ W`
convention).
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvi.layers.decoders import GaussianDecoder
from tfvi.layers.priors import StandardNormal
from tfvi.types import ArrayLike

tfd = tfp.distributions

__all__ = [
    "exact_log_likelihood",
    "independent_bernoulli_log_likelihood",
    "linear_gaussian_log_marginal",
]


def linear_gaussian_log_marginal(x: ArrayLike, weights: ArrayLike, bias: ArrayLike,
                                 noise_scale: float) -> np.ndarray:
    """log N(x; bias, W^T W + diag(noise_scale^2)) in float64.

    Args:
      x: `[batch, D]` data.
      weights: `[d, D]` (so that the mean is `z @ weights + bias`).
      bias: `[D]`.
      noise_scale: scalar or `[D]` observation standard deviation.

    Returns:
      `[batch]` float64 log-densities.
    """
    x = np.asarray(x, np.float64)
    w = np.asarray(weights, np.float64)
    b = np.asarray(bias, np.float64)
    s2 = np.broadcast_to(np.square(np.asarray(noise_scale, np.float64)), b.shape)
    cov = w.T @ w + np.diag(s2)
    mvn = tfd.MultivariateNormalTriL(loc=b, scale_tril=np.linalg.cholesky(cov))
    return mvn.log_prob(x).numpy()


def exact_log_likelihood(model: keras.Model, x: ArrayLike) -> np.ndarray:
    """Exact log p(x) `[batch]` (float64) of a linear-Gaussian VAE.

    The model must have a `GaussianDecoder` with `hidden=()` and `skip=False` (an
    affine mean) and a `StandardNormal` prior; anything else raises `ValueError`.
    """
    decoder, prior = model.decoder, model.prior
    if not (isinstance(decoder, GaussianDecoder) and not decoder.hidden and not decoder.skip):
        raise ValueError(
            "exact_log_likelihood needs a linear-Gaussian decoder: "
            "GaussianDecoder(hidden=(), skip=False); got "
            f"{type(decoder).__name__} with hidden={getattr(decoder, 'hidden', None)}."
        )
    if not isinstance(prior, StandardNormal):
        raise ValueError(
            "exact_log_likelihood needs a StandardNormal prior; got "
            f"{type(prior).__name__}."
        )
    return linear_gaussian_log_marginal(
        x,
        tf.convert_to_tensor(decoder.head.kernel).numpy(),
        tf.convert_to_tensor(decoder.head.bias).numpy(),
        decoder.observation_scale().numpy(),
    )


def independent_bernoulli_log_likelihood(train_x: ArrayLike, x: ArrayLike,
                                         clip: float = 1e-3) -> np.ndarray:
    """log p(x) `[batch]` under independent per-pixel Bernoullis fitted to `train_x`.

    The trivial baseline a latent-variable model of binary data must beat: the pixel
    means of `train_x` (probabilities or 0/1 data, clipped to [clip, 1 - clip]).
    """
    p = np.clip(np.asarray(train_x, np.float64).mean(axis=0), clip, 1.0 - clip)
    x = np.asarray(x, np.float64)
    return (x * np.log(p) + (1.0 - x) * np.log1p(-p)).sum(axis=-1)
