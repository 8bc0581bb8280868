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
"""

import keras

__all__ = ["ResidualBlock", "conv_vae_decoder", "conv_vae_encoder", "dense_vae_decoder",
           "dense_vae_encoder", "resnet_vae_decoder", "resnet_vae_encoder",
           "tfp_example_decoder", "tfp_example_encoder", "ARCHITECTURES", "ARCHITECTURE_NAMES",
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


# Xu et al.'s networks by --architecture name: (encoder factory, decoder factory).
ARCHITECTURES = {
    "dense_vae": (dense_vae_encoder, dense_vae_decoder),
    "conv_vae": (conv_vae_encoder, conv_vae_decoder),
    "resnet_vae": (resnet_vae_encoder, resnet_vae_decoder),
}
# Every --architecture value: "mlp" (the heads' own MLP), Xu et al.'s three, and
# "conv" (Morningstar et al.'s TFP-example networks).
ARCHITECTURE_NAMES = ("mlp",) + tuple(ARCHITECTURES) + ("conv",)


def encoder_network(architecture, latent_dim):
    """The named architecture's encoder network (None for "mlp")."""
    if architecture == "mlp":
        return None
    if architecture == "conv":
        return tfp_example_encoder(latent_dim)
    return ARCHITECTURES[architecture][0]()


def decoder_network(architecture, event_shape):
    """The named architecture's decoder network for images of `event_shape` (None: "mlp")."""
    if architecture == "mlp":
        return None
    if architecture == "conv":
        return tfp_example_decoder(event_shape)
    return ARCHITECTURES[architecture][1]()
