"""The core every tfvi model family shares: parts, log-weight terms, seeding, replica
loss scaling, metric trackers and the Keras plumbing.

A latent-variable model has three parts, each a Keras layer whose `call()` returns a
`tfd.Distribution`: the encoder q(z|x), the decoder p(x|z) and the prior r(z). For a
batch, `log_weight_terms` draws z from q (T per mixture component, stratified) and
scores it under all three:

    log p(x|z), log r(z), log q(z|x)         each [T, K, batch]
    log alpha_k (mixture weights)            [K, batch]

from which `bound_values` forms the diagnostics (beta = 1, stratified over components)

    elbo = SELBO(log p(x|z) + log r(z) - log q(z|x)),
    reconstruction = SELBO(log p(x|z)),   kl = SELBO(log q(z|x) - log r(z)),

and `log_joint(z, targets) = log p(x|z) + log r(z)` is the target density of AIS.

`LatentVariableModel` holds exactly this and nothing a family would have to undo:
each family (`VAE`, `AIWAE`, `MIM`) adds its own arguments, its `metric_names()`, its
`train_step`/`test_step` and its config keys, then calls `finish_init(input_dim)`.
"""

from typing import Any

import keras
import tensorflow as tf

from tfvi import bounds, input_pipeline, precision
from tfvi.distributions import stratified_sample
from tfvi.estimators import grouped_gradients
from tfvi.layers.heads import event_shape_of
from tfvi.layers.priors import StandardNormal
from tfvi.seeds import replica_seed

__all__ = ["LatentVariableModel", "deserialize_part", "replica_loss_scale", "unpack_batch"]


def unpack_batch(data):
    """`x`, `(x,)`, `(x, y)` or `(x, y, None)` -> `(x, y)`, with `y = x` when absent.

    Keras' `train_on_batch`/`test_on_batch` pass `(x, y, sample_weight)` with `None`
    for what the caller left out; sample weights are not supported by these bounds.
    """
    if not isinstance(data, (tuple, list)):
        return data, data
    if not 1 <= len(data) <= 3:
        raise ValueError(
            f"A batch must be `x` or `(x, y)`; got a tuple of {len(data)} elements.")
    if len(data) == 3 and data[2] is not None:
        raise ValueError("Sample weights are not supported: pass batches `x` or `(x, y)`.")
    x = data[0]
    y = data[1] if len(data) > 1 and data[1] is not None else x
    return x, y


def deserialize_part(obj):
    """A layer, or the layer a `get_config` dict describes (`.keras` loading)."""
    if isinstance(obj, dict):
        return keras.saving.deserialize_keras_object(obj)
    return obj


def replica_loss_scale():
    """`1 / replicas in sync`: the optimizer sums gradients over replicas and each
    replica's loss is a mean over its share of the global batch."""
    return 1.0 / tf.distribute.get_strategy().num_replicas_in_sync


