"""The VAE: one `train_step` for ELBO, IWAE, SELBO and SIWAE (+ beta, STL).

One training step follows the data path of DESIGN.md:

    x -> q = encoder(x) -> z_tk ~ q_k (T per component, K*T in all) -> p(x|z) = decoder(z)
      -> log p(x|z), log r(z), log q(z|x)           each [T, K, batch]
      -> log w = log p(x|z) + beta (log r(z) - log q(z|x))    (tfvi.bounds.log_weights)
      -> bound(log w, log alpha) -> loss = -mean(bound) -> gradients -> optimizer.

With a unimodal encoder K = 1, so SELBO is ELBO and SIWAE is IWAE through the same
code. Mixture encoders (K > 1) are trained with the stratified bounds "selbo" and
"siwae": drawing z ancestrally from a mixture gives no reparameterisation gradient for
the mixture weights, so "elbo"/"iwae" with K > 1 is refused (evaluation can still
use ancestral samples: `log_weight_terms(..., stratified=False)`).

Data: `fit` takes `x` (the encoder's input is also the target) or `(x, y)` pairs
(the encoder sees `x`, the likelihood scores `y`: single-column views, labels).
"""

from typing import Any

import keras
import tensorflow as tf

from tfvi import bounds, estimators, input_pipeline, precision, regularizers
from tfvi.distributions import stratified_sample
from tfvi.layers.heads import event_shape_of
from tfvi.layers.priors import StandardNormal
from tfvi.seeds import replica_seed
from tfvi.validation import check_positive_int

__all__ = ["VAE"]


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


