"""Likelihoods p(x|z): Keras layers whose `call(z)` returns a distribution over x.

Each is a network (the default MLP, a network from `tfvi.networks`, or any Keras
layer or model) under a distribution head (`NetworkDecoder`). `z` may carry any
leading sample dimensions: `[T, K, batch, d]` in, a distribution with batch shape
`[T, K, batch]` and event shape `event_shape` (e.g. `[D]` or `[28, 28, 1]`) out, so
`decoder(z).log_prob(x)` with `x` of shape `[batch, *event_shape]` broadcasts to
`[T, K, batch]` log-likelihoods (summed over every event axis).

Every decoder exposes:

* `decoder_parameters(z)` -> dict of tensors (what the `decode` serving signature
  returns: logits, or loc and scale);
* `distribution(params)` -> the `tfd.Distribution`;
* `prepare_targets(x)` -> the targets as the likelihood scores them (clipping for the
  logit-normal, validation of {0, 1} data for the Bernoulli when `validate_args`).

`skip=True` adds one affine layer from z straight to the output (Morningstar et al.,
appendix B.2) so gradients reach the encoder early in training.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvi.layers import heads
from tfvi.layers.mlp import MLP
from tfvi.validation import check_choice

tfd = tfp.distributions
tfb = tfp.bijectors

_MIN_SCALE = 1e-4


def _softplus_inverse(x):
    return float(np.log(np.expm1(x)))


class NetworkDecoder(keras.layers.Layer):
    """A network from z to features, and the head from features to the event.

    `z` `[*leading, d]` (leading sample axes such as `[T, K, batch]`) is flattened to
    `[n, d]`, the network maps it to features, the head maps the features to one
    parameter tensor of shape `[n, *param_shape]` (logits or locations; `param_shape`
    is the event shape, `[num_classes]` for the categorical), and the leading axes are
    restored: `[*leading, *param_shape]`. The head is

    * a dense layer and a reshape when the features are flat, `[n, F]`;
    * a 1x1 linear convolution (a dense layer on the channel axis: Xu et al.'s
      LinearConv1x1, appendix B.2) when the features already have the event's
      spatial shape, `[n, *param_shape[:-1], C]`.

    `skip=True` adds `W z` (an affine map, no bias, reshaped to the event) to the
    output: Morningstar et al.'s skip connection (appendix B.2), so gradients reach the
    encoder early in training. Features are cast to float32 before the head, so under
    a mixed-precision policy the network computes in low precision and every
    log-density in float32.

    Args:
      output_dim: the event shape, an int `D` or a tuple such as `(28, 28, 1)` (the
        old name; `event_shape` is the same argument).
      hidden: widths of the default MLP's hidden layers (ignored with `network`).
      activation: their activation.
      skip: add the skip connection.
      event_shape: the event shape (give this or `output_dim`).
      network: any Keras layer or model from `[n, d]` to features `[n, F]` or
        `[n, *event_shape[:-1], C]`; None (default) builds the MLP from
        `hidden`/`activation`.
    """

    def __init__(self, output_dim=None, hidden=(200, 200), activation="tanh", skip=False,
                 event_shape=None, network=None, **kwargs):
        super().__init__(**heads.float32_policy(kwargs))
        if event_shape is None and output_dim is None:
            raise ValueError("Give the decoder's `event_shape` (or `output_dim`).")
        if event_shape is not None and output_dim is not None and (
                heads.event_shape_of(event_shape) != heads.event_shape_of(output_dim)):
            raise ValueError(f"`event_shape`={event_shape!r} and `output_dim`="
                             f"{output_dim!r} disagree; give one of them.")
        self.event_shape = heads.event_shape_of(
            output_dim if event_shape is None else event_shape,
            "output_dim" if event_shape is None else "event_shape")
        self.output_dim = heads.num_elements(self.event_shape)
        self.hidden = tuple(hidden)
        self.activation = activation
        self.skip = bool(skip)
        self.network = heads.get_network(network, "network")
        self.trunk = self.network if self.network is not None else MLP(
            hidden, activation, name="trunk")
        self.head = None  # built in `build`, once the features' shape is known
        self.skip_layer = (
            keras.layers.Dense(heads.num_elements(self.param_shape), use_bias=False,
                               name="skip", dtype=self.dtype_policy)
            if self.skip else None
        )
        self.latent_dim = None
        self.spatial_head = False

    @property
    def param_shape(self):
        """Shape of the parameter tensor the head emits per z (the event shape)."""
        return self.event_shape

    def build(self, input_shape):
        self.latent_dim = int(input_shape[-1])
        h_shape = heads.feature_shape(self.trunk, (None, self.latent_dim))
        shape = self.param_shape
        self.spatial_head = len(h_shape) > 2
        if self.spatial_head and tuple(h_shape[1:-1]) != shape[:-1]:
            raise ValueError(
                f"Decoder {self.name!r}: its network's output (the features) must have "
                f"shape [n, F] or [n, {', '.join(map(str, shape[:-1] + ('C',)))}] for "
                f"the event shape {shape}; got {h_shape}.")
        if self.head is None:
            units = shape[-1] if self.spatial_head else heads.num_elements(shape)
            self.head = keras.layers.Dense(units, name="head", dtype=self.dtype_policy)
        if not self.head.built:
            self.head.build(h_shape)
        if self.skip_layer is not None and not self.skip_layer.built:
            self.skip_layer.build((None, self.latent_dim))
        self.built = True

    def _outputs(self, z):
        """`[*leading, d]` -> the head's output `[*leading, *param_shape]` (float32)."""
        z = tf.convert_to_tensor(z)
        if not self.built:
            self.build(z.shape)
        flat_z, leading = heads.flatten_leading(z, 1)
        h = tf.cast(self.trunk(flat_z), tf.float32)
        out = self.head(h)
        n = tf.shape(flat_z)[:1]
        shape = tf.concat([n, self.param_shape], 0)
        out = tf.reshape(out, shape)
        if self.skip_layer is not None:
            out = out + tf.reshape(self.skip_layer(tf.cast(flat_z, tf.float32)), shape)
        out = heads.restore_leading(out, leading, len(self.param_shape))
        return tf.ensure_shape(out, [None] * (z.shape.rank - 1) + list(self.param_shape)) \
            if z.shape.rank is not None else out

    def call(self, z):
        return self.distribution(self.decoder_parameters(z))

    def prepare_targets(self, x):
        """The targets as the likelihood scores them; checks their event shape."""
        x = tf.convert_to_tensor(x, dtype=tf.float32)
        self.check_event_shape(x, "x")
        return x

    def check_event_shape(self, x, name):
        """A ValueError unless `x` ends in the event shape (`[batch, *event_shape]`)."""
        n = len(self.event_shape)
        if x.shape.rank is None:
            return
        if x.shape.rank < n or any(a not in (None, b) for a, b in zip(
                x.shape[x.shape.rank - n:], self.event_shape)):
            raise ValueError(
                f"Decoder {self.name!r} scores targets `{name}` of shape "
                f"[batch, {', '.join(map(str, self.event_shape))}]; got shape "
                f"{tuple(x.shape)}.")

    def independent(self, base):
        """`base` with every event axis reinterpreted: log_prob sums over all of them."""
        return tfd.Independent(base, len(self.event_shape))

    def get_config(self):
        config = super().get_config()
        config.update(
            event_shape=list(self.event_shape),
            hidden=list(self.hidden),
            activation=self.activation,
            skip=self.skip,
            network=(None if self.network is None
                     else keras.saving.serialize_keras_object(self.network)),
        )
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class BernoulliDecoder(NetworkDecoder):
    """p(x|z) = prod_i Bernoulli(x_i; sigmoid(f(z)_i)), parameterised by logits.

    Event shape `event_shape`. With `validate_args=True` the targets are checked to be
    in {0, 1} (a `ValueError` for arrays checked eagerly, an `InvalidArgumentError`
    inside a compiled step).
    """

    def __init__(self, output_dim=None, hidden=(200, 200), activation="tanh", skip=False,
                 validate_args=False, **kwargs):
        super().__init__(output_dim, hidden, activation, skip, **kwargs)
        self.validate_args = bool(validate_args)

    def decoder_parameters(self, z):
        return {"logits": self._outputs(z)}

    def distribution(self, params):
        return self.independent(tfd.Bernoulli(logits=params["logits"], dtype=tf.float32))

    def prepare_targets(self, x):
        x = super().prepare_targets(x)
        if self.validate_args:
            binary = tf.reduce_all(tf.logical_or(tf.equal(x, 0.0), tf.equal(x, 1.0)))
            if tf.executing_eagerly():
                if not bool(binary):
                    raise ValueError(
                        f"{self.name}: Bernoulli targets `x` must be 0 or 1; got values "
                        f"in [{float(tf.reduce_min(x))}, {float(tf.reduce_max(x))}] "
                        "(binarize the data, or use another likelihood)."
                    )
            else:
                with tf.control_dependencies([tf.debugging.Assert(binary, [
                    f"{self.name}: Bernoulli targets `x` must be 0 or 1"])]):
                    x = tf.identity(x)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(validate_args=self.validate_args)
        return config


