"""Priors r(z): layers whose `call()` takes no input and returns a distribution.

The prior interface is small so that learned priors (mixtures, VampPrior, flows) slot
in: a prior is a `Prior` layer with `latent_dim` whose `call()` returns a
`tfd.Distribution` with batch shape `[]` and event shape `[latent_dim]`. A prior that
depends on the encoder (VampPrior) holds the encoder and builds its mixture in `call()`.
Importable as `tfvi.priors.X` and `tfvi.layers.X`.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvi.distributions import GaussianMixture
from tfvi.layers.flows import MAFFlow, RealNVPFlow
from tfvi.layers.heads import event_shape_of, float32_policy
from tfvi.validation import check_choice, check_positive_int

__all__ = ["MAFPrior", "MixtureOfGaussians", "Prior", "RealNVPPrior", "StandardNormal",
           "VampPrior"]

tfd = tfp.distributions
tfb = tfp.bijectors


class Prior(keras.layers.Layer):
    """Base class: a distribution over `[latent_dim]` with no input.

    Subclasses implement `call(inputs=None)`: the argument is ignored (Keras 3.15's
    `Layer.__call__` needs one named parameter), so `prior()` is the distribution.
    """

    def __init__(self, latent_dim, **kwargs):
        super().__init__(**float32_policy(kwargs))  # float32 log-densities
        self.latent_dim = check_positive_int("latent_dim", latent_dim)

    def build(self, input_shape=None):
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim)
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class StandardNormal(Prior):
    """r(z) = N(0, I_d). No weights."""

    def call(self, inputs=None):
        zeros = tf.zeros([self.latent_dim], dtype=self.compute_dtype)
        return tfd.MultivariateNormalDiag(loc=zeros, scale_diag=tf.ones_like(zeros))


@keras.saving.register_keras_serializable(package="tfvi")
class MixtureOfGaussians(Prior):
    """r(z) = sum_k softmax(w)_k N(z; m_k, diag(s_k^2)) (or full S_k S_k^T), trainable.

    Morningstar et al. uses it as r(z) (B.1: trainable mixture; B.2: 200 components). Means are
    initialised from N(0, `init_spread`^2), scales at 1, weights uniform.

    Args:
      latent_dim: d.
      components: K.
      covariance: "diag" or "full".
      init_spread: standard deviation of the initial means.
      trainable: if False the mixture stays at its initial value.
      seed: initialiser seed, for repeatable models.
    """

    def __init__(self, latent_dim, components=10, covariance="diag", init_spread=1.0,
                 trainable=True, seed=None, **kwargs):
        super().__init__(latent_dim, trainable=trainable, **kwargs)
        self.num_components = check_positive_int("components", components)
        self.covariance = check_choice("covariance", covariance, ("diag", "full"))
        self.init_spread = float(init_spread)
        self.seed = seed
        k, d = self.num_components, self.latent_dim
        self.logits = self.add_weight(shape=(k,), initializer="zeros", name="logits")
        self.loc = self.add_weight(
            shape=(k, d),
            initializer=keras.initializers.RandomNormal(stddev=self.init_spread, seed=seed),
            name="loc",
        )
        one = float(np.log(np.expm1(1.0)))
        if covariance == "diag":
            self.raw_scale = self.add_weight(
                shape=(k, d), initializer=keras.initializers.Constant(one), name="raw_scale")
        else:
            n = d * (d + 1) // 2
            init = tfp.math.fill_triangular_inverse(
                tf.linalg.set_diag(tf.zeros([d, d]), tf.fill([d], one))).numpy()
            self.raw_scale = self.add_weight(
                shape=(k, n), initializer=keras.initializers.Constant(np.tile(init, (k, 1))),
                name="raw_scale")

    def call(self, inputs=None):
        if self.covariance == "diag":
            return GaussianMixture(self.logits, self.loc,
                                   scale_diag=tf.nn.softplus(self.raw_scale) + 1e-5)
        tril = tfp.math.fill_triangular(self.raw_scale)
        tril = tf.linalg.set_diag(tril, tf.nn.softplus(tf.linalg.diag_part(tril)) + 1e-5)
        return GaussianMixture(self.logits, self.loc, scale_tril=tril)

    def get_config(self):
        config = super().get_config()
        config.update(
            components=self.num_components,
            covariance=self.covariance,
            init_spread=self.init_spread,
            seed=self.seed,
        )
        return config


# --------------------------------------------------------------- learned priors
def _standard_normal(latent_dim, dtype):
    zeros = tf.zeros([latent_dim], dtype=dtype)
    return tfd.MultivariateNormalDiag(loc=zeros, scale_diag=tf.ones_like(zeros))


@keras.saving.register_keras_serializable(package="tfvi")
class RealNVPPrior(Prior):
    """p(z) = N(f(z); 0, I) |det df(z)/dz| with f a Real NVP flow (Xu et al., eq. 4).

    f (`tfvi.layers.flows.RealNVPFlow`) is K blocks InvertibleDense -> AffineCoupling
    -> ActNorm. `log_prob(z)` runs f forward (one pass per block, as in training with
    eq. 5); `sample` runs f^{-1} (analytic for every block). At initialisation f is
    a rotation, so the prior is exactly N(0, I) until trained (or until
    `initialize(z)` sets the ActNorm layers from data).

    Args:
      latent_dim: d (>= 2).
      depth: K, flow depth (Xu et al.: 20).
      hidden: coupling-network hidden widths (Xu et al.: (256,)).
      activation: coupling-network activation (Xu et al.: leaky relu).
      seed: seeds the invertible-dense initial rotations.
    """

    def __init__(self, latent_dim, depth=20, hidden=(256,), activation="leaky_relu",
                 seed=None, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.flow = RealNVPFlow(latent_dim, depth, hidden, activation, seed, name="flow")
        self.depth, self.hidden = self.flow.depth, self.flow.hidden
        self.activation, self.seed = activation, seed

    def initialize(self, z):
        """Data-dependent ActNorm initialisation from latent samples `z` `[..., d]`."""
        self.flow.initialize(z)

    def call(self, inputs=None):
        base = _standard_normal(self.latent_dim, self.compute_dtype)
        return tfd.TransformedDistribution(base, tfb.Invert(self.flow.bijector()),
                                           name="RealNVPPrior")

    def get_config(self):
        config = super().get_config()
        config.update(depth=self.depth, hidden=list(self.hidden),
                      activation=self.activation, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class MAFPrior(Prior):
    """p(z) = N(u; 0, I) |det du/dz|, z = g(u), g a masked autoregressive flow.

    g (`tfvi.layers.flows.MAFFlow`) is K MAF layers with order reversals between
    them (Papamakarios et al. 2017). `log_prob(z)` needs g^{-1}: one MADE pass per
    layer; `sample` needs d passes per layer. Identity (N(0, I)) at initialisation.

    Args:
      latent_dim: d.
      depth, hidden, activation: the flow's (`MAFFlow`: K layers, MADE widths and
        activation).
    """

    def __init__(self, latent_dim, depth=5, hidden=(64, 64), activation="relu", **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.flow = MAFFlow(latent_dim, depth, hidden, activation, name="flow")
        self.depth, self.hidden, self.activation = self.flow.depth, self.flow.hidden, activation

    def call(self, inputs=None):
        base = _standard_normal(self.latent_dim, self.compute_dtype)
        return tfd.TransformedDistribution(base, self.flow.bijector(), name="MAFPrior")

    def get_config(self):
        config = super().get_config()
        config.update(depth=self.depth, hidden=list(self.hidden), activation=self.activation)
        return config


@keras.saving.register_keras_serializable(package="tfvi")
class VampPrior(Prior):
    """VampPrior: p(z) = (1/M) sum_m q(z | u_m), M learned pseudo-inputs u_m.

    Tomczak & Welling (2018), used by Livne et al. (section 5.2, M = 500 with training-data
    initialisation). With a K-component mixture encoder every q(z|u_m) is itself a
    mixture, and the prior is the flat mixture of all M*K components with weights
    alpha_k(u_m) / M; its `log_prob` is one `gaussian_mixture_log_prob` call (a
    `[M*K, d, N]` whitening, no per-component Python loop).

    The prior *holds* the encoder (its weights are the encoder's, shared). Its config
    does not repeat the encoder: a `tfvi.models.VAE` re-attaches its own encoder on
    load (`attach_encoder`), so the encoder exists once.

    Args:
      encoder: the VAE's encoder (`GaussianEncoder`, `MixtureEncoder`,
        `RealNVPPosterior`: anything with `posterior_parameters` and
        `distribution`); None only when rebuilt from a config.
      num_pseudo_inputs: M.
      init_from_data: optional `[N, input_dim]` array; M rows drawn from it (with the
        `seed`) initialise the pseudo-inputs (else N(0.5, 0.1^2) noise, centred in
        the [0, 1] range of image data).
      input_dim: size (int) or shape (e.g. `(28, 28, 1)`: pseudo-inputs shaped like
        the images) of a pseudo-input; taken from `init_from_data` or the built
        encoder when omitted.
      latent_dim: only needed without an encoder (config round-trip).
      seed: seed of the initialisation.
    """

    def __init__(self, encoder=None, num_pseudo_inputs=500, init_from_data=None,
                 input_dim=None, latent_dim=None, seed=None, **kwargs):
        if encoder is not None:
            if isinstance(encoder, dict):
                encoder = keras.saving.deserialize_keras_object(encoder)
            latent_dim = encoder.latent_dim
        if latent_dim is None:
            raise ValueError("VampPrior needs an `encoder` (or `latent_dim` when rebuilt "
                             "from a config and attached to a VAE's encoder later).")
        super().__init__(latent_dim, **kwargs)
        self.num_pseudo_inputs = check_positive_int("num_pseudo_inputs", num_pseudo_inputs)
        self.seed = seed
        self._init_values = None
        if init_from_data is not None:
            data = np.asarray(init_from_data, np.float32)
            if data.ndim < 2 or len(data) == 0:
                raise ValueError(f"`init_from_data` must have shape [N, *input_shape]; "
                                 f"got {data.shape}.")
            rng = np.random.default_rng(seed)
            idx = rng.choice(len(data), self.num_pseudo_inputs,
                             replace=len(data) < self.num_pseudo_inputs)
            self._init_values = data[idx]
            if input_dim is not None and event_shape_of(input_dim) != data.shape[1:]:
                raise ValueError(f"`input_dim`={input_dim} but `init_from_data` has "
                                 f"examples of shape {data.shape[1:]}.")
            input_dim = data.shape[1] if data.ndim == 2 else data.shape[1:]
        self.input_dim = input_dim
        self.encoder = None
        self.pseudo_inputs = None
        if encoder is not None:
            self.attach_encoder(encoder)

    def attach_encoder(self, encoder):
        """Shares `encoder` (the VAE's) with this prior; idempotent for the same one."""
        if self.encoder is not None:
            if self.encoder is not encoder:
                raise ValueError("This VampPrior already holds a different encoder than "
                                 "the model's: pass the model's encoder to VampPrior.")
            return
        if encoder.latent_dim != self.latent_dim:
            raise ValueError(f"VampPrior has latent_dim {self.latent_dim} but the encoder "
                             f"has latent_dim {encoder.latent_dim}.")
        self.encoder = encoder
        dim = self.input_dim or getattr(encoder, "input_dim", None)
        if dim is not None:
            self.build()

    def build(self, input_shape=None):
        if self.pseudo_inputs is not None:
            self.built = True
            return
        if self.encoder is None:
            raise ValueError("VampPrior has no encoder: pass `encoder=` or attach it.")
        dim = self.input_dim or getattr(self.encoder, "input_dim", None)
        if dim is None:
            raise ValueError("VampPrior cannot infer the pseudo-input size: build the "
                             "encoder first or pass `input_dim` / `init_from_data`.")
        shape = event_shape_of(tuple(dim) if isinstance(dim, list) else dim, "input_dim")
        self.input_dim = shape[0] if len(shape) == 1 else shape  # pseudo-inputs: [M, *shape]
        if self._init_values is not None:
            init = keras.initializers.Constant(self._init_values)
        else:
            init = keras.initializers.RandomNormal(0.5, 0.1, seed=self.seed)
        self.pseudo_inputs = self.add_weight(
            shape=(self.num_pseudo_inputs,) + shape, initializer=init,
            name="pseudo_inputs")
        if not self.encoder.built:
            self.encoder.build((None,) + shape)
        self.built = True

    def build_from_config(self, config):
        # Loading: the encoder is attached (and the weights built) by the model.
        if self.encoder is not None:
            self.build()

    def mixture_parameters(self):
        """Flat mixture parameters: logits `[M*K]`, loc `[M*K, d]` and scale_diag or
        scale_tril (`[M*K, d]` / `[M*K, d, d]`)."""
        params = self.encoder.posterior_parameters(tf.convert_to_tensor(self.pseudo_inputs))
        d = self.latent_dim
        if "logits" in params:
            logits = tf.reshape(tf.nn.log_softmax(params["logits"], axis=-1), [-1])
        else:
            logits = tf.zeros([self.num_pseudo_inputs], params["loc"].dtype)
        out = {"logits": logits, "loc": tf.reshape(params["loc"], [-1, d])}
        if "scale_diag" in params:
            out["scale_diag"] = tf.reshape(params["scale_diag"], [-1, d])
        else:
            out["scale_tril"] = tf.reshape(params["scale_tril"], [-1, d, d])
        return out

    def call(self, inputs=None):
        if not self.built:
            self.build()
        if getattr(self.encoder, "is_flow_posterior", False):
            # q(z|u_m) is not Gaussian: mix the encoder's own distributions.
            q = self.encoder(tf.convert_to_tensor(self.pseudo_inputs))
            logits = tf.zeros([self.num_pseudo_inputs], self.compute_dtype)
            return tfd.MixtureSameFamily(tfd.Categorical(logits=logits), q,
                                         name="VampPrior")
        p = self.mixture_parameters()
        return GaussianMixture(p["logits"], p["loc"], scale_diag=p.get("scale_diag"),
                               scale_tril=p.get("scale_tril"), name="VampPrior")

    def get_config(self):
        config = super().get_config()
        config.update(num_pseudo_inputs=self.num_pseudo_inputs,
                      input_dim=(list(self.input_dim) if isinstance(self.input_dim, tuple)
                                 else self.input_dim),
                      seed=self.seed)
        return config
