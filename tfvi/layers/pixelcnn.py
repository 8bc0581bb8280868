"""PixelCNN layers and the autoregressive Bernoulli likelihood of a PixelVAE.

Xu et al., "On the Necessity and Effectiveness of Learning the Prior of Variational
Auto-Encoder", App. B.2 (PixelVAE, after Gulrajani et al.'s PixelVAE and Salimans et
al.'s PixelCNN++):

    p(x|z) = prod_i Bernoulli(x_i; sigmoid(l_i)),   l = PixelCNN(Concat[x, h(z)]),

with i running over the pixels in raster order (row by row, left to right). The
network's receptive field at pixel i holds x_j only for j < i, so the logits of every
pixel come out of one pass over the observed image (teacher forcing) and
`log p(x|z)` is exact. Sampling draws the pixels one after another: `H * W` passes of
the network inside one `tf.while_loop`.

Where the paper defers to PixelCNN++, tfvi chooses:

* causality by masked convolutions (type "A" for the first layer, which hides the
  centre pixel, type "B" after it, which shows the centre's own features), not
  PixelCNN++'s down- and down-right-shifted streams. A masked stack has a blind spot
  (a wedge up and to the right of each pixel is out of view), but its conditionals are
  exact and it is one stream;
* the conditioning `h(z)` is not masked: it depends on z only, so every position may
  see all of it. It enters the first layer and every gated residual block through a
  1x1 convolution, which is the paper's `Concat[x, h(z)]` with the mask applied to the
  x channels alone;
* the channels of one pixel are conditionally independent given the earlier pixels
  (the mask runs over pixels, not channels); the papers' images have one channel.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = ["causal_mask", "MaskedConv2D", "GatedResidualBlock", "PixelCNN",
           "PixelCNNBernoulli", "PixelCNNDecoder"]

_MASK_TYPES = ("A", "B")


def causal_mask(kernel_size, in_channels, out_channels, mask_type):
    """`[k, k, in_channels, out_channels]` 0/1 mask of a raster-order causal convolution.

    Kernel tap `(r, c)` reads the input pixel at offset `(r - k // 2, c - k // 2)`; it
    is kept iff that pixel comes before the centre in raster order, or is the centre
    itself for `mask_type="B"`.
    """
    if mask_type not in _MASK_TYPES:
        raise ValueError(f"`mask_type` must be one of {_MASK_TYPES}; got {mask_type!r}.")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"`kernel_size` must be a positive odd int; got {kernel_size!r}.")
    centre = kernel_size // 2
    mask = np.zeros((kernel_size, kernel_size, in_channels, out_channels), np.float32)
    mask[:centre] = 1.0
    mask[centre, :centre] = 1.0
    if mask_type == "B":
        mask[centre, centre] = 1.0
    return mask


@keras.saving.register_keras_serializable(package="tfvi")
class MaskedConv2D(keras.layers.Layer):
    """Stride-1 "same" convolution whose kernel is multiplied by `causal_mask`.

    Input `[n, H, W, C_in]`, output `[n, H, W, filters]`; output pixel i depends on
    input pixels j < i (type "A") or j <= i (type "B") in raster order.
    """

    def __init__(self, filters, kernel_size=3, mask_type="B", activation=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.mask_type = mask_type
        causal_mask(self.kernel_size, 1, 1, mask_type)  # validates both arguments
        self.activation = keras.activations.get(activation)
        self._activation_name = activation

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        k = self.kernel_size
        self.kernel = self.add_weight(shape=(k, k, in_channels, self.filters),
                                      initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="bias")
        # numpy, so the constant is made in whichever graph `call` runs in.
        self.mask = causal_mask(k, in_channels, self.filters, self.mask_type)
        self.built = True

    def call(self, x):
        kernel = tf.cast(self.kernel * tf.constant(self.mask), x.dtype)
        out = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")
        return self.activation(out + tf.cast(self.bias, x.dtype))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size,
                      mask_type=self.mask_type, activation=self._activation_name)
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class GatedResidualBlock(keras.layers.Layer):
    """PixelCNN++'s gated residual block over causal features `u` `[n, H, W, F]`:

        c = elu(MaskedConv_B(elu(u)) + W h),   c = dropout(c),
        a, b = split(MaskedConv_B(c) + V h),   out = u + a * sigmoid(b),

    with `h` `[n, H, W, F_h]` the (unmasked) conditioning, entering through 1x1
    convolutions `W`, `V`. Both convolutions are type "B", so the block keeps the
    causality of its input.
    """

    def __init__(self, filters, kernel_size=3, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.dropout = float(dropout)
        self.conv_in = MaskedConv2D(self.filters, self.kernel_size, "B", name="conv_in")
        self.conv_gate = MaskedConv2D(2 * self.filters, self.kernel_size, "B",
                                      name="conv_gate")
        self.cond_in = keras.layers.Dense(self.filters, use_bias=False, name="cond_in")
        self.cond_gate = keras.layers.Dense(2 * self.filters, use_bias=False,
                                            name="cond_gate")
        self.drop = keras.layers.Dropout(self.dropout)

    def build(self, input_shape, conditioning_shape=None):
        self.conv_in.build(input_shape)
        self.conv_gate.build(tuple(input_shape)[:-1] + (self.filters,))
        if conditioning_shape is not None:
            self.cond_in.build(conditioning_shape)
            self.cond_gate.build(conditioning_shape)
        self.built = True

    def call(self, u, conditioning=None, training=None):
        c = self.conv_in(tf.nn.elu(u))
        if conditioning is not None:
            c = c + self.cond_in(conditioning)
        c = self.drop(tf.nn.elu(c), training=training)
        c = self.conv_gate(c)
        if conditioning is not None:
            c = c + self.cond_gate(conditioning)
        a, b = tf.split(c, 2, axis=-1)
        return u + a * tf.sigmoid(b)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size,
                      dropout=self.dropout)
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class PixelCNN(keras.layers.Layer):
    """Logits of an autoregressive Bernoulli image model: `call(x, conditioning)`.

    `x` `[n, H, W, channels]` (the image, teacher-forced), `conditioning`
    `[n, H, W, F_h]` or None; returns float32 logits `[n, H, W, channels]` whose pixel
    i depends on `x_j` for j < i only (raster order) and on all of `conditioning`:

        u = MaskedConv_A(x) + W h,   u = block_b(...block_1(u, h)...),
        logits = Dense_channels(elu(u)).

    Args:
      channels: C, the image's channels.
      filters: width of the causal stack.
      num_blocks: gated residual blocks (Xu et al. use three).
      kernel_size: of the blocks' masked convolutions (odd).
      first_kernel_size: of the type-A input convolution (odd).
      dropout: rate inside the blocks (0.5 in Xu et al., as PixelCNN++), on only when
        `training`.
    """

    def __init__(self, channels=1, filters=32, num_blocks=3, kernel_size=3,
                 first_kernel_size=5, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.filters = int(filters)
        self.num_blocks = int(num_blocks)
        self.kernel_size = int(kernel_size)
        self.first_kernel_size = int(first_kernel_size)
        self.dropout = float(dropout)
        for name in ("channels", "filters"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be a positive int; got {getattr(self, name)}.")
        if self.num_blocks < 0:
            raise ValueError(f"`num_blocks` must be >= 0; got {self.num_blocks}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1); got {self.dropout}.")
        self.input_conv = MaskedConv2D(self.filters, self.first_kernel_size, "A",
                                       name="input_conv")
        self.input_cond = keras.layers.Dense(self.filters, use_bias=False, name="input_cond")
        self.blocks = [GatedResidualBlock(self.filters, self.kernel_size, self.dropout,
                                          name=f"block_{i}") for i in range(self.num_blocks)]
        self.output_layer = keras.layers.Dense(self.channels, name="logits")

    def build(self, input_shape, conditioning_shape=None):
        input_shape = tuple(input_shape)
        self.input_conv.build(input_shape)
        feature_shape = input_shape[:-1] + (self.filters,)
        if conditioning_shape is not None:
            self.input_cond.build(conditioning_shape)
        for block in self.blocks:
            block.build(feature_shape, conditioning_shape)
        self.output_layer.build(feature_shape)
        self.built = True

    def call(self, x, conditioning=None, training=None):
        u = self.input_conv(x)
        if conditioning is not None:
            u = u + self.input_cond(conditioning)
        for block in self.blocks:
            u = block(u, conditioning, training=training)
        return tf.cast(self.output_layer(tf.nn.elu(u)), tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, filters=self.filters,
                      num_blocks=self.num_blocks, kernel_size=self.kernel_size,
                      first_kernel_size=self.first_kernel_size, dropout=self.dropout)
        return config


def _bernoulli_log_prob(x, logits):
    """Elementwise log Bernoulli(x; sigmoid(logits)) = x * l - softplus(l)."""
    return -tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits)


class PixelCNNBernoulli(tfd.Distribution):
    """Autoregressive Bernoulli distribution over binary images `[H, W, C]`.

    `p(x) = prod_i Bernoulli(x_i; sigmoid(pixelcnn(x, h)_i))`, pixels i in raster
    order; batch shape `batch_shape` from `conditioning` `batch_shape + [H, W, F_h]`,
    event shape `[H, W, C]`. `log_prob` is one teacher-forced pass; `sample` runs
    `H * W` passes in a `tf.while_loop`, each drawing one pixel (all C channels) from its
    conditional given the pixels already drawn.

    Args:
      conditioning: `batch_shape + [H, W, F_h]` features of z.
      pixelcnn: a `PixelCNN` layer (anything called as `pixelcnn(x, h, training=...)`
        with a `channels` attribute).
      training: passed to `pixelcnn` by `log_prob` (dropout); sampling never uses it.
    """

    def __init__(self, conditioning, pixelcnn, training=False, validate_args=False,
                 allow_nan_stats=True, name="PixelCNNBernoulli"):
        parameters = dict(locals())
        self._conditioning = tf.convert_to_tensor(conditioning)
        if self._conditioning.shape.rank is None or self._conditioning.shape.rank < 3:
            raise ValueError("`conditioning` must have shape batch_shape + [H, W, F]; got "
                             f"{self._conditioning.shape}.")
        self._pixelcnn = pixelcnn
        self._training = training
        height, width = self._conditioning.shape[-3:-1]
        self._event = tf.TensorShape([height, width, pixelcnn.channels])
        super().__init__(dtype=tf.float32,
                         reparameterization_type=tfd.NOT_REPARAMETERIZED,
                         validate_args=validate_args, allow_nan_stats=allow_nan_stats,
                         parameters=parameters, name=name)

    @property
    def conditioning(self):
        return self._conditioning

    def _batch_shape(self):
        return self._conditioning.shape[:-3]

    def _batch_shape_tensor(self):
        return tf.shape(self._conditioning)[:-3]

    def _event_shape(self):
        return self._event

    def _event_shape_tensor(self):
        return tf.constant(self._event.as_list(), tf.int32)

    def _flat_conditioning(self, leading_shape):
        h = self._conditioning
        h = tf.broadcast_to(h, tf.concat([leading_shape, tf.shape(h)[-3:]], 0))
        return tf.reshape(h, tf.concat([[-1], tf.shape(h)[-3:]], 0))

    def _log_prob(self, x):
        x = tf.cast(x, tf.float32)
        leading = tf.broadcast_dynamic_shape(tf.shape(x)[:-3], self._batch_shape_tensor())
        x = tf.broadcast_to(x, tf.concat([leading, self._event_shape_tensor()], 0))
        x_flat = tf.reshape(x, tf.concat([[-1], self._event_shape_tensor()], 0))
        h_flat = tf.cast(self._flat_conditioning(leading), self._conditioning.dtype)
        logits = self._pixelcnn(x_flat, h_flat, training=self._training)
        log_prob = tf.reduce_sum(_bernoulli_log_prob(x_flat, logits), axis=[1, 2, 3])
        return tf.reshape(log_prob, leading)

    def _sample_n(self, n, seed=None):
        seed = tfp.random.sanitize_seed(seed, salt="PixelCNNBernoulli")
        leading = tf.concat([[n], self._batch_shape_tensor()], 0)
        h_flat = self._flat_conditioning(leading)
        height, width, channels = self._event.as_list()
        num = tf.shape(h_flat)[0]
        pixel_masks = tf.reshape(tf.eye(height * width), [height * width, height, width, 1])

        def draw_pixel(i, x):
            logits = self._pixelcnn(x, h_flat, training=False)
            row, col = i // width, i % width
            u = tf.random.stateless_uniform(
                [num, channels], seed=tf.random.experimental.stateless_fold_in(seed, i))
            # u < sigmoid(l)  <=>  log u < log sigmoid(l); log space keeps tiny p exact.
            bit = tf.cast(tf.math.log(u) < tf.math.log_sigmoid(logits[:, row, col, :]),
                          tf.float32)
            return i + 1, x + pixel_masks[i] * bit[:, tf.newaxis, tf.newaxis, :]

        x0 = tf.zeros(tf.concat([[num], self._event_shape_tensor()], 0), tf.float32)
        _, x = tf.while_loop(lambda i, _: i < height * width, draw_pixel,
                             (tf.constant(0), x0))
        return tf.reshape(x, tf.concat([leading, self._event_shape_tensor()], 0))


@keras.saving.register_keras_serializable(package="tfvi")
class PixelCNNDecoder(keras.layers.Layer):
    """p(x|z) of a PixelVAE (Xu et al., App. B.2): `call(z)` -> `PixelCNNBernoulli`.

    `z` `[..., d]` (any leading sample axes, e.g. `[T, K, batch, d]`) goes through the
    conditioning `network` to features `h(z)` `[..., H, W, F_h]`; the PixelCNN reads
    `Concat[x, h(z)]` with x causally masked. The result has batch shape `[...]` and
    event shape `event_shape = [H, W, C]`, so `decoder(z).log_prob(x)` with `x`
    `[batch, H, W, C]` gives `[T, K, batch]` exact log-likelihoods, and every bound,
    AIS and IWAE evaluation works on it unchanged.

    Args:
      event_shape: `(H, W, C)` of the binary images.
      network: a Keras layer mapping z `[n, d]` to `[n, H, W, F_h]` (Xu et al. use the
        ResnetVAE decoder stack, F_h = 32); None: a dense layer to
        `H * W * conditioning_channels` units, reshaped.
      conditioning_channels: F_h of the default network.
      filters, num_blocks, kernel_size, first_kernel_size, dropout: the `PixelCNN`'s.
    """

    def __init__(self, event_shape, network=None, conditioning_channels=4, filters=32,
                 num_blocks=3, kernel_size=3, first_kernel_size=5, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        event_shape = tuple(int(s) for s in event_shape)
        if len(event_shape) != 3 or min(event_shape) <= 0:
            raise ValueError("`event_shape` must be (H, W, C) with positive sizes; got "
                             f"{event_shape}.")
        self.event_shape = event_shape
        self.conditioning_channels = int(conditioning_channels)
        height, width, channels = event_shape
        if network is None:
            network = keras.Sequential([
                keras.layers.Dense(height * width * self.conditioning_channels),
                keras.layers.Reshape((height, width, self.conditioning_channels)),
            ], name="conditioning")
        self.network = network
        self.pixelcnn = PixelCNN(channels, filters, num_blocks, kernel_size,
                                 first_kernel_size, dropout, name="pixelcnn")
        self.latent_dim = None

    def build(self, input_shape):
        self.latent_dim = int(input_shape[-1])
        if not self.network.built:
            self.network.build((None, self.latent_dim))
        features = tuple(self.network.compute_output_shape((None, self.latent_dim)))
        if len(features) != 4 or tuple(features[1:3]) != self.event_shape[:2]:
            raise ValueError(
                f"{self.name}: `network` must map z [n, {self.latent_dim}] to features "
                f"[n, {self.event_shape[0]}, {self.event_shape[1]}, F]; it gives {features}.")
        if not self.pixelcnn.built:
            self.pixelcnn.build((None,) + self.event_shape, features)
        self.built = True

    def decoder_parameters(self, z):
        """`{"conditioning": h(z)}`, `h` of shape `[..., H, W, F_h]`."""
        z = tf.convert_to_tensor(z)
        leading = tf.shape(z)[:-1]
        h = self.network(tf.reshape(z, [-1, z.shape[-1]]))
        h = tf.reshape(h, tf.concat([leading, tf.shape(h)[1:]], 0))
        return {"conditioning": h}

    def distribution(self, params, training=False):
        return PixelCNNBernoulli(params["conditioning"], self.pixelcnn, training=training)

    def call(self, z, training=None):
        return self.distribution(self.decoder_parameters(z), training=bool(training))

    def prepare_targets(self, x):
        x = tf.convert_to_tensor(x, dtype=tf.float32)
        if x.shape.rank is not None and tuple(x.shape[-3:]) != self.event_shape:
            raise ValueError(f"{self.name}: targets `x` must end in {self.event_shape}; "
                             f"got shape {tuple(x.shape)}.")
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            event_shape=list(self.event_shape),
            network=keras.saving.serialize_keras_object(self.network),
            conditioning_channels=self.conditioning_channels,
            filters=self.pixelcnn.filters, num_blocks=self.pixelcnn.num_blocks,
            kernel_size=self.pixelcnn.kernel_size,
            first_kernel_size=self.pixelcnn.first_kernel_size,
            dropout=self.pixelcnn.dropout)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)