_GAUSSIAN_SCALES = ("shared", "per_dimension", "fixed")


@keras.saving.register_keras_serializable(package="tfvi")
class GaussianDecoder(NetworkDecoder):
    """p(x|z) = N(x; f(z), diag(s^2)) with s learned (one shared value or one per
    dimension) or fixed.

    With `hidden=()` and `skip=False` the mean is affine in z, `f(z) = W z + b`, and
    under a standard-normal prior the model is linear-Gaussian with the exact marginal
    `p(x) = N(x; b, W W^T + diag(s^2))` (`tfvi.evaluation.exact_log_likelihood`).

    Args:
      scale: "shared" (one learned scale), "per_dimension" (one per output) or
        "fixed" (`init_scale`, not trained).
      init_scale: initial (or fixed) value of s.
    """

    def __init__(self, output_dim=None, hidden=(200, 200), activation="tanh", skip=False,
                 scale="shared", init_scale=1.0, **kwargs):
        super().__init__(output_dim, hidden, activation, skip, **kwargs)
        self.scale = check_choice("scale", scale, _GAUSSIAN_SCALES)
        if not init_scale > 0:
            raise ValueError(f"`init_scale` must be positive; got {init_scale!r}.")
        self.init_scale = float(init_scale)
        shape = self.event_shape if scale == "per_dimension" else ()
        self.raw_scale = self.add_weight(
            shape=shape,
            initializer=keras.initializers.Constant(
                self.init_scale if scale == "fixed"
                else _softplus_inverse(max(self.init_scale - _MIN_SCALE, _MIN_SCALE))),
            trainable=scale != "fixed",
            name="raw_scale",
        )

    def observation_scale(self):
        """s, shape `[]` or `event_shape`."""
        if self.scale == "fixed":
            return tf.convert_to_tensor(self.raw_scale)
        return tf.nn.softplus(self.raw_scale) + _MIN_SCALE

    def decoder_parameters(self, z):
        loc = self._outputs(z)
        return {"loc": loc, "scale": tf.broadcast_to(self.observation_scale(), tf.shape(loc))}

    def distribution(self, params):
        return self.independent(tfd.Normal(params["loc"], params["scale"]))

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, init_scale=self.init_scale)
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class LogitNormalDecoder(NetworkDecoder):
    """p(x|z) = prod_i LogitNormal(x_i; f(z)_i, s) (Morningstar et al., C.4).

    A `Normal(f(z), s)` pushed through the `Sigmoid` bijector, one learned scale `s`
    shared by all pixels and images. Targets are clipped to [0.001, 0.999] so pixels
    at the edge of the support stay finite.
    """

    clip = (1e-3, 1.0 - 1e-3)

    def __init__(self, output_dim=None, hidden=(200, 200), activation="tanh", skip=False,
                 init_scale=1.0, **kwargs):
        super().__init__(output_dim, hidden, activation, skip, **kwargs)
        self.init_scale = float(init_scale)
        self.raw_scale = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(_softplus_inverse(self.init_scale)),
            name="raw_scale",
        )

    def decoder_parameters(self, z):
        loc = self._outputs(z)
        scale = tf.nn.softplus(self.raw_scale) + _MIN_SCALE
        return {"loc": loc, "scale": tf.broadcast_to(scale, tf.shape(loc))}

    def distribution(self, params):
        normal = tfd.Normal(params["loc"], params["scale"])
        return self.independent(tfd.TransformedDistribution(normal, tfb.Sigmoid()))

    def prepare_targets(self, x):
        return tf.clip_by_value(super().prepare_targets(x), *self.clip)

    def get_config(self):
        config = super().get_config()
        config.update(init_scale=self.init_scale)
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class CategoricalDecoder(NetworkDecoder):
    """p(y|z) = Categorical(y; softmax(f(z))) over `num_classes` labels.

    Morningstar et al.'s VIB uses `hidden=()`: an affine map from z to the class logits.
    Targets are integer labels `[batch]`.
    """

    def __init__(self, num_classes, hidden=(), activation="tanh", skip=False, **kwargs):
        kwargs.pop("output_dim", None)
        kwargs.pop("event_shape", None)
        super().__init__(num_classes, hidden, activation, skip, **kwargs)
        self.event_shape = ()  # one label per example; the head emits [num_classes]

    @property
    def num_classes(self):
        return self.output_dim

    @property
    def param_shape(self):
        return (self.output_dim,)

    def decoder_parameters(self, z):
        return {"logits": self._outputs(z)}

    def distribution(self, params):
        return tfd.Categorical(logits=params["logits"])

    def prepare_targets(self, y):
        return tf.cast(y, tf.int32)

    def get_config(self):
        config = super().get_config()
        config.pop("event_shape")
        config["num_classes"] = self.num_classes
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class KnownLikelihood(keras.layers.Layer):
    """A fixed, known p(x|z) with no trainable weights.

    `distribution_fn(z, **fn_kwargs)` returns the `tfd.Distribution` p(x|z) for `z` of
    any leading shape. Use it for amortised inference in a known model (Morningstar et al.'s toy:
    z ~ N(0, I), x ~ N(|z|, sigma^2 I), `tfvi.data.abs_toy_likelihood(sigma)`); only
    the posterior is trained. For `.keras` serialisation `distribution_fn` must be a
    registered Keras serializable function (`keras.saving.register_keras_serializable`).
    """

    def __init__(self, distribution_fn, fn_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(distribution_fn, dict):
            distribution_fn = keras.saving.deserialize_keras_object(distribution_fn)
        if not callable(distribution_fn):
            raise ValueError(
                f"`distribution_fn` must be callable; got {distribution_fn!r}."
            )
        self.distribution_fn = distribution_fn
        self.fn_kwargs = dict(fn_kwargs or {})
        self.latent_dim = None

    def build(self, input_shape):
        self.latent_dim = int(input_shape[-1])
        self.built = True

    def call(self, z):
        return self.distribution_fn(z, **self.fn_kwargs)

    def decoder_parameters(self, z):
        return {"mean": self.call(z).mean()}

    def prepare_targets(self, x):
        return tf.convert_to_tensor(x, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            distribution_fn=keras.saving.serialize_keras_object(self.distribution_fn),
            fn_kwargs=self.fn_kwargs,
        )
        return config
