"""The papers' networks: feature extractors only, to put under any tfvi head.

Every function returns a Keras model (a `keras.Sequential` of Keras layers and
`ResidualBlock`s), so it serialises with `.keras` files and can be mixed with any
encoder or decoder head:

    encoder = tfvi.layers.GaussianEncoder(40, network=resnet_vae_encoder())
    decoder = tfvi.layers.BernoulliDecoder((28, 28, 1), network=resnet_vae_decoder())

Xu et al., "On the Necessity and Effectiveness of Learning the Prior of Variational
Auto-Encoder", appendix B.2 (all non-linear layers leaky ReLU, 3x3 kernels; the head
adds `Linear[Dim(z)]` to the encoder, `Linear[784] -> UnFlatten` (DenseVAE) or
`LinearConv1x1[28x28x1]` (Conv/ResnetVAE) to the decoder):

* DenseVAE: `h(x) = Flatten -> Dense[500 -> 500]`, `h(z) = Dense[500 -> 500]`;
* ConvVAE / ResnetVAE encoder `x -> [28x28x32 -> 28x28x32 -> 14x14x64 -> 14x14x64
  -> 7x7x64 -> 7x7x16] -> Flatten` (convolutions / residual blocks, the stride 2
  where the size halves); decoder `z -> Dense[784] -> UnFlatten[7x7x16] -> [7x7x64
  -> 14x14x64 -> 14x14x64 -> 28x28x32 -> 28x28x32]` (transposed convolutions /
  transposed residual blocks). The paper does not state its weight decay in B.2; we
  put L2 1e-4 on every non-linear kernel (`l2` argument, 0 turns it off) and none on
  the linear shortcuts or the heads.

Morningstar et al., "Automatic Differentiation Variational Inference with Mixtures",
appendix B.2/C.4: the decoder is "the TensorFlow Probability GitHub example's"
(`tensorflow_probability/examples/vae.py`) with a skip connection (the head's
`skip=True`). We take that example's networks with its defaults (base depth 32,
leaky ReLU, 5x5 kernels): encoder `Conv(32, s1) -> Conv(32, s2) -> Conv(64, s1) ->
Conv(64, s2) -> Conv(4 * latent, 7x7 valid) -> Flatten` (the example's final Dense is
our head); decoder `z as [1, 1, d] -> DeConv(64, H/4 x H/4 valid) -> DeConv(64) ->
DeConv(64, s2) -> DeConv(32) -> DeConv(32, s2) -> DeConv(32)`; the example's final
linear 5x5 convolution to the image channels is replaced by our 1x1 linear head.

Tomczak & Welling, "VAE with a VampPrior" (their convHVAE, L = 2, the image model of
Livne et al., "MIM: Mutual Information Machine", section 5.2): gated layers
`h(x) * sigmoid(g(x))` (`GatedDense`, `GatedConv2D`) throughout; the networks of the
two-level HVAE are `hvae_top_encoder`, `hvae_lower_features`, `hvae_lower_posterior`,
`hvae_lower_prior` and `hvae_decoder`, all scaled by one `width` (1.0 is the paper's
32/64 channels and 300 units). `tfvi.layers.conv_hvae` puts them under their heads.
"""

import keras
import numpy as np

__all__ = ["GatedConv2D", "GatedDense", "GatedStreams", "ResidualBlock",
           "hvae_decoder", "hvae_lower_features", "hvae_lower_posterior", "hvae_lower_prior",
           "hvae_pixel_conditioning", "hvae_top_encoder", "conv_vae_decoder", "conv_vae_encoder", "dense_vae_decoder",
           "dense_vae_encoder", "resnet_vae_decoder", "resnet_vae_encoder",
           "tfp_example_decoder", "tfp_example_encoder", "ARCHITECTURES", "ARCHITECTURE_NAMES",
           "TWO_LEVEL_ARCHITECTURES",
           "decoder_network", "encoder_network"]