@keras.saving.register_keras_serializable(package="tfvi")
class VAE(keras.Model):
    """Variational autoencoder trained with a (stratified) importance-weighted bound.

    Args:
      encoder: a tfvi encoder (`GaussianEncoder`, `MixtureEncoder`, ...).
      decoder: a tfvi decoder (`BernoulliDecoder`, ..., `KnownLikelihood`).
      prior: a tfvi prior; default `StandardNormal(encoder.latent_dim)`.
      objective: "elbo", "iwae", "selbo" or "siwae" (see `tfvi.bounds`).
      samples: T, samples per mixture component (K*T in all).
      beta: weight on `log r(z) - log q(z|x)` in the log-weights; kept in the
        non-trainable variable `model.beta` so schedules (KL warm-up) can assign it.
      stl: "sticking the landing": drop the score term of `log q` by stopping the
        gradient through q's parameters in that term (Roeder et al. 2017).
      input_dim: the shape of one input, an int `D` for vectors or a tuple such as
        `(28, 28, 1)` for images; if given, every variable is created now (needed
        under a `tf.distribute` strategy); otherwise call `build((None, *shape))`.
      seed: seed of the sampling noise (repeatable runs).
      objective_options: options of the C.1 ablation objectives, e.g.
        `{"num_groups": M}` ("miwae", "piwae") or `{"elbo_weight": 0.5}` ("ciwae").
      gradient_estimator: "reparam" (default), "stl" (same as `stl=True`), "dreg"
        (IWAE/SIWAE) or "score" (REINFORCE); see `tfvi.estimators`.
      qz_regularizer: weight w >= 0 of Xu et al.'s (B.3) moment penalty on the
        aggregate posterior, `loss = -bound + w * Reg[q(z)]` with
        `Reg = mean_k Mean[z_k]^2 + (Var[z_k] - 1)^2` estimated from the batch's
        posterior samples (`tfvi.regularizers`); 0 (default) turns it off. Xu et al.
        uses w = 1 with Real NVP priors. Reparameterised/STL gradients only.

    Metrics per epoch: `loss` (= -bound), the bound being trained (named after the
    objective), `elbo`, `reconstruction` (E_q log p(x|z)) and `kl`
    (E_q [log q(z|x) - log r(z)]); all averaged over examples, stratified over
    components. With `qz_regularizer > 0`, also `qz_regularizer` (Reg[q(z)]), and
    `loss` includes the weighted penalty. With `objective="elbo"` and `beta != 1` the trained bound and the
    diagnostic share the name `elbo`, which then reports the beta-weighted objective;
    the beta = 1 ELBO is always `reconstruction - kl`.
    """

    def __init__(self, encoder: keras.layers.Layer, decoder: keras.layers.Layer,
                 prior: keras.layers.Layer | None = None, objective: str = "elbo",
                 samples: int = 1, beta: float = 1.0, stl: bool = False,
                 input_dim: int | None = None, seed: int | None = None,
                 objective_options: dict[str, Any] | None = None,
                 gradient_estimator: str = "reparam", qz_regularizer: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        if isinstance(decoder, dict):
            decoder = keras.saving.deserialize_keras_object(decoder)
        if isinstance(prior, dict):
            prior = keras.saving.deserialize_keras_object(prior)
        if objective not in bounds.ALL_OBJECTIVES:
            raise ValueError(
                f"Unknown `objective` {objective!r}; expected one of "
                f"{list(bounds.ALL_OBJECTIVES)}."
            )
        self.gradient_estimator = estimators.check_estimator(gradient_estimator, objective)
        self.objective_options = dict(objective_options or {})
        self.samples = check_positive_int("samples", samples)
        num_components = getattr(encoder, "num_components", 1)
        if num_components > 1 and objective in ("elbo", "iwae"):
            raise ValueError(
                f"`objective={objective!r}` with a {num_components}-component mixture "
                "posterior: use the stratified 'selbo' or 'siwae' (ancestral samples from "
                "a mixture carry no gradient for its weights)."
            )
        if not beta >= 0:
            raise ValueError(f"`beta` must be non-negative; got {beta!r}.")
        if not qz_regularizer >= 0:
            raise ValueError(
                f"`qz_regularizer` must be non-negative; got {qz_regularizer!r}.")
        if qz_regularizer > 0 and (gradient_estimator in ("dreg", "score")
                                   or objective == "piwae"):
            raise ValueError(
                "`qz_regularizer` needs reparameterised gradients; got "
                f"gradient_estimator={gradient_estimator!r}, objective={objective!r}.")
        self.qz_regularizer = float(qz_regularizer)
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior if prior is not None else StandardNormal(encoder.latent_dim)
        if hasattr(self.prior, "attach_encoder"):
            # VampPrior shares the encoder; its config omits it, so attach ours on load.
            self.prior.attach_encoder(encoder)
        if self.prior.latent_dim != encoder.latent_dim:
            raise ValueError(
                f"`prior` has latent_dim {self.prior.latent_dim} but the encoder has "
                f"latent_dim {encoder.latent_dim}."
            )
        self.objective = objective
        # A variable, not a float: warm-up callbacks change it without retracing.
        self.beta = keras.Variable(float(beta), trainable=False, name="beta")
        self.stl = bool(stl) or gradient_estimator == "stl"
        self.seed = seed
        self.input_dim = input_dim
        self.seed_generator = keras.random.SeedGenerator(seed, name="sampling_seed")
        self._trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("loss", objective, "elbo", "reconstruction", "kl")
        }
        if self.qz_regularizer > 0:
            self._trackers["qz_regularizer"] = keras.metrics.Mean(name="qz_regularizer")
        if input_dim is not None:
            self.build((None,) + event_shape_of(input_dim, "input_dim"))

    # ----------------------------------------------------------------- building
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

    # ---------------------------------------------------------------- the math
    def log_weight_terms(self, x, y=None, samples=None, stratified=True, stl=False,
                         seed=None, stop_sample_gradient=False):
        """The three log-densities of every sample, and the log mixture weights.

        Args:
          x: encoder input `[batch, input_dim]`.
          y: likelihood target (`x` if None).
          samples: T per component (default: the model's `samples`).
          stratified: T samples from each of the K components (True), or T samples
            drawn ancestrally from the whole posterior (False; K = 1 in the output).
          stl: stop the gradient through q's parameters in `log q(z|x)`.
          seed: stateless seed `[2]`; drawn from the model's generator if None.
          stop_sample_gradient: no gradient through z (score-function estimators).

        Returns:
          dict with `log_likelihood`, `log_prior`, `log_posterior` (`[T, K, batch]`),
          `log_alpha` (`[K, batch]`) and `z` (`[T, K, batch, d]`).
        """
        y = x if y is None else y
        samples = self.samples if samples is None else samples
        if seed is None:
            seed = replica_seed(self.seed_generator.next())
        params = self.encoder.posterior_parameters(x)
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
        y = self.decoder.prepare_targets(y)
        return {
            "log_likelihood": self.decoder(z).log_prob(y),
            "log_prior": self.prior().log_prob(z),
            "log_posterior": q_score.log_prob(z),
            "log_alpha": log_alpha,
            "z": z,
        }

    def log_joint(self, z, targets):
        """log p(x, z) = log p(x|z) + log p(z) for z `[..., batch, d]` and targets
        already passed through `decoder.prepare_targets` (`[batch, *event]`) ->
        `[..., batch]`: the target density of AIS, AIWAE and the launcher's checks."""
        return self.decoder(z).log_prob(targets) + self.prior().log_prob(z)

    def bound_values(self, terms, objective=None, beta=None):
        """Per-example values `[batch]` of the trained bound and its diagnostics."""
        objective = self.objective if objective is None else objective
        beta = tf.convert_to_tensor(self.beta) if beta is None else beta
        ll, lp, lq = terms["log_likelihood"], terms["log_prior"], terms["log_posterior"]
        log_alpha = terms["log_alpha"]
        values = {
            "elbo": bounds.selbo(bounds.log_weights(ll, lp, lq), log_alpha),
            "reconstruction": bounds.selbo(ll, log_alpha),
            "kl": bounds.selbo(lq - lp, log_alpha),
        }
        # Set last: with objective="elbo" the trained (beta-weighted) bound must win
        # over the beta=1 diagnostic of the same name, or beta/KL warm-up is ignored.
        values[objective] = bounds.objective(objective, ll, lp, lq, log_alpha, beta,
                                             **self.objective_options)
        return values

    def call(self, x, training=False):
        """The posterior mean E_q[z], `[batch, latent_dim]` (a tensor, so `predict`
        works; distributions are available through `encoder(x)`)."""
        if hasattr(self.encoder, "point_estimate"):  # flow posteriors: no analytic mean
            return self.encoder.point_estimate(x)
        return self.encoder(x).mean()

    # -------------------------------------------------------------- Keras steps
    def _update_metrics(self, loss, values):
        self._trackers["loss"].update_state(loss)
        for name, value in values.items():
            self._trackers[name].update_state(tf.reduce_mean(value))
        return {name: tracker.result() for name, tracker in self._trackers.items()}

    def _loss_and_values(self, terms):
        """`-bound` (plus the weighted q(z) penalty) and the per-example metrics."""
        values = self.bound_values(terms)
        loss = -tf.reduce_mean(values[self.objective])
        if self.qz_regularizer > 0:
            penalty = regularizers.qz_moment_penalty(terms["z"], terms["log_alpha"])
            values["qz_regularizer"] = penalty
            loss += self.qz_regularizer * penalty
        return loss, values

    def train_step(self, data):
        x, y = unpack_batch(data)
        num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if self.gradient_estimator in ("dreg", "score") or self.objective == "piwae":
            grads, loss, values = estimators.gradients(
                self, x, y, loss_scale=1.0 / num_replicas)
            self.optimizer.apply(grads, self.trainable_variables)
            return self._update_metrics(loss, values)
        with tf.GradientTape() as tape:
            terms = self.log_weight_terms(x, y, stl=self.stl)
            loss, values = self._loss_and_values(terms)
            # The optimizer sums gradients over replicas; each replica's loss is a
            # mean over its share of the global batch.
            scaled_loss = loss / tf.cast(num_replicas, loss.dtype)
        grads = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return self._update_metrics(loss, values)

    def test_step(self, data):
        x, y = unpack_batch(data)
        return self._update_metrics(*self._loss_and_values(self.log_weight_terms(x, y)))

    @property
    def metrics(self):
        return list(self._trackers.values())

    def compile(self, optimizer="adam", jit_compile=None, steps_per_execution=None,
                **kwargs):
        """Keras `compile`; `jit_compile` defaults to XLA when no strategy is active.

        Measured in `benchmarks/train_throughput.py`: XLA speeds the training step up
        on CPU; under `MirroredStrategy` XLA fails (variables on several devices), so
        it is off there. `steps_per_execution=None` lets `fit` choose it (see
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

    def fit(self, x=None, y=None, *args, **kwargs):
        x, y = self.validate_data(x, y)
        if x is not None and not isinstance(x, tf.data.Dataset) and hasattr(x, "shape"):
            self.check_inputs(x, y)
        dataset_given = isinstance(x, tf.data.Dataset)
        if not args:
            x, y, kwargs = self.fast_fit_path(x, y, kwargs)
        history = super().fit(x, y, *args, **kwargs)
        if dataset_given and not history.history and \
                kwargs.get("epochs", 1) > kwargs.get("initial_epoch", 0):
            from tfvi.data.validation import DataError

            raise DataError("`x` (a tf.data.Dataset) yielded no batches; rule: at least "
                            "one batch.")
        return history

    def fast_fit_path(self, x, y, kwargs):
        """`(x, y, kwargs)` for Keras' `fit`: when `compile` left
        `steps_per_execution` to tfvi, several steps per call and arrays through
        `tfvi.input_pipeline.array_dataset` (see `input_pipeline.fit_arguments`)."""
        if not getattr(self, "auto_steps_per_execution", False):
            return x, y, kwargs
        return input_pipeline.fit_arguments(self, x, y, kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        x, y = self.validate_data(x, y)
        if x is not None and not isinstance(x, tf.data.Dataset) and hasattr(x, "shape"):
            self.check_inputs(x, y)
        return super().evaluate(x, y, *args, **kwargs)

    # ----------------------------------------------------------- serialisation
    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            prior=keras.saving.serialize_keras_object(self.prior),
            objective=self.objective,
            samples=self.samples,
            beta=float(self.beta.numpy()),
            stl=self.stl,
            input_dim=(list(self.input_dim) if isinstance(self.input_dim, tuple)
                       else self.input_dim),
            seed=self.seed,
            objective_options=self.objective_options,
            gradient_estimator=self.gradient_estimator,
            qz_regularizer=self.qz_regularizer,
        )
        return config
