"""SavedModel export with serving signatures that load with TensorFlow alone.

`export_model(model, path)` writes a SavedModel whose signatures (and same-named
functions on the loaded object) return tensors or dicts of tensors only, so
`tf.saved_model.load(path)` works in a process that imports neither tfvi nor
TensorFlow Probability: TFP is pure Python over core TensorFlow ops, so a traced
function that returns tensors saves as core ops only, while a `Distribution` output
would need TFP (and its Python classes) to load:

* `encode(x)` -> the posterior parameters (`loc`, `scale_diag` or `scale_tril`, and
  `logits` for a mixture; `[batch, K, d]` per component);
* `decode(z)` -> the likelihood parameters (`logits`, or `loc` and `scale`);
* `sample(n, seed)` -> `z ~ r(z)` `[n, d]`, `x ~ p(x|z_i)` and the likelihood
  parameters; `seed` is a stateless `[2]` int32 seed; r is the model's own prior
  (learned priors included: Real NVP / MAF samples run the flow, VampPrior draws a
  pseudo-input component and samples its posterior);
* `prior_log_prob(z)` -> `{"log_prob": [batch]}`: log r(z) under the model's prior
  (for a learned prior the only way to score latents without tfvi);
* `elbo(x)` -> `{"elbo": [batch]}`: the (stratified) ELBO estimated with
  `ELBO_SAMPLES` samples per component and a fixed seed;
* `log_likelihood(x, num_samples)` -> `{"log_likelihood": [batch]}`: the IWAE
  estimate with `num_samples` samples: `tfvi.evaluation.chunked_iwae` (stratified
  over mixture components, chunks of `IWAE_CHUNK` samples in a `tf.while_loop`,
  log-sum-exp in float64) with the fixed seed `IWAE_SEED`.

Arguments are validated in the graph (`tf.debugging` asserts, an
`InvalidArgumentError` whose message names the argument): `num_samples` in
[1, `MAX_NUM_SAMPLES`], `n` in [0, `MAX_NUM_SAMPLES`], and, when exported with
`validate_data=True` (the launcher's default), `x`/`y` finite and in the
likelihood's support (`tfvi.data.validation.support_of`: Bernoulli in [0, 1], ...).

When the likelihood scores a target other than the input (`--view=single_column`,
`--target=label|same_class_random`), `elbo` and `log_likelihood` take `(x, y)`.
`export/tfvi.json` records the shapes and the data flags the model was trained on.
"""

import json
import os

import tensorflow as tf

from tfvi import bounds
from tfvi.data import validation
from tfvi.evaluation.likelihood import chunked_iwae
from tfvi.training import atomic

__all__ = ["ServingModule", "export_model", "ELBO_SAMPLES", "MAX_NUM_SAMPLES", "SIGNATURES"]

ELBO_SAMPLES = 16
# Cap of `num_samples` (log_likelihood) and `n` (sample): 10^5 samples of a digits
# model take about a minute per 100 examples on one CPU core; 10^9 would take days.
MAX_NUM_SAMPLES = 100_000
IWAE_CHUNK = 128
IWAE_SEED = (1, 2)
SIGNATURES = ("encode", "decode", "sample", "prior_log_prob", "elbo", "log_likelihood")


def input_shape_of(model):
    """The shape of one model input without the batch axis: `(D,)` or e.g. `(28, 28, 1)`."""
    dim = model.input_dim
    return tuple(int(s) for s in dim) if isinstance(dim, (list, tuple)) else (int(dim),)


