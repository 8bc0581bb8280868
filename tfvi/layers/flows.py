"""Normalising-flow building blocks: Keras 3 layers that hand TFP bijectors their functions.

Each block is a Keras layer holding the weights; `bijector()` returns the TFP bijector
that uses them, and `call(x)` applies it (`bijector().forward(x)`), so inputs of any
leading shape `[..., d]` (e.g. `[T, K, batch, d]` samples) go through. Nothing here uses
`tfp.layers`, `tfb.AutoregressiveNetwork` or `real_nvp_default_template` (tf_keras
objects that do not mix with Keras 3 variable tracking).

Blocks (Xu et al., section 2.2 and Appendix B.2):

* `InvertibleDense`: y = W x with W = P L U (LU-parameterised, `tfb.ScaleMatvecLU`),
  initialised at a random rotation; log|det W| = sum_i log|U_ii|.
* `AffineCoupling`: y = [u_l, u_r * sigmoid(s(u_l) + 2) / sigmoid(2) + t(u_l)] with the
  s, t output layer zero-initialised, so the block starts at the identity
  (Xu et al. B.2 uses `sigmoid(s)`; the +2 shift and normalisation, as in Glow, make
  depth-50 stacks start at the identity instead of a 0.5^50 contraction).
* `ActNorm`: y = x * exp(log_scale) + bias per dimension, with data-dependent
  initialisation (`initialize(x)`: outputs of zero mean and unit variance on `x`);
  the identity until initialised.
* `MaskedDense` / `MADE`: masked dense layers giving the autoregressive shift and
  log-scale of `tfb.MaskedAutoregressiveFlow` (Germain et al. 2015, Papamakarios 2017).

Stacks:

* `RealNVPFlow(latent_dim, depth)`: K blocks InvertibleDense -> AffineCoupling ->
  ActNorm; `bijector()` is f (Xu et al. eq. 4: w = f(z), applied block by block).
* `MAFFlow(latent_dim, depth)`: K MAF layers separated by reversing permutations;
  `bijector()` maps noise to data (TFP's convention: its inverse, the density
  direction, is one network pass, sampling takes d passes).
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvi.layers.heads import float32_policy
from tfvi.layers.mlp import MLP
from tfvi.validation import check_positive_int

tfb = tfp.bijectors

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "BijectorLayer",
    "InvertibleDense",
    "MADE",
    "MAFFlow",
    "MaskedDense",
    "RealNVPFlow",
]


class BijectorLayer(keras.layers.Layer):
    """A layer whose transform is the TFP bijector `bijector()` builds from its weights:
    `call(x)` = forward(x), `inverse(y)`, shapes `[..., d] -> [..., d]`."""

    def __init__(self, **kwargs):
        super().__init__(**float32_policy(kwargs))  # log-determinants in float32

    def bijector(self):
        raise NotImplementedError(f"{type(self).__name__} must define bijector(), the "
                                  "TFP bijector of its transform.")

    def call(self, x):
        return self.bijector().forward(x)

    def inverse(self, y):
        return self.bijector().inverse(y)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


class _FlowBlock(BijectorLayer):
    """One flow block over `[..., dim]`."""

    def __init__(self, dim, **kwargs):
        super().__init__(**kwargs)
        self.dim = check_positive_int("dim", dim)

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim)
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class InvertibleDense(_FlowBlock):
    """y = P L U x, an invertible linear map in LU form (`tfb.ScaleMatvecLU`).

    `lower_upper` (`[d, d]`, trainable) packs unit-lower L and upper U; the
    permutation P is fixed. Initialised at the LU factors of a random orthogonal
    matrix (seeded), so the block starts as a rotation (log-det 0).
    """

    def __init__(self, dim, seed=None, **kwargs):
        super().__init__(dim, **kwargs)
        self.seed = seed
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.standard_normal((self.dim, self.dim)))
        lu, perm = tf.linalg.lu(tf.constant(q, tf.float32))
        self.lower_upper = self.add_weight(
            shape=(self.dim, self.dim), initializer=keras.initializers.Constant(lu.numpy()),
            name="lower_upper")
        self.permutation = self.add_weight(
            shape=(self.dim,), dtype="int32", trainable=False,
            initializer=keras.initializers.Constant(perm.numpy()), name="permutation")

    def build(self, input_shape=None):
        self.built = True

    def bijector(self):
        return tfb.ScaleMatvecLU(tf.convert_to_tensor(self.lower_upper),
                                 tf.convert_to_tensor(self.permutation),
                                 validate_args=False)

    def get_config(self):
        config = super().get_config()
        config.update(seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class ActNorm(_FlowBlock):
    """y = x * exp(log_scale) + bias, per dimension, with data-dependent init.

    `initialize(x)` (eager) sets the parameters so that the outputs on `x`
    (`[..., d]`) have zero mean and unit variance per dimension (Kingma & Dhariwal
    2018); `initialized` is a saved non-trainable flag so a reload does not redo it.
    """

    def __init__(self, dim, **kwargs):
        super().__init__(dim, **kwargs)
        self.bias = self.add_weight(shape=(self.dim,), initializer="zeros", name="bias")
        self.log_scale = self.add_weight(shape=(self.dim,), initializer="zeros",
                                         name="log_scale")
        self.initialized = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                           name="initialized")

    def build(self, input_shape=None):
        self.built = True

    def initialize(self, x, eps=1e-6):
        x = tf.reshape(tf.convert_to_tensor(x, tf.float32), [-1, self.dim])
        mean, var = tf.nn.moments(x, axes=[0])
        log_std = 0.5 * tf.math.log(var + eps)
        self.log_scale.assign(-log_std)
        self.bias.assign(-mean * tf.exp(-log_std))
        self.initialized.assign(1.0)

    def bijector(self):
        return tfb.Chain([tfb.Shift(tf.convert_to_tensor(self.bias)),
                          tfb.Scale(log_scale=tf.convert_to_tensor(self.log_scale))])


@keras.saving.register_keras_serializable(package="tfvi")
class AffineCoupling(_FlowBlock):
    """Affine coupling (Dinh et al. 2017; Xu et al. B.2), via `tfb.RealNVP`.

        y_l = u_l,   y_r = u_r * sigmoid(s(u_l) + 2) / sigmoid(2) + t(u_l),

    with u_l the first floor(d/2) dimensions; s and t share an MLP trunk
    (`hidden`, `activation`) and a zero-initialised linear output layer, so the block
    starts at the identity. log|det| = sum_r log(sigmoid(s_r + 2) / sigmoid(2)).
    """

    def __init__(self, dim, hidden=(256,), activation="leaky_relu", **kwargs):
        super().__init__(dim, **kwargs)
        if self.dim < 2:
            raise ValueError(f"`dim` of an AffineCoupling must be >= 2; got {self.dim}.")
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.num_masked = self.dim // 2
        self.trunk = MLP(self.hidden, activation, name="trunk", dtype=self.dtype_policy)
        self.shift_and_scale = keras.layers.Dense(
            2 * (self.dim - self.num_masked), kernel_initializer="zeros", name="shift_and_scale",
            dtype=self.dtype_policy)
        self.trunk.build((None, self.num_masked))
        self.shift_and_scale.build(self.trunk.compute_output_shape((None, self.num_masked)))

    def build(self, input_shape=None):
        self.built = True

    def _bijector_fn(self, x0, input_depth, **unused):
        out = self.shift_and_scale(self.trunk(x0))
        shift, raw = tf.split(out, 2, axis=-1)
        log_scale = tf.math.log_sigmoid(raw + 2.0) - tf.math.log_sigmoid(2.0)
        return tfb.Chain([tfb.Shift(shift), tfb.Scale(log_scale=log_scale)])

    def bijector(self):
        return tfb.RealNVP(num_masked=self.num_masked, bijector_fn=self._bijector_fn)

    def get_config(self):
        config = super().get_config()
        config.update(hidden=list(self.hidden), activation=self.activation)
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class MaskedDense(keras.layers.Layer):
    """Dense layer whose kernel is multiplied by a fixed 0/1 `mask` (`[in, units]`)."""

    def __init__(self, units, mask, activation=None, kernel_initializer="glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.mask = np.asarray(mask, np.float32)
        if self.mask.ndim != 2 or self.mask.shape[1] != self.units:
            raise ValueError(
                f"`mask` must have shape [input_dim, {self.units}]; got {self.mask.shape}.")
        self.activation = keras.activations.get(activation)
        self._activation_name = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._kernel_initializer_config = keras.initializers.serialize(self.kernel_initializer)
        self.kernel = self.add_weight(shape=self.mask.shape, initializer=self.kernel_initializer,
                                      name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def build(self, input_shape=None):
        self.built = True

    def call(self, x):
        kernel = keras.ops.multiply(self.kernel, self.mask)
        # keras.ops.matmul, not tf.matmul: a rank-4 x rank-2 tf.matmul crashes oneDNN
        # in graph mode on this stack.
        return self.activation(keras.ops.matmul(x, kernel) + self.bias)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, mask=self.mask.tolist(),
                      activation=self._activation_name,
                      kernel_initializer=self._kernel_initializer_config)
        return config


def made_masks(dim, hidden):
    """MADE masks for inputs ordered 1..dim: one `[in, out]` 0/1 array per layer.

    Hidden unit degrees cycle through 1..dim-1; a hidden unit of degree m sees inputs
    of degree <= m, an output of degree i sees hidden units of degree < i, so output i
    depends on inputs 1..i-1 only. The last mask is for one output per input.
    """
    in_deg = np.arange(1, dim + 1)
    degrees = [in_deg]
    for h in hidden:
        degrees.append(np.arange(h) % max(1, dim - 1) + min(1, dim - 1))
    masks = [(d_in[:, None] <= d_out[None, :]).astype(np.float32)
             for d_in, d_out in zip(degrees[:-1], degrees[1:])]
    masks.append((degrees[-1][:, None] < in_deg[None, :]).astype(np.float32))
    return masks


@keras.saving.register_keras_serializable(package="tfvi")
class MADE(keras.layers.Layer):
    """Masked autoencoder: x `[..., d]` -> (shift, log_scale), each `[..., d]`, where
    output i depends only on x_<i. The output layer is zero-initialised (identity
    flow at the start); log_scale is soft-clipped to (-5, 5) for stability."""

    def __init__(self, dim, hidden=(64, 64), activation="relu", **kwargs):
        super().__init__(**float32_policy(kwargs))  # a density's conditioner: float32
        self.dim = check_positive_int("dim", dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        masks = made_masks(self.dim, self.hidden)
        self.hidden_layers = [
            MaskedDense(h, m, activation=activation, name=f"masked_{i}",
                        dtype=self.dtype_policy)
            for i, (h, m) in enumerate(zip(self.hidden, masks[:-1]))]
        out_mask = np.concatenate([masks[-1], masks[-1]], axis=1)
        self.output_layer = MaskedDense(2 * self.dim, out_mask, kernel_initializer="zeros",
                                        dtype=self.dtype_policy,
                                        name="masked_out")

    def build(self, input_shape=None):
        self.built = True

    def call(self, x):
        h = x
        for layer in self.hidden_layers:
            h = layer(h)
        shift, raw = tf.split(self.output_layer(h), 2, axis=-1)
        return shift, 5.0 * tf.tanh(raw / 5.0)

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, hidden=list(self.hidden), activation=self.activation)
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class RealNVPFlow(BijectorLayer):
    """f = f_K o ... o f_1, f_k = ActNorm o AffineCoupling o InvertibleDense (Xu et al. B.2).

    `bijector()` is f; `call(z)` = f(z), `[..., d] -> [..., d]`. As a prior (Xu et al.
    eq. 4) p(z) = N(f(z); 0, I) |det df/dz|; as a posterior (eq. B.1) z = f(w).

    Args:
      latent_dim: d (>= 2).
      depth: K, the number of blocks (Xu et al. uses K = 20).
      hidden: widths of each coupling network's hidden layers (Xu et al.: (256,)).
      activation: their activation (Xu et al.: leaky relu).
      seed: seeds the invertible-dense rotations.
    """

    def __init__(self, latent_dim, depth=20, hidden=(256,), activation="leaky_relu",
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        if self.latent_dim < 2:
            raise ValueError(f"`latent_dim` must be >= 2 for a Real NVP flow; got {latent_dim}.")
        self.depth = check_positive_int("depth", depth)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.seed = seed
        d = self.latent_dim
        self.blocks = []
        for k in range(self.depth):
            block_seed = None if seed is None else seed * 1000 + k
            self.blocks += [
                InvertibleDense(d, seed=block_seed, name=f"invertible_dense_{k}"),
                AffineCoupling(d, self.hidden, activation, name=f"coupling_{k}"),
                ActNorm(d, name=f"actnorm_{k}"),
            ]

    def build(self, input_shape=None):
        self.built = True

    def bijector(self):
        # tfb.Chain applies its list last-to-first.
        return tfb.Chain([b.bijector() for b in reversed(self.blocks)])

    def initialize(self, z):
        """Data-dependent ActNorm initialisation with inputs `z` `[..., d]` (eager)."""
        h = tf.reshape(tf.convert_to_tensor(z, tf.float32), [-1, self.latent_dim])
        for block in self.blocks:
            if isinstance(block, ActNorm):
                block.initialize(h)
            h = block.bijector().forward(h)
        return h

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim, depth=self.depth, hidden=list(self.hidden),
                      activation=self.activation, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class MAFFlow(BijectorLayer):
    """K masked autoregressive flows (Papamakarios et al. 2017) with reversals between.

    `bijector()` maps noise u to data z (TFP's `MaskedAutoregressiveFlow` convention):
    z_i = u_i exp(log_scale_i(z_<i)) + shift_i(z_<i). Its inverse (the density
    direction) is one MADE pass per layer; sampling takes d passes per layer.

    Args:
      latent_dim: d.
      depth: K, the number of MAF layers.
      hidden: MADE hidden widths.
      activation: MADE activation.
    """

    def __init__(self, latent_dim, depth=5, hidden=(64, 64), activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.depth = check_positive_int("depth", depth)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.mades = [MADE(self.latent_dim, self.hidden, activation, name=f"made_{k}")
                      for k in range(self.depth)]

    def build(self, input_shape=None):
        self.built = True

    def bijector(self):
        reverse = np.arange(self.latent_dim)[::-1].astype(np.int32)
        bijectors = []
        for k, made in enumerate(self.mades):
            if k > 0:
                bijectors.append(tfb.Permute(permutation=reverse))
            bijectors.append(tfb.MaskedAutoregressiveFlow(
                shift_and_log_scale_fn=made, unroll_loop=True))
        # Chain applies last-to-first: noise goes through made_{K-1} first. The loop
        # is unrolled (d is small): TFP's eager while_loop gives no gradients.
        return tfb.Chain(bijectors)

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim, depth=self.depth, hidden=list(self.hidden),
                      activation=self.activation)
        return config
