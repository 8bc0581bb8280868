"""Two-level hierarchical VAE parts: q(z2|x) q(z1|x, z2) and p(z2) p(z1|z2).

The generative model of Livne, Swersky & Fleet's image experiments ("MIM: Mutual
Information Machine", after Tomczak & Welling's two-level VampPrior HVAE):

    z2 ~ p(z2),   z1 ~ p(z1 | z2),   x ~ p(x | z1, z2),
    q(z1, z2 | x) = q(z2 | x) q(z1 | x, z2).

Both levels are one latent z = concat[z1, z2] (`tfvi.distributions.TwoLevelLatent`),
so the encoder and prior here plug into `tfvi.models.VAE` unchanged: every bound,
AIS and IWAE evaluation and the SavedModel export treat the joint latent as one, with
log-weights of shape `[T, K, batch]`. Any tfvi decoder over `d1 + d2` inputs is
p(x | z1, z2). A mixture q(z2|x) (`MixtureEncoder` as `top`) is stratified over its
components, so SIWAE applies to the hierarchical model too.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvi.distributions import TwoLevelLatent
from tfvi.layers.encoders import GaussianEncoder
from tfvi.layers.mlp import MLP
from tfvi.layers.priors import Prior, StandardNormal

tfd = tfp.distributions

_MIN_SCALE = 1e-4


def _positive_int(name, value):
    if int(value) != value or value <= 0:
        raise ValueError(f"`{name}` must be a positive int; got {value!r}.")
    return int(value)


@keras.saving.register_keras_serializable(package="tfvi")
class ConditionalGaussian(keras.layers.Layer):
    """`call(inputs [..., n])` -> N(mu(inputs), diag(sigma(inputs)^2)) over `[latent_dim]`.

    `mu = Dense(MLP(inputs))`, `sigma = softplus(Dense(MLP(inputs))) + 1e-4`; batch shape
    `[...]` (any leading axes). With `hidden=()` the mean is affine in the inputs.
    """

    def __init__(self, latent_dim, hidden=(200,), activation="tanh", **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = _positive_int("latent_dim", latent_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.trunk = MLP(self.hidden, activation, name="trunk")
        self.loc_layer = keras.layers.Dense(self.latent_dim, name="loc")
        self.scale_layer = keras.layers.Dense(self.latent_dim, name="scale")

    def build(self, input_shape):
        if not self.trunk.built:
            self.trunk.build(input_shape)
        h_shape = self.trunk.compute_output_shape(input_shape)
        for layer in (self.loc_layer, self.scale_layer):
            if not layer.built:
                layer.build(h_shape)
        self.built = True

    def call(self, inputs):
        h = self.trunk(inputs)
        scale = tf.nn.softplus(self.scale_layer(h)) + _MIN_SCALE
        return tfd.MultivariateNormalDiag(self.loc_layer(h), scale)

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim, hidden=list(self.hidden),
                      activation=self.activation)
        return config


def _broadcast_concat(features, z):
    """concat[features broadcast to z's leading axes, z] on the last axis.

    `features` `[batch, F]`, `z` `[..., batch, d]` -> `[..., batch, F + d]`.
    """
    shape = tf.concat([tf.shape(z)[:-1], tf.shape(features)[-1:]], 0)
    return tf.concat([tf.broadcast_to(features, shape), z], axis=-1)


def _two_level_config(layer):
    """The config entries shared by the hierarchical encoder and prior."""
    return dict(lower_dim=layer.lower_dim, top=keras.saving.serialize_keras_object(layer.top),
                hidden=list(layer.hidden), activation=layer.activation)


@keras.saving.register_keras_serializable(package="tfvi")
class HierarchicalEncoder(keras.layers.Layer):
    """q(z1, z2 | x) = q(z2 | x) q(z1 | x, z2) over z = concat[z1, z2].

    `call(x [batch, input_dim])` returns a `TwoLevelLatent` with batch shape `[batch]`
    and event shape `[d1 + d2]`.

    Args:
      lower_dim: d1, the size of z1.
      top: the encoder of q(z2 | x): any tfvi encoder (`GaussianEncoder`,
        `MixtureEncoder` for SIWAE, ...); default `GaussianEncoder(upper_dim, hidden)`.
      upper_dim: d2, when `top` is not given.
      hidden, activation: of the default `top` and of q(z1 | x, z2)'s network, which
        reads concat[x, z2].
    """

    def __init__(self, lower_dim, top=None, upper_dim=None, hidden=(200,),
                 activation="tanh", **kwargs):
        super().__init__(**kwargs)
        if isinstance(top, dict):
            top = keras.saving.deserialize_keras_object(top)
        if top is None:
            if upper_dim is None:
                raise ValueError("HierarchicalEncoder needs `top` or `upper_dim`.")
            top = GaussianEncoder(upper_dim, hidden=hidden, activation=activation,
                                  name="top")
        self.top = top
        self.lower_dim = _positive_int("lower_dim", lower_dim)
        self.upper_dim = top.latent_dim
        self.latent_dim = self.lower_dim + self.upper_dim
        self.num_components = getattr(top, "num_components", 1)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.lower = ConditionalGaussian(self.lower_dim, self.hidden, activation,
                                         name="lower")

    def build(self, input_shape):
        if not self.top.built:
            self.top.build(input_shape)
        if not self.lower.built:
            self.lower.build(tuple(input_shape)[:-1] + (input_shape[-1] + self.upper_dim,))
        self.built = True

    def posterior_parameters(self, x):
        """q(z2|x)'s parameters (`top_*`) and the input x (`inputs`), which q(z1|x, z2)
        reads for each z2."""
        params = {f"top_{k}": v for k, v in self.top.posterior_parameters(x).items()}
        params["inputs"] = tf.convert_to_tensor(x)
        return params

    def distribution(self, params):
        top = self.top.distribution(
            {k[len("top_"):]: v for k, v in params.items() if k.startswith("top_")})
        x = params["inputs"]
        return TwoLevelLatent(top, lambda z2: self.lower(_broadcast_concat(x, z2)),
                              self.lower_dim)

    def call(self, x):
        return self.distribution(self.posterior_parameters(x))

    def point_estimate(self, x):
        """`[batch, d1 + d2]`: z2 at the mean of q(z2|x), z1 at the mean of q(z1|x, z2)."""
        return self(x).point_estimate()

    def get_config(self):
        config = super().get_config()
        config.update(_two_level_config(self))
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class HierarchicalPrior(Prior):
    """p(z1, z2) = p(z2) p(z1 | z2) over z = concat[z1, z2]; `call()` -> `TwoLevelLatent`
    with batch shape `[]` and event `[d1 + d2]`.

    Args:
      lower_dim: d1.
      top: the prior of z2: any tfvi prior (`StandardNormal`, `MixtureOfGaussians`,
        `RealNVPPrior`, or a `VampPrior`, which shares the hierarchical encoder's
        q(z2|x) once a VAE attaches its encoder); default `StandardNormal(upper_dim)`.
      upper_dim: d2, when `top` is not given.
      hidden, activation: of p(z1 | z2)'s network.
    """

    def __init__(self, lower_dim, top=None, upper_dim=None, hidden=(200,),
                 activation="tanh", latent_dim=None, **kwargs):
        if isinstance(top, dict):
            top = keras.saving.deserialize_keras_object(top)
        if top is None:
            if upper_dim is None:
                raise ValueError("HierarchicalPrior needs `top` or `upper_dim`.")
            top = StandardNormal(upper_dim, name="top")
        lower_dim = _positive_int("lower_dim", lower_dim)
        super().__init__(lower_dim + top.latent_dim, **kwargs)
        self.top = top
        self.lower_dim = lower_dim
        self.upper_dim = top.latent_dim
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.lower = ConditionalGaussian(lower_dim, self.hidden, activation, name="lower")

    def attach_encoder(self, encoder):
        """A VampPrior on z2 shares the hierarchical encoder's q(z2|x)."""
        if hasattr(self.top, "attach_encoder"):
            self.top.attach_encoder(encoder.top)

    def build(self, input_shape=None):
        if not self.top.built:
            self.top.build()
        if not self.lower.built:
            self.lower.build((None, self.upper_dim))
        self.built = True

    def call(self, inputs=None):
        return TwoLevelLatent(self.top(), self.lower, self.lower_dim)

    def get_config(self):
        config = super().get_config()
        config.update(_two_level_config(self))
        return config
