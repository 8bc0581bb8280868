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
components, so SIWAE applies to the hierarchical model too. `conv_hvae` assembles
the convolutional layout of Livne et al.'s image models (convHVAE and PixelHVAE).
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvi import networks
from tfvi.distributions import TwoLevelLatent
from tfvi.layers.decoders import BernoulliDecoder
from tfvi.layers.encoders import GaussianEncoder
from tfvi.layers.heads import flatten_leading, get_network, restore_leading
from tfvi.layers.mlp import MLP
from tfvi.layers.pixelcnn import PixelCNNDecoder
from tfvi.layers.priors import Prior, StandardNormal, VampPrior
from tfvi.validation import check_choice, check_positive, check_positive_int

tfd = tfp.distributions

_MIN_SCALE = 1e-4


def _network_config(network):
    return None if network is None else keras.saving.serialize_keras_object(network)


@keras.saving.register_keras_serializable(package="tfvi")
class ConditionalGaussian(keras.layers.Layer):
    """`call(inputs [..., n])` -> N(mu(inputs), diag(sigma(inputs)^2)) over `[latent_dim]`.

    `mu = Dense(h)`, `sigma = softplus(Dense(h)) + min_scale` with `h = network(inputs)`
    (default: an MLP of `hidden`, `activation`); batch shape `[...]` (any leading axes,
    so `network` must accept them, as Dense layers do). With `hidden=()` the mean is
    affine in the inputs.
    """

    def __init__(self, latent_dim, hidden=(200,), activation="tanh", network=None,
                 min_scale=_MIN_SCALE, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.min_scale = check_positive("min_scale", min_scale)
        self.network = get_network(network, "network")
        self.trunk = self.network or MLP(self.hidden, activation, name="trunk")
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
        flat, leading = flatten_leading(tf.convert_to_tensor(inputs), 1)
        h = self.trunk(flat)
        loc = restore_leading(self.loc_layer(h), leading, 1)
        scale = restore_leading(tf.nn.softplus(self.scale_layer(h)), leading, 1)
        return tfd.MultivariateNormalDiag(loc, scale + self.min_scale)

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim, hidden=list(self.hidden),
                      activation=self.activation, min_scale=self.min_scale)
        if self.network is not None:
            config["network"] = _network_config(self.network)
        return config


def _broadcast_concat(features, z):
    """concat[features, z] on the last axis, their leading axes broadcast together.

    `features` `[batch, F]`, `z` `[..., batch, d]` (or any leading shape that
    broadcasts with `[batch]`, e.g. `[N_z, 1, d]`) -> `[..., batch, F + d]`.
    """
    leading = tf.broadcast_dynamic_shape(tf.shape(z)[:-1], tf.shape(features)[:-1])
    return tf.concat([tf.broadcast_to(features, tf.concat([leading, tf.shape(features)[-1:]], 0)),
                      tf.broadcast_to(z, tf.concat([leading, tf.shape(z)[-1:]], 0))], axis=-1)


def _two_level_config(layer):
    """The config entries shared by the hierarchical encoder and prior."""
    config = dict(lower_dim=layer.lower_dim, top=keras.saving.serialize_keras_object(layer.top),
                  hidden=list(layer.hidden), activation=layer.activation)
    if layer.lower.network is not None:
        config["lower_network"] = _network_config(layer.lower.network)
    return config


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
        reads concat[features(x), z2].
      features: a Keras network from x `[batch, *input_shape]` to `[batch, F]` (e.g.
        `tfvi.networks.hvae_lower_features()` for images); None: x itself (flat x).
      lower_network: q(z1 | x, z2)'s trunk over concat[features(x), z2] `[..., F + d2]`;
        None: the MLP of `hidden`.
    """

    def __init__(self, lower_dim, top=None, upper_dim=None, hidden=(200,),
                 activation="tanh", features=None, lower_network=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(top, dict):
            top = keras.saving.deserialize_keras_object(top)
        if top is None:
            if upper_dim is None:
                raise ValueError("HierarchicalEncoder needs `top` or `upper_dim`.")
            top = GaussianEncoder(upper_dim, hidden=hidden, activation=activation,
                                  name="top")
        self.top = top
        self.lower_dim = check_positive_int("lower_dim", lower_dim)
        self.upper_dim = top.latent_dim
        self.latent_dim = self.lower_dim + self.upper_dim
        self.num_components = getattr(top, "num_components", 1)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.features = get_network(features, "features")
        self.lower = ConditionalGaussian(self.lower_dim, self.hidden, activation,
                                         network=lower_network, name="lower")

    def build(self, input_shape):
        if not self.top.built:
            self.top.build(input_shape)
        features_shape = tuple(input_shape)
        if self.features is not None:
            if not self.features.built:
                self.features.build(features_shape)
            features_shape = tuple(self.features.compute_output_shape(features_shape))
            if len(features_shape) != 2:
                raise ValueError(f"{self.name}: `features` must map x to [batch, F]; it "
                                 f"gives {features_shape} (end it with Flatten).")
        if not self.lower.built:
            self.lower.build(features_shape[:-1] + (features_shape[-1] + self.upper_dim,))
        self.built = True

    def posterior_parameters(self, x):
        """q(z2|x)'s parameters (`top_*`) and `inputs`: the features of x (x itself
        without a `features` network), which q(z1|x, z2) reads for each z2."""
        params = {f"top_{k}": v for k, v in self.top.posterior_parameters(x).items()}
        x = tf.convert_to_tensor(x)
        params["inputs"] = x if self.features is None else self.features(x)
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
        if self.features is not None:
            config["features"] = _network_config(self.features)
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
      lower_network: p(z1 | z2)'s trunk over z2 `[..., d2]`; None: the MLP of `hidden`.
    """

    def __init__(self, lower_dim, top=None, upper_dim=None, hidden=(200,),
                 activation="tanh", latent_dim=None, lower_network=None, **kwargs):
        if isinstance(top, dict):
            top = keras.saving.deserialize_keras_object(top)
        if top is None:
            if upper_dim is None:
                raise ValueError("HierarchicalPrior needs `top` or `upper_dim`.")
            top = StandardNormal(upper_dim, name="top")
        lower_dim = check_positive_int("lower_dim", lower_dim)
        super().__init__(lower_dim + top.latent_dim, **kwargs)
        self.top = top
        self.lower_dim = lower_dim
        self.upper_dim = top.latent_dim
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.lower = ConditionalGaussian(lower_dim, self.hidden, activation,
                                         network=lower_network, name="lower")

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


