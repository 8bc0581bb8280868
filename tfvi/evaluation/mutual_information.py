"""Mutual information I(x; z) from samples: the Kraskov-Stoegbauer-Grassberger
estimator (KSG, Kraskov et al. 2004, estimator 1), as Livne et al. (section 5.1,
following Belghazi et al. 2018) uses it on (x, z ~ q(z|x)) pairs with k = 5.

With the max-norm in the joint space, eps_i the distance from point i to its k-th
nearest neighbour in (x, z), and n_x(i), n_z(i) the numbers of points strictly closer
than eps_i to point i in each marginal space,

    I(x; z) = psi(k) + psi(N) - < psi(n_x(i) + 1) + psi(n_z(i) + 1) >_i     (KSG eq. 8)

in nats. Vectorised with scipy's cKDTree (one k-NN query, two ball-count queries);
MIM's reference code loops over points in Python.

The true I(x; z) does not change when z is rescaled, but the estimate does: eps_i is
set by whichever of x and z has the larger distances, so codes much smaller than the
data (a MIM encoder that shrinks its codes) count nearly every point as a z-neighbour
and the estimate falls towards 0. Kraskov et al. rescale each variable to unit
variance; `standardize=True` does that per dimension. Livne et al.'s code does not,
so the default (False) reproduces their numbers.
"""

import keras
import numpy as np
import tensorflow as tf
from scipy.spatial import cKDTree
from scipy.special import digamma

from tfvi.types import ArrayLike

__all__ = ["ksg_mutual_information", "encoder_mutual_information"]


def _as_2d(name, a):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"`{name}` must have shape [num_points, dim]; got {a.shape}.")
    return a


def ksg_mutual_information(x: ArrayLike, z: ArrayLike, k: int = 5, max_points: int = 3000,
                           seed: int = 0, noise: float = 1e-10,
                           standardize: bool = False) -> float:
    """KSG estimate (estimator 1, max-norm) of I(x; z) in nats.

    Args:
      x: `[num_points, dim_x]` samples (a `[num_points]` vector is one dimension).
      z: `[num_points, dim_z]` samples paired with `x`.
      k: number of nearest neighbours (Livne et al. uses 5).
      max_points: at most this many pairs are used, drawn without replacement with
        `seed` (the estimator costs O(N log N) per query, and Livne et al. uses <= 3000).
      seed: seed of the subsample and of the tie-breaking jitter.
      noise: relative scale of a tiny jitter that breaks ties between duplicate
        points (binary pixels), which would otherwise make counts ill-defined.
      standardize: divide every dimension of x and z by its standard deviation first,
        which makes the estimate invariant to rescaling either variable.

    Returns:
      A float (may be slightly negative for independent variables: the estimator
      is nearly unbiased, not non-negative).
    """
    x, z = _as_2d("x", x), _as_2d("z", z)
    if x.shape[0] != z.shape[0]:
        raise ValueError(
            f"`x` and `z` must hold the same number of points; got {x.shape[0]} and {z.shape[0]}.")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"`k` must be a positive integer; got {k!r}.")
    if isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer)) or max_points <= k:
        raise ValueError(f"`max_points` must be an integer larger than k={k}; got {max_points!r}.")
    n = x.shape[0]
    if n <= k:
        raise ValueError(f"Need more than k={k} points; got {n}.")
    if standardize:
        x, z = (a / np.where(a.std(axis=0) > 0, a.std(axis=0), 1.0) for a in (x, z))
    rng = np.random.default_rng(seed)
    if n > max_points:
        idx = rng.choice(n, max_points, replace=False)
        x, z, n = x[idx], z[idx], max_points
    if noise:
        x = x + noise * (np.std(x) + 1.0) * rng.standard_normal(x.shape)
        z = z + noise * (np.std(z) + 1.0) * rng.standard_normal(z.shape)
    joint = np.concatenate([x, z], axis=1)
    # k + 1 neighbours: the first is the point itself.
    eps = cKDTree(joint).query(joint, k=k + 1, p=np.inf)[0][:, -1]
    # Strictly closer than eps: shrink the radius by one ulp; the count includes the
    # point itself, so n_x + 1 = count.
    radius = np.nextafter(eps, 0)
    n_x = cKDTree(x).query_ball_point(x, radius, p=np.inf, return_length=True)
    n_z = cKDTree(z).query_ball_point(z, radius, p=np.inf, return_length=True)
    return float(digamma(k) + digamma(n) - np.mean(digamma(n_x) + digamma(n_z)))


def encoder_mutual_information(model: keras.Model, x: ArrayLike, seed: int = 0) -> float:
    """I_q(x; z) of the encoding distribution with x uniform over the given points,
    in nats (the MI of Livne et al.'s encoding joint P(x) q(z|x), P(x) the empirical
    distribution of `x`):

        I = 1/N sum_i E_{z ~ q(z|x_i)}[ log q(z|x_i) - log (1/N sum_n q(z|x_n)) ],

    estimated with one z_i ~ q(z|x_i) per point; 0 <= I <= log N. Unlike KSG it needs
    no distances in x space, so it stays meaningful for binary images (where every
    max-norm distance between distinct images is 1 and KSG degenerates).

    Args:
      model: anything with an `encoder(x)` returning a distribution with batch `[N]`
        and event `[latent_dim]` (a tfvi VAE / MIM).
      x: `[N, input_dim]` points (N^2 densities are evaluated: keep N in the
        thousands).
      seed: integer seed of the z draws.

    Returns:
      A float.
    """
    import tensorflow as tf

    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"`x` must have shape [num_points >= 2, input_dim]; got {x.shape}.")
    q = model.encoder(tf.convert_to_tensor(x))
    z = q.sample(seed=tf.constant([seed, 17], tf.int32))                 # [N, d]
    log_q = q.log_prob(z[:, None, :])                                     # [N_z, N_x]
    log_q = np.asarray(log_q, dtype=np.float64)
    n = log_q.shape[0]
    log_marginal = np.logaddexp.reduce(log_q, axis=1) - np.log(n)
    return float(np.mean(np.diag(log_q) - log_marginal))