_ENCODER_PLAN = ((32, 1), (32, 1), (64, 2), (64, 1), (64, 2), (16, 1))  # (channels, stride)
_DECODER_PLAN = ((64, 1), (64, 2), (64, 1), (32, 2), (32, 1))
_ACTIVATION = "leaky_relu"


def _regularizer(l2):
    return keras.regularizers.L2(l2) if l2 else None


@keras.saving.register_keras_serializable(package="tfvi")
class ResidualBlock(keras.layers.Layer):
    """A pre-activation residual block: `y = shortcut(x) + conv2(a(conv1(a(x))))`.

    `conv1` has `strides`; `conv2` keeps the shape; both are `kernel_size` with
    `activation` a before them. The shortcut is the identity when the shape is kept
    and a linear 1x1 (transposed) convolution with `strides` otherwise. With
    `transpose=True` the convolutions are transposed (Xu et al.'s DeResnet: the
    stride doubles the size). Input `[n, H, W, C_in]`, output `[n, H', W', filters]`.

    Args:
      filters: output channels.
      strides: 1 or 2.
      transpose: transposed convolutions (upsampling) instead of convolutions.
      kernel_size: the size of both convolutions' kernels.
      activation: a, any Keras activation name.
      l2: L2 weight on the two non-linear kernels (0: none).
    """

    def __init__(self, filters, strides=1, transpose=False, kernel_size=3,
                 activation=_ACTIVATION, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)
        self.transpose = bool(transpose)
        self.kernel_size = int(kernel_size)
        self.activation = activation
        self.l2 = float(l2)
        conv = keras.layers.Conv2DTranspose if self.transpose else keras.layers.Conv2D
        self.act = keras.layers.Activation(activation)
        self.conv1 = conv(self.filters, self.kernel_size, self.strides, padding="same",
                          kernel_regularizer=_regularizer(self.l2), name="conv1")
        self.conv2 = conv(self.filters, self.kernel_size, 1, padding="same",
                          kernel_regularizer=_regularizer(self.l2), name="conv2")
        self.shortcut = None
        self._conv = conv

    def build(self, input_shape):
        if self.strides != 1 or input_shape[-1] != self.filters:
            self.shortcut = self._conv(self.filters, 1, self.strides, padding="same",
                                       name="shortcut")
            self.shortcut.build(input_shape)
        self.conv1.build(input_shape)
        self.conv2.build(self.conv1.compute_output_shape(input_shape))
        self.built = True

    def call(self, x):
        residual = self.conv2(self.act(self.conv1(self.act(x))))
        return residual + (x if self.shortcut is None else self.shortcut(x))

    def compute_output_shape(self, input_shape):
        return self.conv1.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, strides=self.strides, transpose=self.transpose,
                      kernel_size=self.kernel_size, activation=self.activation, l2=self.l2)
        return config


def dense_vae_encoder(units=(500, 500), l2=1e-4, name="dense_vae_encoder"):
    """Xu et al.'s DenseVAE h(x): `Flatten -> Dense[500 -> 500]`, `[n, ...] -> [n, 500]`."""
    return keras.Sequential(
        [keras.layers.Flatten()] + [
            keras.layers.Dense(u, _ACTIVATION, kernel_regularizer=_regularizer(l2))
            for u in units], name=name)


def dense_vae_decoder(units=(500, 500), l2=1e-4, name="dense_vae_decoder"):
    """Xu et al.'s DenseVAE h(z): `Dense[500 -> 500]`, `[n, d] -> [n, 500]`."""
    return keras.Sequential(
        [keras.layers.Dense(u, _ACTIVATION, kernel_regularizer=_regularizer(l2))
         for u in units], name=name)


def _encoder(block, name):
    return keras.Sequential([block(c, s) for c, s in _ENCODER_PLAN]
                            + [keras.layers.Flatten()], name=name)


def _decoder(block, l2, name):
    return keras.Sequential(
        [keras.layers.Dense(7 * 7 * 16, _ACTIVATION, kernel_regularizer=_regularizer(l2)),
         keras.layers.Reshape((7, 7, 16))] + [block(c, s) for c, s in _DECODER_PLAN],
        name=name)


