"""Priors r(z): layers whose `call()` takes no input and returns a distribution.

The prior interface is small so that learned priors (mixtures, VampPrior, flows) slot
in: a prior is a `Prior` layer with `latent_dim` whose `call()` returns a
`tfd.Distribution` with batch shape `[]` and event shape `[latent_dim]`. A prior that
depends on the encoder (VampPrior) holds the encoder and builds its mixture in `call()`.
Importable as `tfvi.priors.X` and `tfvi.layers.X`.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvi.distributions import GaussianMixture
from tfvi.layers.encoders import _check_choice, _check_positive_int

tfd = tfp.distributions


class Prior(keras.layers.Layer):
    """Base class: a distribution over `[latent_dim]` with no input.

    Subclasses implement `call(inputs=None)`: the argument is ignored (Keras 3.15's
    `Layer.__call__` needs one named parameter), so `prior()` is the distribution.
    """

    def __init__(self, latent_dim, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = _check_positive_int("latent_dim", latent_dim)

    def build(self, input_shape=None):
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim)
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class StandardNormal(Prior):
    """r(z) = N(0, I_d). No weights."""

    def call(self, inputs=None):
        zeros = tf.zeros([self.latent_dim], dtype=self.compute_dtype)
        return tfd.MultivariateNormalDiag(loc=zeros, scale_diag=tf.ones_like(zeros))


@keras.saving.register_keras_serializable(package="tfvi")
class MixtureOfGaussians(Prior):
    """r(z) = sum_k softmax(w)_k N(z; m_k, diag(s_k^2)) (or full S_k S_k^T), trainable.

    Seed 000 uses it as r(z) (B.1: trainable mixture; B.2: 200 components). Means are
    initialised from N(0, `init_spread`^2), scales at 1, weights uniform.

    Args:
      latent_dim: d.
      components: K.
      covariance: "diag" or "full".
      init_spread: standard deviation of the initial means.
      trainable: if False the mixture stays at its initial value.
      seed: initialiser seed, for repeatable models.
    """

    def __init__(self, latent_dim, components=10, covariance="diag", init_spread=1.0,
                 trainable=True, seed=None, **kwargs):
        super().__init__(latent_dim, trainable=trainable, **kwargs)
        self.num_components = _check_positive_int("components", components)
        self.covariance = _check_choice("covariance", covariance, ("diag", "full"))
        self.init_spread = float(init_spread)
        self.seed = seed
        k, d = self.num_components, self.latent_dim
        self.logits = self.add_weight(shape=(k,), initializer="zeros", name="logits")
        self.loc = self.add_weight(
            shape=(k, d),
            initializer=keras.initializers.RandomNormal(stddev=self.init_spread, seed=seed),
            name="loc",
        )
        one = float(np.log(np.expm1(1.0)))
        if covariance == "diag":
            self.raw_scale = self.add_weight(
                shape=(k, d), initializer=keras.initializers.Constant(one), name="raw_scale")
        else:
            n = d * (d + 1) // 2
            init = tfp.math.fill_triangular_inverse(
                tf.linalg.set_diag(tf.zeros([d, d]), tf.fill([d], one))).numpy()
            self.raw_scale = self.add_weight(
                shape=(k, n), initializer=keras.initializers.Constant(np.tile(init, (k, 1))),
                name="raw_scale")

    def call(self, inputs=None):
        if self.covariance == "diag":
            return GaussianMixture(self.logits, self.loc,
                                   scale_diag=tf.nn.softplus(self.raw_scale) + 1e-5)
        tril = tfp.math.fill_triangular(self.raw_scale)
        tril = tf.linalg.set_diag(tril, tf.nn.softplus(tf.linalg.diag_part(tril)) + 1e-5)
        return GaussianMixture(self.logits, self.loc, scale_tril=tril)

    def get_config(self):
        config = super().get_config()
        config.update(
            components=self.num_components,
            covariance=self.covariance,
            init_spread=self.init_spread,
            seed=self.seed,
        )
        return config
