"""The q(z) moment regulariser of Xu et al., Appendix B.3.

    Reg[q(z)] = 1/Dim(z) sum_k [ Mean[z_k]^2 + (Var[z_k] - 1)^2 ],

with Mean[z_k] = E_{p*(x)} E_{q(z|x)} [z_k] and
Var[z_k] = E_{p*(x)} E_{q(z|x)} [(z_k - Mean[z_k])^2], the moments of the aggregate
posterior q(z) = E_{p*(x)} q(z|x). Xu et al. adds it to the training loss of VAEs with a
Real NVP prior so that q(z) keeps roughly zero mean and unit variance, as under
N(0, I), which makes active units and other latent statistics comparable across priors.
Here the moments are estimated from the posterior samples of one batch.
"""

import tensorflow as tf

__all__ = ["aggregate_posterior_moments", "qz_moment_penalty"]


def aggregate_posterior_moments(z, log_alpha):
    """Mean and variance per latent dimension of the aggregate posterior.

    Args:
      z: samples `[T, K, batch, d]` (T per mixture component, K components).
      log_alpha: log mixture weights `[K, batch]` (zeros for K = 1).

    Returns:
      `(mean, variance)`, each `[d]`: moments of the mixture sum_k alpha_k q_k(z|x)
      averaged over the batch, every sample weighted by alpha_k / (T * batch).
    """
    z = tf.convert_to_tensor(z)
    if z.shape.rank != 4:
        raise ValueError(f"`z` must have shape [T, K, batch, d]; got {z.shape}.")
    num = tf.cast(tf.shape(z)[0] * tf.shape(z)[2], z.dtype)
    weights = tf.exp(tf.cast(log_alpha, z.dtype))[tf.newaxis, :, :, tf.newaxis] / num
    mean = tf.reduce_sum(weights * z, axis=[0, 1, 2])
    variance = tf.reduce_sum(weights * tf.square(z - mean), axis=[0, 1, 2])
    return mean, variance


def qz_moment_penalty(z, log_alpha):
    """Reg[q(z)] of Xu et al. B.3 (scalar), from samples `[T, K, batch, d]`."""
    mean, variance = aggregate_posterior_moments(z, log_alpha)
    return tf.reduce_mean(tf.square(mean) + tf.square(variance - 1.0))