def conv_vae_encoder(l2=1e-4, name="conv_vae_encoder"):
    """Xu et al.'s ConvVAE h(x): `[n, 28, 28, C] -> [n, 784]` (7x7x16 flattened)."""
    return _encoder(lambda c, s: keras.layers.Conv2D(
        c, 3, s, padding="same", activation=_ACTIVATION,
        kernel_regularizer=_regularizer(l2)), name)


def conv_vae_decoder(l2=1e-4, name="conv_vae_decoder"):
    """Xu et al.'s ConvVAE h(z): `[n, d] -> [n, 28, 28, 32]` (transposed convolutions)."""
    return _decoder(lambda c, s: keras.layers.Conv2DTranspose(
        c, 3, s, padding="same", activation=_ACTIVATION,
        kernel_regularizer=_regularizer(l2)), l2, name)


def resnet_vae_encoder(l2=1e-4, name="resnet_vae_encoder"):
    """Xu et al.'s ResnetVAE h(x): `[n, 28, 28, C] -> [n, 784]` (residual blocks)."""
    return _encoder(lambda c, s: ResidualBlock(c, s, l2=l2), name)


def resnet_vae_decoder(l2=1e-4, name="resnet_vae_decoder"):
    """Xu et al.'s ResnetVAE h(z): `[n, d] -> [n, 28, 28, 32]` (transposed residual blocks)."""
    return _decoder(lambda c, s: ResidualBlock(c, s, transpose=True, l2=l2), l2, name)


def tfp_example_encoder(latent_dim=16, base_depth=32, name="tfp_example_encoder"):
    """The TFP VAE example's encoder (Morningstar et al.): `[n, H, W, C] -> [n, 4 * d]`.

    Needs H = W = 28 (the 7x7 valid convolution after two stride-2 layers).
    """
    conv = lambda c, k, s=1, padding="same": keras.layers.Conv2D(  # noqa: E731
        c, k, s, padding=padding, activation=_ACTIVATION)
    return keras.Sequential([
        conv(base_depth, 5), conv(base_depth, 5, 2), conv(2 * base_depth, 5),
        conv(2 * base_depth, 5, 2), conv(4 * latent_dim, 7, padding="valid"),
        keras.layers.Flatten()], name=name)


def tfp_example_decoder(event_shape=(28, 28, 1), base_depth=32, name="tfp_example_decoder"):
    """The TFP VAE example's decoder (Morningstar et al.): `[n, d] -> [n, H, W, 32]`.

    H = W = `event_shape[0]`, a multiple of 4; the head adds the image channels.
    """
    size = int(event_shape[0])
    if size % 4 or int(event_shape[1]) != size:
        raise ValueError(f"`event_shape` must be square with a side divisible by 4; "
                         f"got {tuple(event_shape)}.")
    deconv = lambda c, k, s=1, padding="same": keras.layers.Conv2DTranspose(  # noqa: E731
        c, k, s, padding=padding, activation=_ACTIVATION)
    return keras.Sequential([
        keras.layers.Reshape((1, 1, -1)),
        deconv(2 * base_depth, size // 4, padding="valid"), deconv(2 * base_depth, 5),
        deconv(2 * base_depth, 5, 2), deconv(base_depth, 5), deconv(base_depth, 5, 2),
        deconv(base_depth, 5)], name=name)


class _Gated(keras.layers.Layer):
    """`activation(h(x)) * sigmoid(g(x))` for two twin layers h, g made by `_twin`."""

    def __init__(self, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.activation = activation
        self.act = keras.activations.get(activation)
        self.h, self.g = self._twin("h"), self._twin("g")

    def build(self, input_shape):
        self.h.build(input_shape)
        self.g.build(input_shape)
        self.built = True

    def call(self, x):
        return self.act(self.h(x)) * keras.ops.sigmoid(self.g(x))

    def compute_output_shape(self, input_shape):
        return self.h.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(activation=self.activation)
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class GatedDense(_Gated):
    """Tomczak & Welling's gated dense layer: `[..., n] -> [..., units]`."""

    def __init__(self, units, activation=None, **kwargs):
        self.units = int(units)
        super().__init__(activation, **kwargs)

    def _twin(self, name):
        return keras.layers.Dense(self.units, name=name)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="tfvi")
class GatedConv2D(_Gated):
    """Tomczak & Welling's gated convolution ("same" padding): `[n, H, W, C] ->
    [n, ceil(H / strides), ceil(W / strides), filters]`."""

    def __init__(self, filters, kernel_size=3, strides=1, activation=None, **kwargs):
        self.filters, self.kernel_size, self.strides = int(filters), int(kernel_size), int(strides)
        super().__init__(activation, **kwargs)

    def _twin(self, name):
        return keras.layers.Conv2D(self.filters, self.kernel_size, self.strides,
                                   padding="same", name=name)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "strides": self.strides}


