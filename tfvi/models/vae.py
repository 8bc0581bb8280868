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

from tfvi import bounds, estimators, regularizers
from tfvi.models.core import LatentVariableModel, replica_loss_scale, unpack_batch
from tfvi.validation import check_non_negative, check_objective_for_components, \
    check_positive_int

__all__ = ["VAE"]


@keras.saving.register_keras_serializable(package="tfvi")
class VAE(LatentVariableModel):
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
        super().__init__(encoder, decoder, prior, seed=seed, **kwargs)
        if objective not in bounds.ALL_OBJECTIVES:
            raise ValueError(
                f"Unknown `objective` {objective!r}; expected one of "
                f"{list(bounds.ALL_OBJECTIVES)}."
            )
        self.estimator = estimators.get_estimator(gradient_estimator, objective)
        self.gradient_estimator = gradient_estimator
        self.objective_options = dict(objective_options or {})
        self.samples = check_positive_int("samples", samples)
        check_objective_for_components(objective, self.num_components)
        if not beta >= 0:
            raise ValueError(f"`beta` must be non-negative; got {beta!r}.")
        self.qz_regularizer = check_non_negative("qz_regularizer", qz_regularizer)
        if self.qz_regularizer > 0 and (gradient_estimator in ("dreg", "score")
                                        or objective == "piwae"):
            raise ValueError(
                "`qz_regularizer` needs reparameterised gradients; got "
                f"gradient_estimator={gradient_estimator!r}, objective={objective!r}.")
        self.objective = objective
        # A variable, not a float: warm-up callbacks change it without retracing.
        self.beta = keras.Variable(float(beta), trainable=False, name="beta")
        self.stl = bool(stl) or gradient_estimator == "stl"
        self.finish_init(input_dim)

    def metric_names(self):
        names = ("loss", self.objective, "elbo", "reconstruction", "kl")
        return names + (("qz_regularizer",) if self.qz_regularizer > 0 else ())

    # ---------------------------------------------------------------- the math
    def bound_values(self, terms, objective=None, beta=None, **options):
        """Per-example values `[batch]` of the trained bound (the model's objective,
        beta and options unless given) and its diagnostics."""
        objective = self.objective if objective is None else objective
        options = options or self.objective_options
        beta = tf.convert_to_tensor(self.beta) if beta is None else beta
        return super().bound_values(terms, objective, beta, **options)

    def loss_and_values(self, terms):
        """`-bound` (plus the weighted q(z) penalty) and the per-example metrics."""
        values = self.bound_values(terms)
        loss = -tf.reduce_mean(values[self.objective])
        if self.qz_regularizer > 0:
            penalty = regularizers.qz_moment_penalty(terms["z"], terms["log_alpha"])
            values["qz_regularizer"] = penalty
            loss += self.qz_regularizer * penalty
        return loss, values

    def estimator_targets(self, x, y, seed=None):
        """The surrogates of the model's gradient estimator on one batch (see
        `tfvi.estimators`), the reported loss and the per-example metrics."""
        estimator = self.estimator
        terms, dists = self.log_weight_terms(
            x, y, stl=self.stl or estimator.stl, seed=seed,
            stop_sample_gradient=not estimator.reparameterized, return_distributions=True)
        loss, values = self.loss_and_values(terms)
        if self.qz_regularizer > 0:  # pathwise only: the loss itself is the target
            return {"all": -loss}, loss, values
        targets = estimator.surrogates(
            terms, dists, values, self.objective, tf.convert_to_tensor(self.beta),
            self.objective_options, estimators.prior_shares_encoder(self))
        return targets, loss, values

    # -------------------------------------------------------------- Keras steps
    def train_step(self, data):
        x, y = unpack_batch(data)
        with tf.GradientTape(persistent=True) as tape:
            targets, loss, values = self.estimator_targets(x, y)
            losses = {name: -target * replica_loss_scale() for name, target in targets.items()}
        self.apply_losses(tape, losses)
        return self.update_metrics(loss, values)

    def test_step(self, data):
        x, y = unpack_batch(data)
        return self.update_metrics(*self.loss_and_values(self.log_weight_terms(x, y)))

    # ----------------------------------------------------------- serialisation
    def get_config(self):
        config = super().get_config()
        config.update(
            objective=self.objective,
            samples=self.samples,
            beta=float(self.beta.numpy()),
            stl=self.stl,
            objective_options=self.objective_options,
            gradient_estimator=self.gradient_estimator,
            qz_regularizer=self.qz_regularizer,
        )
        return config
