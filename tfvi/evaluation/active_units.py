"""Active units (Burda et al. 2016; Ding & Freedman section 5, Xu et al. B.3).

A latent dimension u is active when the posterior mean moves with the data:

    A_u = Cov_x( E_{q(z|x)}[z_u] ) > threshold      (threshold 0.01 in the papers)

E_q[z] is the analytic mean when the posterior has one (Gaussians and mixtures), else
a Monte Carlo mean over `num_samples` samples (1000 as in Xu et al. B.3).
"""

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfvi.types import ArrayLike

__all__ = ["active_units", "active_units_per_layer", "posterior_mean_variance"]


def _posterior_mean(encoder, x, num_samples, seed):
    q = encoder(x)
    try:
        return q.mean()
    except NotImplementedError:
        return tf.reduce_mean(q.sample(num_samples, seed=seed), axis=0)


def posterior_mean_variance(model: keras.Model, x: ArrayLike, batch_size: int = 500,
                            num_samples: int = 1000, seed: int = 0) -> np.ndarray:
    """Var_x(E_q[z_u]) for each latent dimension u: float64 `[latent_dim]`."""
    x = np.asarray(x, np.float32)
    if x.ndim < 2 or len(x) < 2:
        raise ValueError(f"`x` must have shape [N >= 2, input_dim]; got {x.shape}.")
    means = []
    for b, start in enumerate(range(0, len(x), batch_size)):
        seed_b = tf.constant([seed, b], tf.int32)
        means.append(_posterior_mean(model.encoder, x[start:start + batch_size],
                                     num_samples, seed_b).numpy())
    means = np.concatenate(means).astype(np.float64)
    return means.var(axis=0, ddof=1)


def active_units(model: keras.Model, x: ArrayLike, threshold: float = 1e-2,
                 **kwargs: Any) -> int:
    """Number of latent dimensions with Var_x(E_q[z_u]) > `threshold`."""
    if not threshold >= 0:
        raise ValueError(f"`threshold` must be >= 0; got {threshold!r}.")
    return int(np.sum(posterior_mean_variance(model, x, **kwargs) > threshold))


def active_units_per_layer(model, x, threshold=1e-2, **kwargs):
    """Active units of each latent layer of a hierarchical model.

    For an encoder with `lower_dim` (`tfvi.layers.HierarchicalEncoder`, latent
    `z = concat[z1, z2]`): `{"z1": A_1, "z2": A_2}`, counted on the Monte Carlo posterior
    means of the joint q(z1, z2|x); for a one-level model `{"z": A}`.
    """
    if not threshold >= 0:
        raise ValueError(f"`threshold` must be >= 0; got {threshold!r}.")
    active = posterior_mean_variance(model, x, **kwargs) > threshold
    lower = getattr(model.encoder, "lower_dim", None)
    if lower is None:
        return {"z": int(active.sum())}
    return {"z1": int(active[:lower].sum()), "z2": int(active[lower:].sum())}
