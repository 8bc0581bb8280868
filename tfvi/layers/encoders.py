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
from tfvi.layers.mlp import MLP

tfd = tfp.distributions

_COVARIANCES = ("diag", "full")
_MIN_SCALE = 1e-5


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
    return value


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}; got {value!r}.")
    return value


@keras.saving.register_keras_serializable(package="tfvi")
class MixtureEncoder(keras.layers.Layer):
    """q(z|x) = sum_k alpha_k(x) N(z; mu_k(x), S_k(x) S_k(x)^T) (seed 000, B.1).

    An MLP maps `x` (`[batch, input_dim]`) to the mixture weights (logits, `[batch, K]`),
    means (`[batch, K, d]`) and scales: `softplus(.) + 1e-5` diagonals
    (`covariance="diag"`) or lower-triangular Cholesky factors with a softplus diagonal
    (`covariance="full"`, `[batch, K, d, d]`). With `components=1` the layer is exactly
    the Gaussian encoder: it returns a `MultivariateNormalDiag`/`TriL` and has no
    mixture-weight outputs.

    Args:
      latent_dim: d, the size of z.
      components: K, the number of mixture components.
      hidden: widths of the MLP's hidden layers.
      activation: their activation.
      covariance: "diag" or "full".
    """

    def __init__(
        self,
        latent_dim,
        components=1,
        hidden=(200, 200),
        activation="tanh",
        covariance="diag",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.latent_dim = _check_positive_int("latent_dim", latent_dim)
        self.num_components = _check_positive_int("components", components)
        self.covariance = _check_choice("covariance", covariance, _COVARIANCES)
        self.hidden = tuple(hidden)
        self.activation = activation
        d, k = self.latent_dim, self.num_components
        self.trunk = MLP(hidden, activation, name="trunk")
        scale_size = d if covariance == "diag" else d * (d + 1) // 2
        self.loc_layer = keras.layers.Dense(k * d, name="loc")
        self.scale_layer = keras.layers.Dense(k * scale_size, name="scale")
        self.logits_layer = keras.layers.Dense(k, name="logits") if k > 1 else None
        self.input_dim = None

    def build(self, input_shape):
        self.input_dim = int(input_shape[-1])
        if not self.trunk.built:
            self.trunk.build(input_shape)
        h_shape = self.trunk.compute_output_shape(input_shape)
        for layer in (self.loc_layer, self.scale_layer, self.logits_layer):
            if layer is not None and not layer.built:
                layer.build(h_shape)
        self.built = True

    def posterior_parameters(self, x):
        """Parameters of q(z|x) as a dict of tensors (shapes in the class docstring).

        For K = 1 the component axis is absent: `loc` is `[batch, d]`.
        """
        if self.input_dim is not None and x.shape[-1] not in (None, self.input_dim):
            raise ValueError(
                f"Encoder {self.name!r} expects inputs `x` with last dimension "
                f"{self.input_dim}; got shape {tuple(x.shape)}."
            )
        h = self.trunk(x)
        d, k = self.latent_dim, self.num_components
        batch = tf.shape(x)[:-1]
        comp = [k] if k > 1 else []
        loc = tf.reshape(self.loc_layer(h), tf.concat([batch, comp, [d]], 0))
        raw = self.scale_layer(h)
        if self.covariance == "diag":
            scale_diag = tf.nn.softplus(tf.reshape(raw, tf.concat([batch, comp, [d]], 0)))
            params = {"loc": loc, "scale_diag": scale_diag + _MIN_SCALE}
        else:
            raw = tf.reshape(raw, tf.concat([batch, comp, [d * (d + 1) // 2]], 0))
            tril = tfp.math.fill_triangular(raw)
            # Masks, not set_diag: set_diag's gradient does not compile under XLA
            # when the batch size is dynamic (tf.data batches).
            eye = tf.eye(d, dtype=tril.dtype)
            diag = tf.nn.softplus(tf.reduce_sum(tril * eye, axis=-1)) + _MIN_SCALE
            params = {"loc": loc, "scale_tril": tril * (1.0 - eye) + diag[..., tf.newaxis] * eye}
        if k > 1:
            params["logits"] = self.logits_layer(h)
        return params

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
        )
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class GaussianEncoder(MixtureEncoder):
    """q(z|x) = N(z; mu(x), S(x) S(x)^T): a `MixtureEncoder` with one component.

    Returns `MultivariateNormalDiag` (`covariance="diag"`) or `MultivariateNormalTriL`
    (`covariance="full"`) with batch shape `[batch]` and event shape `[latent_dim]`.
    """

    def __init__(self, latent_dim, hidden=(200, 200), activation="tanh",
                 covariance="diag", **kwargs):
        kwargs.pop("components", None)
        super().__init__(latent_dim, 1, hidden, activation, covariance, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("components")
        return config