def conv_hvae(image_shape=(28, 28, 1), lower_dim=16, upper_dim=16, width=0.5,
              prior="vampprior", num_pseudo_inputs=100, init_from_data=None,
              likelihood="bernoulli", pixelcnn_blocks=3, seed=None, min_scale=None):
    """Livne et al.'s two-level image models (convHVAE and PixelHVAE, L = 2).

    Livne, Swersky & Fleet ("MIM: Mutual Information Machine", section 5.2) take
    Tomczak & Welling's models ("VAE with a VampPrior"; their code's convHVAE_2level and
    PixelHVAE_2level). Returns `(encoder, decoder, prior)` for `tfvi.models.VAE` or
    `tfvi.models.MIM`, with the joint latent z = concat[z1, z2] of size d1 + d2.
    x has shape `[batch, H, W, C]` (binary). The networks are in `tfvi.networks`; every
    layer is gated, `h(x) * sigmoid(g(x))`.

    * q(z2|x): 5 gated convolutions (32, 32 stride 2, 64, 64 stride 2, 6 channels;
      kernels 7, 3, 5, 3, 3) -> Flatten (294 on 28x28) -> Gaussian head.
    * q(z1|x, z2): 5 gated 3x3 convolutions of x (same channels) -> Flatten, z2 through
      a gated dense layer to the same size, concatenated, a gated dense layer of 300.
    * p(z2): a VampPrior over q(z2|x) (`prior="vampprior"`, pseudo-inputs from training
      images when `init_from_data` is given) or N(0, I) (`prior="standard"`).
    * p(z1|z2): two gated dense layers of 300 -> Gaussian head.
    * p(x|z1, z2), `likelihood="bernoulli"` (convHVAE): z1 and z2 each through a gated
      dense layer of 300, a gated dense layer to H*W*C as an image, 4 gated 3x3
      convolutions of 64, a linear 1x1 convolution to the logits.
      `likelihood="pixelcnn"` (PixelHVAE): z1 and z2 each through a gated dense layer
      to H*W*C, stacked as 2C channels, the conditioning of a `PixelCNNDecoder` with
      `pixelcnn_blocks` gated residual blocks of 64 filters.

    Departures, for 2 CPU cores and tfvi's heads:
    * `width` scales every channel count and dense width (0.5: 16/32 channels, 150
      units; 1.0 is the paper). Latents d1 = d2 = 16 (the paper: 40 + 40), M = 100
      pseudo-inputs (the paper: 500).
    * Scales are `softplus(.) + floor` (tfvi's heads: floor 1e-5 on z2, 1e-4 on z1),
      not the authors' log-variance clamped to [-6, 2]; `min_scale=0.05` adds their
      lower clamp (sigma >= exp(-3)) to q(z2|x) (`GaussianEncoder(min_scale=...)`).
    * The PixelHVAE's causal stack is tfvi's `PixelCNN` (a type-A masked convolution,
      gated residual blocks, dropout 0.5 in training) instead of the authors' eight
      masked convolutions with batch normalisation.
    """
    check_choice("prior", prior, ("vampprior", "standard"))
    check_choice("likelihood", likelihood, ("bernoulli", "pixelcnn"))
    check_positive("width", width)
    image_shape = tuple(int(s) for s in image_shape)
    top = GaussianEncoder(upper_dim, network=networks.hvae_top_encoder(width),
                          min_scale=min_scale, name="top")
    features = networks.hvae_lower_features(width)
    num_features = int(features.compute_output_shape((None,) + image_shape)[-1])
    encoder = HierarchicalEncoder(
        lower_dim, top=top, features=features,
        lower_network=networks.hvae_lower_posterior(num_features, width))
    encoder.build((None,) + image_shape)
    if prior == "vampprior":
        p_z2 = VampPrior(top, num_pseudo_inputs=num_pseudo_inputs,
                         init_from_data=init_from_data,
                         input_dim=None if init_from_data is not None else image_shape,
                         seed=seed, name="vampprior")
    else:
        p_z2 = StandardNormal(upper_dim, name="top")
    p_z = HierarchicalPrior(lower_dim, top=p_z2,
                            lower_network=networks.hvae_lower_prior(width))
    if likelihood == "bernoulli":
        decoder = BernoulliDecoder(image_shape, network=networks.hvae_decoder(
            lower_dim, image_shape, width))
    else:
        decoder = PixelCNNDecoder(
            image_shape, network=networks.hvae_pixel_conditioning(lower_dim, image_shape),
            filters=max(1, round(64 * width)), num_blocks=pixelcnn_blocks)
    return encoder, decoder, p_z