class ServingModule(tf.Module):
    """The serving functions of a tfvi encoder/decoder model (see module docstring).

    Args:
      model: a model with `encoder`, `decoder`, `prior`, `log_weight_terms`.
      target_spec: `tf.TensorSpec` of the likelihood target when it is not the
        encoder input (else None).
      validate_data: assert in the graph that scored data is finite and in the
        likelihood's support.
    """

    def __init__(self, model, target_spec=None, validate_data=True):
        super().__init__(name="tfvi_serving")
        self.model = model
        self.validate_data = bool(validate_data)
        input_shape = input_shape_of(model)
        latent_dim = int(model.latent_dim)
        x_spec = tf.TensorSpec([None, *input_shape], tf.float32, name="x")
        z_spec = tf.TensorSpec([None, latent_dim], tf.float32, name="z")
        n_spec = tf.TensorSpec([], tf.int32, name="n")
        seed_spec = tf.TensorSpec([2], tf.int32, name="seed")
        s_spec = tf.TensorSpec([], tf.int32, name="num_samples")
        self.has_target = target_spec is not None
        self.encode = tf.function(self._encode, input_signature=[x_spec])
        self.decode = tf.function(self._decode, input_signature=[z_spec])
        self.sample = tf.function(self._sample, input_signature=[n_spec, seed_spec])
        self.prior_log_prob = tf.function(self._prior_log_prob, input_signature=[z_spec])
        if self.has_target:
            y_spec = tf.TensorSpec(target_spec.shape, target_spec.dtype, name="y")
            self.elbo = tf.function(self._elbo, input_signature=[x_spec, y_spec])
            self.log_likelihood = tf.function(self._log_likelihood,
                                              input_signature=[x_spec, y_spec, s_spec])
        else:
            self.elbo = tf.function(lambda x: self._elbo(x, None), input_signature=[x_spec])
            self.log_likelihood = tf.function(lambda x, num_samples: self._log_likelihood(
                x, None, num_samples), input_signature=[x_spec, s_spec])

    def _encode(self, x):
        return dict(self.model.encoder.posterior_parameters(x))

    def _decode(self, z):
        return dict(self.model.decoder.decoder_parameters(z))

    def _checked_count(self, name, value, low):
        with tf.control_dependencies([
                tf.debugging.assert_greater_equal(
                    value, low, message=f"`{name}` must be >= {low}"),
                tf.debugging.assert_less_equal(
                    value, MAX_NUM_SAMPLES,
                    message=f"`{name}` must be <= MAX_NUM_SAMPLES = {MAX_NUM_SAMPLES}")]):
            return tf.identity(value)

    def _checked_data(self, x, y):
        """`x` (and `y`) behind the support asserts when `validate_data`."""
        if not self.validate_data:
            return x, y
        support = validation.support_of(self.model.decoder)
        if y is None:
            return validation.graph_checks("x", x, support), None
        return (validation.graph_checks("x", x, validation.REALS),
                validation.graph_checks("y", y, support))

    def _sample(self, n, seed):
        n = self._checked_count("n", n, 0)
        seed_z, seed_x = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        z = self.model.prior().sample(n, seed=seed_z)
        decoder = self.model.decoder
        params = decoder.decoder_parameters(z)
        # A known likelihood (`KnownLikelihood`) has no parameters-to-distribution map:
        # calling the layer gives p(x|z).
        dist = decoder.distribution(params) if hasattr(decoder, "distribution") \
            else decoder(z)
        x = dist.sample(seed=seed_x)
        return dict(params, z=z, x=tf.cast(x, tf.float32))

    def _prior_log_prob(self, z):
        return {"log_prob": self.model.prior().log_prob(z)}

    def _elbo(self, x, y):
        x, y = self._checked_data(x, y)
        terms = self.model.log_weight_terms(x, y, samples=ELBO_SAMPLES,
                                            seed=tf.constant([0, 0], tf.int32))
        log_w = bounds.log_weights(terms["log_likelihood"], terms["log_prior"],
                                   terms["log_posterior"])
        return {"elbo": bounds.selbo(log_w, terms["log_alpha"])}

    def _log_likelihood(self, x, y, num_samples):
        num_samples = self._checked_count("num_samples", num_samples, 1)
        x, y = self._checked_data(x, y)
        estimate = chunked_iwae(self.model, x, y, num_samples,
                                tf.constant(IWAE_SEED, tf.int32), chunk_size=IWAE_CHUNK)
        return {"log_likelihood": estimate}

    def signatures(self):
        return {name: getattr(self, name).get_concrete_function() for name in SIGNATURES}


def export_model(model, path, target_spec=None, metadata=None, validate_data=True):
    """Writes the SavedModel to `path` atomically (`tfvi.training.atomic.directory`:
    a temporary sibling, then rename; removed on any error, Ctrl-C included).

    Args:
      model: the trained model.
      path: the export directory (replaced if it exists).
      target_spec: `tf.TensorSpec` of the target if it differs from the input.
      metadata: JSON-able dict stored in `path/tfvi.json` (with shapes added).
      validate_data: in-graph finiteness and support asserts on scored data.

    Returns:
      the `ServingModule` that was saved (its functions are the in-memory reference).
    """
    module = ServingModule(model, target_spec, validate_data)
    meta = dict(metadata or {})
    input_shape = input_shape_of(model)
    meta.update(input_dim=input_shape[0] if len(input_shape) == 1 else list(input_shape),
                latent_dim=int(model.latent_dim),
                num_components=int(getattr(model, "num_components", 1)),
                signatures=list(SIGNATURES), has_target=module.has_target,
                target_shape=None if target_spec is None else list(target_spec.shape),
                target_dtype=None if target_spec is None else target_spec.dtype.name,
                elbo_samples=ELBO_SAMPLES, max_num_samples=MAX_NUM_SAMPLES,
                validate_data=module.validate_data)
    with atomic.directory(path, "export") as tmp:
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        with open(os.path.join(tmp, "tfvi.json"), "w") as f:
            json.dump(atomic.json_safe(meta), f, indent=2, sort_keys=True, allow_nan=False)
    return module