@keras.saving.register_keras_serializable(package="tfvi")
class GatedStreams(keras.layers.Layer):
    """Two inputs packed as one: `concat[f(x[..., :split]), g(x[..., split:])]`.

    f and g are `GatedDense(units)` layers, or the identity where `units` is 0. It is
    how Tomczak & Welling's networks read two sources (x features and z2; z1 and z2)
    while tfvi's heads pass one tensor. `[..., n] -> [..., first + second]`.
    """

    def __init__(self, split, units=(0, 0), **kwargs):
        super().__init__(**kwargs)
        self.split = int(split)
        self.units = tuple(int(u) for u in units)
        if len(self.units) != 2 or min(self.units) < 0 or self.split <= 0:
            raise ValueError(f"GatedStreams needs split > 0 and two units >= 0; got "
                             f"split={split!r}, units={units!r}.")
        self.streams = [GatedDense(u, name=f"stream_{i}") if u else None
                        for i, u in enumerate(self.units)]

    def build(self, input_shape):
        sizes = (self.split, int(input_shape[-1]) - self.split)
        for stream, size in zip(self.streams, sizes):
            if stream is not None:
                stream.build(tuple(input_shape)[:-1] + (size,))
        self.built = True

    def call(self, x):
        parts = (x[..., :self.split], x[..., self.split:])
        return keras.ops.concatenate(
            [p if s is None else s(p) for s, p in zip(self.streams, parts)], axis=-1)

    def compute_output_shape(self, input_shape):
        sizes = (self.split, int(input_shape[-1]) - self.split)
        return tuple(input_shape)[:-1] + (sum(u or n for u, n in zip(self.units, sizes)),)

    def get_config(self):
        return {**super().get_config(), "split": self.split, "units": list(self.units)}


def _scaled(n, width):
    return max(1, int(round(n * width)))


def _gated_convs(plan, width, name):
    """`[(filters, kernel, stride)]` gated convolutions (filters scaled by `width`,
    except the last layer's 6 channels) ending in Flatten."""
    convs = [GatedConv2D(_scaled(c, width) if i < len(plan) - 1 else c, k, s)
             for i, (c, k, s) in enumerate(plan)]
    return keras.Sequential(convs + [keras.layers.Flatten()], name=name)


def hvae_top_encoder(width=1.0, name="hvae_top_encoder"):
    """h(x) of q(z2|x): `[n, H, W, C] -> [n, ceil(H/4) * ceil(W/4) * 6]` (294 on 28x28)."""
    return _gated_convs(((32, 7, 1), (32, 3, 2), (64, 5, 1), (64, 3, 2), (6, 3, 1)),
                        width, name)


def hvae_lower_features(width=1.0, name="hvae_lower_features"):
    """The x-branch of q(z1|x, z2): `[n, H, W, C] -> [n, ceil(H/4) * ceil(W/4) * 6]`."""
    return _gated_convs(((32, 3, 1), (32, 3, 2), (64, 3, 1), (64, 3, 2), (6, 3, 1)),
                        width, name)


