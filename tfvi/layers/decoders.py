"""Likelihoods p(x|z): Keras layers whose `call(z)` returns a distribution over x.

`z` may carry any leading sample dimensions: `[T, K, batch, d]` in, a distribution
with batch shape `[T, K, batch]` out, so `decoder(z).log_prob(x)` with `x` of shape
`[batch, D]` broadcasts to `[T, K, batch]` log-likelihoods.

Every decoder exposes:

* `decoder_parameters(z)` -> dict of tensors (what the `decode` serving signature
  returns: logits, or loc and scale);
* `distribution(params)` -> the `tfd.Distribution`;
* `prepare_targets(x)` -> the targets as the likelihood scores them (clipping for the
  logit-normal, validation of {0, 1} data for the Bernoulli when `validate_args`).

`skip=True` adds one affine layer from z straight to the output (seed 000, B.2) so
gradients reach the encoder early in training.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvi.layers.encoders import _check_choice, _check_positive_int
from tfvi.layers.mlp import MLP

tfd = tfp.distributions
tfb = tfp.bijectors

_MIN_SCALE = 1e-4


def _softplus_inverse(x):
    return float(np.log(np.expm1(x)))


class _MLPDecoder(keras.layers.Layer):
    """MLP from z to `output_dim` location/logit parameters (+ optional skip layer)."""

    def __init__(self, output_dim, hidden=(200, 200), activation="tanh", skip=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.output_dim = _check_positive_int("output_dim", output_dim)
        self.hidden = tuple(hidden)
        self.activation = activation
        self.skip = bool(skip)
        self.trunk = MLP(hidden, activation, name="trunk")
        self.head = keras.layers.Dense(self.output_dim, name="head")
        self.skip_layer = (
            keras.layers.Dense(self.output_dim, use_bias=False, name="skip")
            if self.skip else None
        )
        self.latent_dim = None

    def build(self, input_shape):
        self.latent_dim = int(input_shape[-1])
        # Sublayers may already be built by a direct `decoder_parameters` call.
        if not self.trunk.built:
            self.trunk.build(input_shape)
        if not self.head.built:
            self.head.build(self.trunk.compute_output_shape(input_shape))
        if self.skip_layer is not None and not self.skip_layer.built:
            self.skip_layer.build(input_shape)
        self.built = True

    def _outputs(self, z):
        out = self.head(self.trunk(z))
        if self.skip_layer is not None:
            out = out + self.skip_layer(z)
        return out

    def call(self, z):
        return self.distribution(self.decoder_parameters(z))

    def prepare_targets(self, x):
        return tf.convert_to_tensor(x, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            output_dim=self.output_dim,
            hidden=list(self.hidden),
            activation=self.activation,
            skip=self.skip,
        )
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class BernoulliDecoder(_MLPDecoder):
    """p(x|z) = prod_i Bernoulli(x_i; sigmoid(f(z)_i)), parameterised by logits.

    Event shape `[output_dim]`. With `validate_args=True` the targets are checked to be
    in {0, 1} (a `ValueError` for arrays checked eagerly, an `InvalidArgumentError`
    inside a compiled step).
    """

    def __init__(self, output_dim, hidden=(200, 200), activation="tanh", skip=False,
                 validate_args=False, **kwargs):
        super().__init__(output_dim, hidden, activation, skip, **kwargs)
        self.validate_args = bool(validate_args)

    def decoder_parameters(self, z):
        return {"logits": self._outputs(z)}

    def distribution(self, params):
        return tfd.Independent(tfd.Bernoulli(logits=params["logits"], dtype=tf.float32), 1)

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
class GaussianDecoder(_MLPDecoder):
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

    def __init__(self, output_dim, hidden=(200, 200), activation="tanh", skip=False,
                 scale="shared", init_scale=1.0, **kwargs):
        super().__init__(output_dim, hidden, activation, skip, **kwargs)
        self.scale = _check_choice("scale", scale, _GAUSSIAN_SCALES)
        if not init_scale > 0:
            raise ValueError(f"`init_scale` must be positive; got {init_scale!r}.")
        self.init_scale = float(init_scale)
        shape = (self.output_dim,) if scale == "per_dimension" else ()
        self.raw_scale = self.add_weight(
            shape=shape,
            initializer=keras.initializers.Constant(
                self.init_scale if scale == "fixed"
                else _softplus_inverse(max(self.init_scale - _MIN_SCALE, _MIN_SCALE))),
            trainable=scale != "fixed",
            name="raw_scale",
        )

    def observation_scale(self):
        """s, shape `[]` or `[output_dim]`."""
        if self.scale == "fixed":
            return tf.convert_to_tensor(self.raw_scale)
        return tf.nn.softplus(self.raw_scale) + _MIN_SCALE

    def decoder_parameters(self, z):
        loc = self._outputs(z)
        return {"loc": loc, "scale": tf.broadcast_to(self.observation_scale(), tf.shape(loc))}

    def distribution(self, params):
        return tfd.Independent(tfd.Normal(params["loc"], params["scale"]), 1)

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, init_scale=self.init_scale)
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class LogitNormalDecoder(_MLPDecoder):
    """p(x|z) = prod_i LogitNormal(x_i; f(z)_i, s) (seed 000, C.4).

    A `Normal(f(z), s)` pushed through the `Sigmoid` bijector, one learned scale `s`
    shared by all pixels and images. Targets are clipped to [0.001, 0.999] so pixels
    at the edge of the support stay finite.
    """

    clip = (1e-3, 1.0 - 1e-3)

    def __init__(self, output_dim, hidden=(200, 200), activation="tanh", skip=False,
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
        return tfd.Independent(tfd.TransformedDistribution(normal, tfb.Sigmoid()), 1)

    def prepare_targets(self, x):
        return tf.clip_by_value(super().prepare_targets(x), *self.clip)

    def get_config(self):
        config = super().get_config()
        config.update(init_scale=self.init_scale)
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class CategoricalDecoder(_MLPDecoder):
    """p(y|z) = Categorical(y; softmax(f(z))) over `num_classes` labels.

    Seed 000's VIB uses `hidden=()`: an affine map from z to the class logits.
    Targets are integer labels `[batch]`.
    """

    def __init__(self, num_classes, hidden=(), activation="tanh", skip=False, **kwargs):
        kwargs.pop("output_dim", None)
        super().__init__(num_classes, hidden, activation, skip, **kwargs)

    @property
    def num_classes(self):
        return self.output_dim

    def decoder_parameters(self, z):
        return {"logits": self._outputs(z)}

    def distribution(self, params):
        return tfd.Categorical(logits=params["logits"])

    def prepare_targets(self, y):
        return tf.cast(y, tf.int32)

    def get_config(self):
        config = super().get_config()
        config["num_classes"] = config.pop("output_dim")
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class KnownLikelihood(keras.layers.Layer):
    """A fixed, known p(x|z) with no trainable weights.

    `distribution_fn(z, **fn_kwargs)` returns the `tfd.Distribution` p(x|z) for `z` of
    any leading shape. Use it for amortised inference in a known model (seed 000's toy:
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
