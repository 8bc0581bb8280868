"""Variational information bottleneck classifier with (mixture) posteriors, Morningstar et al. B.1.

    q(z|x) = sum_k alpha_k(x) q_k(z|x)      (encoder; K = 1 is a Gaussian)
    p(y|z) = Categorical(softmax(W z + b))   (an affine classifier, `CategoricalDecoder`)
    r(z)   = trainable mixture of Gaussians  (prior)

trained with the VAE machinery on `(x, y)` batches: the log-weights are
`log p(y|z) + beta (log r(z) - log q(z|x))` with beta = 0.05 (B.1: the penalty on the
KL divergence and on the equivalent term of SIWAE), and the objective is ELBO/IWAE
for K = 1 or SELBO/SIWAE for K > 1 (or any C.1 ablation objective of `tfvi.bounds`).

Prediction uses the posterior predictive `p(y|x) = E_q[p(y|z)]`; in training and
`evaluate` it is the stratified estimate `sum_k alpha_k (1/T) sum_t p(y|z_tk)` on the
training samples (metric `accuracy`); `call(x)` uses `predict_samples` samples per
component, and `tfvi.evaluation.posterior_predictive(model, x, 10_000)` is the
paper's evaluation.
"""

from typing import Any

import keras
import tensorflow as tf

from tfvi.distributions import stratified_sample
from tfvi.models.vae import VAE
from tfvi.validation import check_positive_int

__all__ = ["VIBClassifier"]


@keras.saving.register_keras_serializable(package="tfvi")
class VIBClassifier(VAE):
    """VIB classifier (Morningstar et al., B.1): a `VAE` whose likelihood is a classifier.

    Args:
      encoder: a tfvi encoder (`MixtureEncoder(2, components=K, hidden=(128,) * 4,
        activation="elu", covariance="full")` in the paper).
      classifier: a `CategoricalDecoder(num_classes, hidden=())` (affine, B.1).
      prior: a tfvi prior (default standard normal; B.1 uses a trainable
        `MixtureOfGaussians`).
      objective: "elbo"/"iwae" (K = 1), "selbo"/"siwae" (K > 1), or an ablation.
      samples: T per component.
      beta: weight of `log r(z) - log q(z|x)` (0.05 in B.1).
      predict_samples: samples per component used by `call()` / `predict`.
      **kwargs: the other `VAE` arguments (`stl`, `gradient_estimator`,
        `objective_options`, `input_dim`, `seed`).

    `fit` takes `(x, labels)` with integer labels `[batch]`.
    """

    def __init__(self, encoder: keras.layers.Layer, classifier: keras.layers.Layer,
                 prior: keras.layers.Layer | None = None, objective: str = "elbo",
                 samples: int = 1, beta: float = 0.05, predict_samples: int = 100,
                 **kwargs: Any) -> None:
        self.predict_samples = check_positive_int("predict_samples", predict_samples)
        if isinstance(classifier, dict):
            classifier = keras.saving.deserialize_keras_object(classifier)
        if not hasattr(classifier, "num_classes"):
            raise ValueError(
                "`classifier` must be a classifier layer with `num_classes` returning a "
                f"`tfd.Categorical` (e.g. `tfvi.layers.CategoricalDecoder`); got {classifier!r}.")
        super().__init__(encoder, classifier, prior, objective=objective, samples=samples,
                         beta=beta, **kwargs)

    def metric_names(self):
        return super().metric_names() + ("accuracy",)

    @property
    def classifier(self):
        return self.decoder

    @property
    def num_classes(self):
        return self.decoder.num_classes

    def log_weight_terms(self, x, y=None, *args, return_distributions=False, **kwargs):
        """`VAE.log_weight_terms` plus `correct` `[batch]`: 1 where the stratified
        posterior predictive on these samples puts its maximum on the label."""
        if y is None:
            raise ValueError("`VIBClassifier` needs labels `y` (batches of `(x, y)`).")
        terms, dists = super().log_weight_terms(x, y, *args, return_distributions=True,
                                                **kwargs)
        probs = self._predictive(dists["likelihood"].probs_parameter(), terms["log_alpha"])
        labels = tf.cast(y, tf.int64)
        terms["correct"] = tf.cast(tf.equal(tf.argmax(probs, axis=-1), labels), probs.dtype)
        return (terms, dists) if return_distributions else terms

    def bound_values(self, terms, objective=None, beta=None, **options):
        values = super().bound_values(terms, objective, beta, **options)
        if "correct" in terms:
            values["accuracy"] = terms["correct"]
        return values

    @staticmethod
    def _predictive(probs, log_alpha):
        # probs [T, K, batch, C] -> sum_k alpha_k (1/T) sum_t p(y|z_tk): [batch, C]
        alpha = tf.exp(log_alpha)[..., tf.newaxis]
        return tf.reduce_sum(alpha * tf.reduce_mean(probs, axis=0), axis=0)

    def predict_proba(self, x, samples=None, seed=None):
        """Stratified posterior predictive class probabilities `[batch, num_classes]`."""
        samples = self.predict_samples if samples is None else samples
        seed = self.next_seed() if seed is None else seed
        z, log_alpha = stratified_sample(self.encoder(x), samples, seed=seed)
        return self._predictive(self.decoder(z).probs_parameter(), log_alpha)

    def call(self, x, training=False):
        """Posterior predictive class probabilities `[batch, num_classes]`."""
        return self.predict_proba(x)

    def get_config(self):
        config = super().get_config()
        config["classifier"] = config.pop("decoder")
        config["predict_samples"] = self.predict_samples
        return config