def hvae_lower_posterior(num_features, width=1.0, name="hvae_lower_posterior"):
    """q(z1|x, z2)'s trunk over `concat[features(x) [F], z2]`: z2 through a gated dense
    layer of F units, then a joint gated dense layer of 300 `width` units."""
    return keras.Sequential([GatedStreams(num_features, (0, num_features)),
                             GatedDense(_scaled(300, width))], name=name)


def hvae_lower_prior(width=1.0, name="hvae_lower_prior"):
    """p(z1|z2)'s trunk: two gated dense layers of 300 `width` units."""
    return keras.Sequential([GatedDense(_scaled(300, width)), GatedDense(_scaled(300, width))],
                            name=name)


def hvae_decoder(lower_dim, event_shape=(28, 28, 1), width=1.0, num_convs=4,
                 name="hvae_decoder"):
    """p(x|z1, z2)'s network over `z = concat[z1 (lower_dim), z2]`: `[n, d1 + d2] ->
    [n, H, W, 64 width]`. z1 and z2 each through a gated dense layer of 300 `width`
    units, a joint gated dense layer to H * W * C reshaped to the image, then `num_convs`
    gated 3x3 convolutions of 64 `width` channels (the head adds the 1x1 output layer)."""
    units = _scaled(300, width)
    size = int(np.prod(event_shape))
    return keras.Sequential(
        [GatedStreams(int(lower_dim), (units, units)), GatedDense(size),
         keras.layers.Reshape(tuple(int(s) for s in event_shape))]
        + [GatedConv2D(_scaled(64, width), 3) for _ in range(int(num_convs))], name=name)


def hvae_pixel_conditioning(lower_dim, event_shape=(28, 28, 1), name="hvae_pixel_conditioning"):
    """The PixelHVAE's h(z1, z2) for its PixelCNN: z1 and z2 each through a gated dense
    layer to H * W * C, stacked as channels: `[n, d1 + d2] -> [n, H, W, 2 C]`."""
    height, width_, channels = (int(s) for s in event_shape)
    size = height * width_ * channels
    return keras.Sequential([GatedStreams(int(lower_dim), (size, size)),
                             keras.layers.Reshape((height, width_, 2 * channels))], name=name)


# Xu et al.'s networks by --architecture name: (encoder factory, decoder factory).
ARCHITECTURES = {
    "dense_vae": (dense_vae_encoder, dense_vae_decoder),
    "conv_vae": (conv_vae_encoder, conv_vae_decoder),
    "resnet_vae": (resnet_vae_encoder, resnet_vae_decoder),
}
# Two-level models by --architecture name -> their p(x|z1, z2) (`tfvi.layers.conv_hvae`'s
# `likelihood`): they replace the encoder, the decoder and the prior together.
TWO_LEVEL_ARCHITECTURES = {"conv_hvae": "bernoulli", "conv_hvae_pixelcnn": "pixelcnn"}
# Every --architecture value: "mlp" (the heads' own MLP), Xu et al.'s three,
# "conv" (Morningstar et al.'s TFP-example networks) and the two-level models.
ARCHITECTURE_NAMES = ("mlp",) + tuple(ARCHITECTURES) + ("conv",) + tuple(TWO_LEVEL_ARCHITECTURES)


def _check_one_level(architecture):
    if architecture in TWO_LEVEL_ARCHITECTURES:
        raise ValueError(f"--architecture={architecture} is a two-level model with its own "
                         "encoder, decoder and prior (tfvi.layers.conv_hvae), not a network "
                         "under a one-level head.")


def encoder_network(architecture, latent_dim):
    """The named architecture's encoder network (None for "mlp")."""
    _check_one_level(architecture)
    if architecture == "mlp":
        return None
    if architecture == "conv":
        return tfp_example_encoder(latent_dim)
    return ARCHITECTURES[architecture][0]()


def decoder_network(architecture, event_shape):
    """The named architecture's decoder network for images of `event_shape` (None: "mlp")."""
    _check_one_level(architecture)
    if architecture == "mlp":
        return None
    if architecture == "conv":
        return tfp_example_decoder(event_shape)
    return ARCHITECTURES[architecture][1]()