class LatentVariableModel(keras.Model):
    """Encoder, decoder and prior, and what every family does with them.

    Args:
      encoder: a tfvi encoder (`GaussianEncoder`, `MixtureEncoder`, ...).
      decoder: a tfvi decoder (`BernoulliDecoder`, ..., `KnownLikelihood`).
      prior: a tfvi prior; default `StandardNormal(encoder.latent_dim)`.
      seed: seed of the sampling noise (repeatable runs).
      **kwargs: `keras.Model` arguments (`name`, ...).

    A family's `__init__` ends with `finish_init(input_dim)`: it creates the trackers of
    `metric_names()` and, if `input_dim` (an int `D` or a shape such as `(28, 28, 1)`)
    is given, every variable (needed under a `tf.distribute` strategy).
    """

    def __init__(self, encoder: keras.layers.Layer, decoder: keras.layers.Layer,
                 prior: keras.layers.Layer | None = None, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoder = deserialize_part(encoder)
        self.decoder = deserialize_part(decoder)
        prior = deserialize_part(prior)
        self.prior = prior if prior is not None else StandardNormal(self.encoder.latent_dim)
        if hasattr(self.prior, "attach_encoder"):
            # VampPrior shares the encoder; its config omits it, so attach ours on load.
            self.prior.attach_encoder(self.encoder)
        if self.prior.latent_dim != self.encoder.latent_dim:
            raise ValueError(
                f"`prior` has latent_dim {self.prior.latent_dim} but the encoder has "
                f"latent_dim {self.encoder.latent_dim}."
            )
        self.seed = seed
        self.samples = 1  # T of `log_weight_terms`; a family with `samples` sets its own
        self.input_dim = None
        self.seed_generator = keras.random.SeedGenerator(seed, name="sampling_seed")
        self._trackers = {}

    def metric_names(self):
        """The names of the metrics a step reports (a family declares its own)."""
        return ("loss", "elbo", "reconstruction", "kl")

    def finish_init(self, input_dim):
        """Creates the metric trackers, then every variable when `input_dim` is given."""
        self._trackers = {name: keras.metrics.Mean(name=name) for name in self.metric_names()}
        if input_dim is not None:
            self.build((None,) + event_shape_of(input_dim, "input_dim"))

    def build(self, input_shape):
        if not self.encoder.built:
            self.encoder.build(input_shape)
        if not self.decoder.built:
            self.decoder.build((None, self.encoder.latent_dim))
        if not self.prior.built:
            self.prior.build()
        shape = tuple(int(s) for s in input_shape[1:])
        self.input_dim = shape[0] if len(shape) == 1 else shape
        self.built = True

    @property
    def input_event_shape(self):
        """The shape of one input `x` (without the batch axis), a tuple."""
        return None if self.input_dim is None else event_shape_of(self.input_dim)

    @property
    def latent_dim(self):
        return self.encoder.latent_dim

    @property
    def num_components(self):
        return getattr(self.encoder, "num_components", 1)

    def next_seed(self):
        """A fresh stateless seed `[2]` from the model's generator, folded with the
        replica id so replicas draw different noise."""
        return replica_seed(self.seed_generator.next())

    # ---------------------------------------------------------------- the math
    def log_weight_terms(self, x, y=None, samples=None, stratified=True, stl=False, seed=None,
                         stop_sample_gradient=False, params=None,
                         return_distributions=False):
        """The three log-densities of every sample, and the log mixture weights.

        Args:
          x: encoder input `[batch, *input_shape]`.
          y: likelihood target (`x` if None).
          samples: T per component (default: the model's `samples`).
          stratified: T samples from each of the K components (True), or T samples
            drawn ancestrally from the whole posterior (False; K = 1 in the output).
          stl: stop the gradient through q's parameters in `log q(z|x)`.
          seed: stateless seed `[2]`; drawn from the model's generator if None.
          stop_sample_gradient: no gradient through z (score-function estimators).
          params: `encoder.posterior_parameters(x)` when the caller already has them
            (the encoder then does not run again).
          return_distributions: also return the step's distributions.

        Returns:
          dict with `log_likelihood`, `log_prior`, `log_posterior` (`[T, K, batch]`),
          `log_alpha` (`[K, batch]`) and `z` (`[T, K, batch, d]`); with
          `return_distributions`, the pair `(terms, dists)` where `dists` has the
          `posterior` q (live parameters), `likelihood` p(x|z) and `prior` r.
        """
        y = x if y is None else y
        samples = self.samples if samples is None else samples
        seed = self.next_seed() if seed is None else seed
        params = self.encoder.posterior_parameters(x) if params is None else params
        q = self.encoder.distribution(params)
        if stratified:
            z, log_alpha = stratified_sample(q, samples, seed=seed)
        else:
            z = q.sample(samples, seed=seed)[:, tf.newaxis]
            log_alpha = tf.zeros_like(z[0, :, :, 0])
        if stop_sample_gradient:
            z = tf.stop_gradient(z)
        q_score = q
        if stl:
            q_score = self.encoder.distribution(tf.nest.map_structure(tf.stop_gradient, params))
        likelihood, prior = self.decoder(z), self.prior()
        terms = {
            "log_likelihood": likelihood.log_prob(self.decoder.prepare_targets(y)),
            "log_prior": prior.log_prob(z),
            "log_posterior": q_score.log_prob(z),
            "log_alpha": log_alpha,
            "z": z,
        }
        if return_distributions:
            return terms, {"posterior": q, "likelihood": likelihood, "prior": prior}
        return terms

    def log_joint(self, z, targets):
        """log p(x, z) = log p(x|z) + log p(z) for z `[..., batch, d]` and targets
        already passed through `decoder.prepare_targets` (`[batch, *event]`) ->
        `[..., batch]`: the target density of AIS, AIWAE and the launcher's checks."""
        return self.decoder(z).log_prob(targets) + self.prior().log_prob(z)

    def bound_values(self, terms, objective=None, beta=None, **options):
        """Per-example values `[batch]`: `elbo`, `reconstruction`, `kl` (beta = 1) and,
        if `objective` is named, that bound with weight `beta` (default 1) and
        `options` (`tfvi.bounds.objective`)."""
        ll, lp, lq = terms["log_likelihood"], terms["log_prior"], terms["log_posterior"]
        log_alpha = terms["log_alpha"]
        values = {
            "elbo": bounds.selbo(bounds.log_weights(ll, lp, lq), log_alpha),
            "reconstruction": bounds.selbo(ll, log_alpha),
            "kl": bounds.selbo(lq - lp, log_alpha),
        }
        if objective is not None:
            # Set last: with objective="elbo" the trained (beta-weighted) bound must win
            # over the beta=1 diagnostic of the same name, or beta/KL warm-up is ignored.
            beta = 1.0 if beta is None else beta
            values[objective] = bounds.objective(objective, ll, lp, lq, log_alpha, beta,
                                                 **options)
        return values

    def call(self, x, training=False):
        """The posterior mean E_q[z], `[batch, latent_dim]` (a tensor, so `predict`
        works; distributions are available through `encoder(x)`)."""
        if hasattr(self.encoder, "point_estimate"):  # flow posteriors: no analytic mean
            return self.encoder.point_estimate(x)
        return self.encoder(x).mean()

    # -------------------------------------------------------------- Keras steps
    def apply_losses(self, tape, losses):
        """One optimizer step on `losses` (`{"all": l}` or `{"model": l_theta,
        "inference": l_phi}`, see `tfvi.estimators.grouped_gradients`), recorded on the
        persistent `tape` and already scaled by `replica_loss_scale()`."""
        variables = self.trainable_variables
        grads = grouped_gradients(tape, losses, variables, self.encoder.trainable_variables)
        self.optimizer.apply(grads, variables)

    def update_metrics(self, loss, values):
        """Updates `loss` and every tracked name in `values` (per-example means);
        returns the results of the trackers updated."""
        values = dict(values, loss=loss)
        updated = [name for name in self._trackers if name in values]
        for name in updated:
            self._trackers[name].update_state(tf.reduce_mean(values[name]))
        return {name: self._trackers[name].result() for name in updated}

    @property
    def metrics(self):
        return list(self._trackers.values())

    def compile(self, optimizer="adam", jit_compile=None, steps_per_execution=None,
                **kwargs):
        """Keras `compile`; `jit_compile=None` asks `tfvi.precision.auto_jit_compile`:
        XLA for dense networks, not for convolutional ones (slower under XLA on CPU,
        `benchmarks/resnet_throughput.py`), never under a strategy (XLA fails with
        variables on several devices). `steps_per_execution=None` lets `fit` choose it (see
        `tfvi.input_pipeline`; an integer is used as given).
        """
        if jit_compile is None:
            jit_compile = precision.auto_jit_compile(self)
        self.auto_steps_per_execution = steps_per_execution is None
        super().compile(optimizer=optimizer, jit_compile=jit_compile,
                        steps_per_execution=steps_per_execution or 1, **kwargs)
        if self.auto_steps_per_execution:  # a reloaded model chooses again
            self._compile_config.config["steps_per_execution"] = None

    def compile_from_config(self, config):
        # Keras skips models with a custom `compile`; ours only sets the XLA default,
        # so restore the optimizer (and its state, loaded next) as Keras would.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # -------------------------------------------------------- input validation
    def check_inputs(self, x, y=None):
        """Eager checks on array inputs: the input dimension and the targets."""
        x = tf.convert_to_tensor(x)
        shape = self.input_event_shape
        if (x.shape.rank != 2 if shape is None else tuple(x.shape[1:]) != shape):
            expected = "None" if shape is None else ", ".join(map(str, shape))
            raise ValueError(
                f"`x` must have shape [batch, {expected}]; got {tuple(x.shape)}."
            )
        self.decoder.prepare_targets(x if y is None else y)

    def validate_data(self, x, y=None):
        """Data checks at the fit/evaluate boundary (`tfvi.data.validation`): empty
        inputs, non-finite values and the likelihood's support raise one `DataError`
        naming the array, the first bad index and the rule; integer arrays are cast.
        A `tf.data.Dataset` gets the same checks in-graph. Returns `(x, y)`."""
        from tfvi.data import validation

        support = validation.support_of(self.decoder)
        if isinstance(x, tf.data.Dataset):
            spec = x.element_spec
            return validation.checked_dataset(x, support, isinstance(spec, tuple)), y
        if x is None or not hasattr(x, "shape"):
            return x, y
        if y is None:
            return validation.check_array("x", x, support), None
        return validation.check_array("x", x), validation.check_array("y", y, support)

    def _checked(self, x, y):
        x, y = self.validate_data(x, y)
        if x is not None and not isinstance(x, tf.data.Dataset) and hasattr(x, "shape"):
            self.check_inputs(x, y)
        return x, y

    def fit(self, x=None, y=None, *args, **kwargs):
        dataset_given = isinstance(x, tf.data.Dataset)
        x, y = self._checked(x, y)
        fused = False
        if not args:
            x, y, kwargs, fused = self.fast_fit_path(x, y, kwargs)
        if fused:
            keras_function = self.train_function
            if getattr(self, "_fused_train_function", None) is None:
                self._fused_train_function = input_pipeline.fused_train_function(self)
            self.train_function = self._fused_train_function
            try:
                history = super().fit(x, y, *args, **kwargs)
            finally:
                self.train_function = keras_function
        else:
            history = super().fit(x, y, *args, **kwargs)
        if dataset_given and not history.history and \
                kwargs.get("epochs", 1) > kwargs.get("initial_epoch", 0):
            from tfvi.data.validation import DataError

            raise DataError("`x` (a tf.data.Dataset) yielded no batches; rule: at least "
                            "one batch.")
        return history

    def fast_fit_path(self, x, y, kwargs):
        """`(x, y, kwargs, fused)` for Keras' `fit`: when `compile` left
        `steps_per_execution` to tfvi, several steps per call, arrays through tfvi's
        input pipeline and, for an XLA-compiled step, whole blocks of steps in one XLA
        computation (`fused`; see `input_pipeline.fit_arguments`)."""
        if not getattr(self, "auto_steps_per_execution", False):
            return x, y, kwargs, False
        return input_pipeline.fit_arguments(self, x, y, kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        x, y = self._checked(x, y)
        return super().evaluate(x, y, *args, **kwargs)

    # ----------------------------------------------------------- serialisation
    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            prior=keras.saving.serialize_keras_object(self.prior),
            input_dim=(list(self.input_dim) if isinstance(self.input_dim, tuple)
                       else self.input_dim),
            seed=self.seed,
        )
        return config
