"""Amortised posteriors q(z|x): Keras layers whose `call(x)` returns a distribution.

Every encoder exposes the same three methods, so models, exports and STL gradients do
not depend on the family:

* `posterior_parameters(x)` -> dict of tensors (`loc`, `scale_diag` or `scale_tril`,
  and `logits` for mixtures); what the `encode` serving signature returns;
* `distribution(params)` -> the `tfd.Distribution` built from those parameters (with
  `stop_gradient` applied to them this gives the "sticking the landing" score term);
* `call(x)` = `distribution(posterior_parameters(x))`.

`num_components` is K (1 for a unimodal posterior).
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvi.distributions import GaussianMixture
from tfvi.layers import heads
from tfvi.layers.mlp import MLP
from tfvi.validation import check_choice, check_positive, check_positive_int

tfd = tfp.distributions

_COVARIANCES = ("diag", "full")
_MIN_SCALE = 1e-5

# Kept for the modules that imported them from here before `tfvi.layers.heads`.


@keras.saving.register_keras_serializable(package="tfvi")
class MixtureEncoder(keras.layers.Layer):
    """q(z|x) = sum_k alpha_k(x) N(z; mu_k(x), S_k(x) S_k(x)^T) (Morningstar et al., B.1).

    A network maps `x` (`[batch, *input_shape]`, any rank: `[batch, 64]`,
    `[batch, 28, 28, 1]`, ...) to features `h` (`[batch, F]`); dense layers map `h` to
    the mixture weights (logits, `[batch, K]`), means (`[batch, K, d]`) and scales: `softplus(.) + 1e-5` diagonals
    (`covariance="diag"`) or lower-triangular Cholesky factors with a softplus diagonal
    (`covariance="full"`, `[batch, K, d, d]`). With `components=1` the layer is exactly
    the Gaussian encoder: it returns a `MultivariateNormalDiag`/`TriL` and has no
    mixture-weight outputs.

    Args:
      latent_dim: d, the size of z.
      components: K, the number of mixture components.
      hidden: widths of the default MLP's hidden layers (ignored with `network`).
      activation: their activation.
      covariance: "diag" or "full".
      network: any Keras layer or model from `x` to features `[batch, F]` (e.g. from
        `tfvi.networks`); None (default) builds the MLP from `hidden`/`activation`,
        which flattens image inputs first. The features are cast to float32, so
        under a mixed-precision policy the network computes in low precision and
        q(z|x) in float32.
      min_scale: None (default) or a floor on every posterior standard deviation
        (the diagonal of the scale): `scale = max(softplus(.) + 1e-5, min_scale)`.
        Livne et al.'s MIM code clamps the log-variance at -6, i.e.
        `min_scale=exp(-3)` ~ 0.05. The floor is hard: above it the gradient is that
        of the softplus, below it zero (as with the authors' clamp).
    """

    def __init__(
        self,
        latent_dim,
        components=1,
        hidden=(200, 200),
        activation="tanh",
        covariance="diag",
        network=None,
        min_scale=None,
        **kwargs,
    ):
        super().__init__(**heads.float32_policy(kwargs))
        self.min_scale = None if min_scale is None else check_positive("min_scale", min_scale)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.num_components = check_positive_int("components", components)
        self.covariance = check_choice("covariance", covariance, _COVARIANCES)
        self.hidden = tuple(hidden)
        self.activation = activation
        d, k = self.latent_dim, self.num_components
        self.network = heads.get_network(network, "network")
        self.trunk = self.network if self.network is not None else MLP(
            hidden, activation, name="trunk")
        scale_size = d if covariance == "diag" else d * (d + 1) // 2
        dtype = self.dtype_policy  # the head's precision (float32 under mixed precision)
        self.loc_layer = keras.layers.Dense(k * d, name="loc", dtype=dtype)
        self.scale_layer = keras.layers.Dense(k * scale_size, name="scale", dtype=dtype)
        self.logits_layer = (keras.layers.Dense(k, name="logits", dtype=dtype)
                             if k > 1 else None)
        self.input_dim = None
        self.input_shape_ = None  # the shape of one x, without the batch axis

    def build(self, input_shape):
        self.input_shape_ = tuple(int(s) for s in input_shape[1:])
        self.input_dim = (self.input_shape_[0] if len(self.input_shape_) == 1
                          else self.input_shape_)
        net_shape = (None, heads.num_elements(self.input_shape_)) if (
            self.network is None) else (None,) + self.input_shape_
        h_shape = heads.feature_shape(self.trunk, net_shape)
        if len(h_shape) != 2:
            raise ValueError(
                f"Encoder {self.name!r}: its network's output (the features) must have "
                f"shape [batch, F]; got {h_shape} (end the network with Flatten).")
        for layer in (self.loc_layer, self.scale_layer, self.logits_layer):
            if layer is not None and not layer.built:
                layer.build(h_shape)
        self.built = True

    def features(self, x):
        """The network's output for `x` (`[batch, *input_shape]`), `[batch, F]` float32."""
        if self.input_shape_ is not None and (
                x.shape.rank != len(self.input_shape_) + 1 or any(
                    a not in (None, b) for a, b in zip(x.shape[1:], self.input_shape_))):
            raise ValueError(
                f"Encoder {self.name!r} expects inputs `x` of shape "
                f"[batch, {', '.join(map(str, self.input_shape_))}]; got shape "
                f"{tuple(x.shape)}.")
        if self.network is None and x.shape.rank != 2:
            x = tf.reshape(x, [-1, heads.num_elements(x.shape[1:])])
        return tf.cast(self.trunk(x), tf.float32)

    def posterior_parameters(self, x):
        """Parameters of q(z|x) as a dict of tensors (shapes in the class docstring).

        For K = 1 the component axis is absent: `loc` is `[batch, d]`.
        """
        x = tf.convert_to_tensor(x)
        h = self.features(x)
        d, k = self.latent_dim, self.num_components
        batch = tf.shape(x)[:1]
        comp = [k] if k > 1 else []
        loc = tf.reshape(self.loc_layer(h), tf.concat([batch, comp, [d]], 0))
        raw = self.scale_layer(h)
        if self.covariance == "diag":
            scale_diag = tf.nn.softplus(tf.reshape(raw, tf.concat([batch, comp, [d]], 0)))
            params = {"loc": loc, "scale_diag": self._floor(scale_diag + _MIN_SCALE)}
        else:
            raw = tf.reshape(raw, tf.concat([batch, comp, [d * (d + 1) // 2]], 0))
            tril = tfp.math.fill_triangular(raw)
            # Masks, not set_diag: set_diag's gradient does not compile under XLA
            # when the batch size is dynamic (tf.data batches).
            eye = tf.eye(d, dtype=tril.dtype)
            diag = self._floor(tf.nn.softplus(tf.reduce_sum(tril * eye, axis=-1)) + _MIN_SCALE)
            params = {"loc": loc, "scale_tril": tril * (1.0 - eye) + diag[..., tf.newaxis] * eye}
        if k > 1:
            params["logits"] = self.logits_layer(h)
        return params

    def _floor(self, scale):
        """`max(scale, min_scale)` (the scale itself without `min_scale`)."""
        if self.min_scale is None:
            return scale
        return tf.maximum(scale, tf.constant(self.min_scale, scale.dtype))

    def distribution(self, params):
        """The distribution with the given parameters (see `posterior_parameters`)."""
        if self.num_components > 1:
            return GaussianMixture(
                logits=params["logits"],
                loc=params["loc"],
                scale_diag=params.get("scale_diag"),
                scale_tril=params.get("scale_tril"),
            )
        if self.covariance == "diag":
            return tfd.MultivariateNormalDiag(params["loc"], params["scale_diag"])
        return tfd.MultivariateNormalTriL(params["loc"], params["scale_tril"])

    def call(self, x):
        return self.distribution(self.posterior_parameters(x))

    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            components=self.num_components,
            hidden=list(self.hidden),
            activation=self.activation,
            covariance=self.covariance,
            min_scale=self.min_scale,
            network=(None if self.network is None
                     else keras.saving.serialize_keras_object(self.network)),
        )
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class GaussianEncoder(MixtureEncoder):
    """q(z|x) = N(z; mu(x), S(x) S(x)^T): a `MixtureEncoder` with one component.

    Returns `MultivariateNormalDiag` (`covariance="diag"`) or `MultivariateNormalTriL`
    (`covariance="full"`) with batch shape `[batch]` and event shape `[latent_dim]`.
    """

    def __init__(self, latent_dim, hidden=(200, 200), activation="tanh",
                 covariance="diag", network=None, min_scale=None, **kwargs):
        kwargs.pop("components", None)
        super().__init__(latent_dim, 1, hidden, activation, covariance, network,
                         min_scale=min_scale, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("components")
        return config
