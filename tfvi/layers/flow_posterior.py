"""Real NVP posterior q(z|x): a Gaussian followed by a Real NVP flow (Xu et al., eq. B.1).

    w ~ q_phi(w|x) = N(mu(x), diag(sigma(x)^2)),     z = f_eta(w),
    log q(z|x) = log q_phi(w|x) - log |det df_eta(w)/dw|,

with f_eta the same block structure as the Real NVP prior (`tfvi.layers.flows`):
InvertibleDense -> AffineCoupling -> ActNorm, K times.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvi.layers.encoders import GaussianEncoder
from tfvi.layers.flows import RealNVPFlow
from tfvi.validation import check_positive_int

tfd = tfp.distributions

__all__ = ["RealNVPPosterior"]


@keras.saving.register_keras_serializable(package="tfvi")
class RealNVPPosterior(keras.layers.Layer):
    """Encoder whose `call(x)` is a `tfd.TransformedDistribution` (batch `[batch]`,
    event `[latent_dim]`), with the interface of the other encoders:

    * `posterior_parameters(x)` -> the Gaussian base's `loc`, `scale_diag` (or
      `scale_tril`), `[batch, d]`;
    * `distribution(params)` -> base Gaussian pushed through the flow;
    * `num_components` = 1, `latent_dim`, `input_dim`.

    Samples `[T, batch, d]` are reparameterised through the flow. `mean()` has no
    closed form: the VAE's `call`/`predict` therefore return f(mu(x)), the image of
    the base mean (`point_estimate`); Monte Carlo means come from `sample`.

    STL caveat: `VAE(stl=True)` stops gradients through `posterior_parameters` only;
    the flow's own weights still receive the score term.

    Args:
      latent_dim: d (>= 2).
      depth: K, flow depth (Xu et al.: 20).
      hidden: the Gaussian base's MLP widths.
      flow_hidden: coupling-network widths (Xu et al.: (256,)).
      activation: base MLP activation.
      flow_activation: coupling-network activation (Xu et al.: leaky relu).
      covariance: base covariance, "diag" or "full".
      seed: seeds the invertible-dense initial rotations.
    """

    is_flow_posterior = True

    def __init__(self, latent_dim, depth=20, hidden=(200, 200), flow_hidden=(256,),
                 activation="tanh", flow_activation="leaky_relu", covariance="diag",
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.depth = check_positive_int("depth", depth)
        self.hidden = tuple(hidden)
        self.flow_hidden = tuple(flow_hidden)
        self.activation = activation
        self.flow_activation = flow_activation
        self.covariance = covariance
        self.seed = seed
        self.num_components = 1
        self.base = GaussianEncoder(latent_dim, hidden, activation, covariance, name="base")
        self.flow = RealNVPFlow(latent_dim, depth, flow_hidden, flow_activation, seed,
                                name="flow")
        self.input_dim = None

    def build(self, input_shape):
        if not self.base.built:
            self.base.build(input_shape)
        self.input_dim = int(input_shape[-1])
        self.built = True

    def posterior_parameters(self, x):
        return self.base.posterior_parameters(x)

    def distribution(self, params):
        return tfd.TransformedDistribution(self.base.distribution(params),
                                           self.flow.bijector(), name="RealNVPPosterior")

    def call(self, x):
        return self.distribution(self.posterior_parameters(x))

    def point_estimate(self, x):
        """f(mu(x)): the base mean pushed through the flow, `[batch, d]`."""
        return self.flow(self.posterior_parameters(x)["loc"])

    def initialize(self, x, num_samples=1, seed=None):
        """Data-dependent ActNorm initialisation from base samples w ~ q(w|x)."""
        w = self.base(tf.convert_to_tensor(x, tf.float32)).sample(num_samples, seed=seed)
        self.flow.initialize(w)

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim, depth=self.depth, hidden=list(self.hidden),
                      flow_hidden=list(self.flow_hidden), activation=self.activation,
                      flow_activation=self.flow_activation, covariance=self.covariance,
                      seed=self.seed)
        return config
