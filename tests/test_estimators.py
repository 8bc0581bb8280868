"""Gradient estimators against the plain reparameterised gradient.

Truths used:

* In expectation, DReG (IWAE, per-component SIWAE, any beta, with N(0, I), a trainable
  mixture prior or an encoder-sharing VampPrior) and the score function (ELBO, IWAE,
  SELBO, SIWAE) equal the reparameterised gradient of the same bound, for *every*
  variable: the encoder (phi) and the decoder and prior (theta). The model has
  trainable likelihood weights (an MLP Gaussian decoder) and a trainable prior.
* Exactly, on the same samples: the theta-gradients of "dreg" and "score" are the plain
  gradient of the bound; PIWAE's theta-gradient is SIWAE_T's and its phi-gradient
  M-IWAE's.

Monte Carlo protocol: R independent runs (seeds), all in one compiled graph
(`tf.map_fn`); a run's gradient is the mean over N copies of one data point. Two
estimators agree when every coordinate's mean difference is within `SIGMAS` standard
errors (Welch, SE from the run spread). With R = 40 runs per side (t with ~78 degrees of
freedom), P(|t| > 4.5) = 2.4e-5 per coordinate, so a check over P <= 60 coordinates
fails falsely with probability <= 1.5e-3 (<= 1e-2 over the file). A bias of
`SIGMAS + 2 = 6.5` SE in one coordinate is caught with probability >= 0.97; every
check has a negative control (a planted bug of that size or larger) that fails it.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvi
from tfvi import estimators
from tfvi.seeds import replica_seed

RUNS, COPIES, SIGMAS = 40, 64, 4.5
X0 = [1.0, 0.7]


def _model(components, objective, estimator, beta=1.0, samples=3, prior="mog",
           options=None):
    keras.utils.set_random_seed(7)
    encoder = tfvi.layers.MixtureEncoder(2, components=components, hidden=())
    encoder.build((None, 2))
    if prior == "vamp":
        prior = tfvi.layers.VampPrior(encoder, num_pseudo_inputs=2, seed=3)
    elif prior == "mog":
        prior = tfvi.layers.MixtureOfGaussians(2, components=2, seed=5)
    else:
        prior = None
    return tfvi.models.VAE(
        encoder, tfvi.layers.GaussianDecoder(2, hidden=(3,), init_scale=0.6), prior=prior,
        objective=objective, samples=samples, beta=beta, input_dim=2, seed=0,
        gradient_estimator=estimator, objective_options=options)


def same_weights(a, b):
    for va, vb in zip(a.trainable_variables, b.trainable_variables):
        vb.assign(va)


def _encoder_mask(model):
    """Boolean mask over the flattened gradient: True on encoder (phi) coordinates."""
    ids = {id(v) for v in model.encoder.trainable_variables}
    return np.concatenate([np.full(int(np.prod(v.shape)), id(v) in ids)
                           for v in model.trainable_variables])


def _flat(grads):
    return tf.concat([tf.reshape(g, [-1]) for g in grads], 0)


def gradient_runs(model, seed_offset, runs=RUNS, example=X0):
    """`[runs, P]` flattened gradients, one compiled graph for all the runs; a run's
    gradient is the mean over `COPIES` copies of `example` (one input)."""
    example = np.asarray(example, np.float32)
    x = tf.constant(np.tile(example[np.newaxis], (COPIES,) + (1,) * example.ndim))

    @tf.function
    def all_runs(seeds):
        return tf.map_fn(lambda s: _flat(estimators.gradients(model, x, x, seed=s)[0]),
                         seeds, fn_output_signature=tf.float32, parallel_iterations=4)

    seeds = tf.stack([tf.fill([runs], seed_offset), tf.range(runs)], axis=1)
    return all_runs(seeds).numpy()


def _z_scores(a, b):
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b)) + 1e-12
    return (a.mean(0) - b.mean(0)) / se


def assert_same_expectation(a, b):
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    z = _z_scores(a, b)
    assert np.all(np.abs(z) <= SIGMAS), np.round(z, 1)


def assert_detectably_different(a, b):
    z = _z_scores(a, b)
    assert np.max(np.abs(z)) > SIGMAS + 2.0, np.round(z, 1)


def _pair(components, objective, estimator, **kwargs):
    plain = _model(components, objective, "reparam", **kwargs)
    other = _model(components, objective, estimator, **kwargs)
    same_weights(plain, other)
    return plain, other


_PLAIN_RUNS = {}


def _plain_runs(plain, seed_offset, **config):
    """The reference runs, computed once per model configuration (the weights are a
    deterministic function of it) and shared by a check and its negative control."""
    key = tuple(sorted(config.items())) + (seed_offset,)
    if key not in _PLAIN_RUNS:
        _PLAIN_RUNS[key] = gradient_runs(plain, seed_offset)
    return _PLAIN_RUNS[key]


@pytest.mark.parametrize("components,objective,beta,prior", [
    (1, "iwae", 1.0, "mog"), (2, "siwae", 1.0, "mog"), (2, "siwae", 0.5, "normal"),
    (1, "iwae", 1.0, "vamp"), (2, "siwae", 0.5, "vamp")])
def test_dreg_matches_plain_gradient_in_expectation(components, objective, beta, prior):
    """All coordinates (phi and theta), incl. the encoder-sharing VampPrior. Detects a
    bias of 6.5 SE in any coordinate with probability >= 0.97; false failure <= 1.5e-3."""
    plain, dreg = _pair(components, objective, "dreg", beta=beta, prior=prior)
    reference = _plain_runs(plain, 1, components=components, objective=objective,
                            beta=beta, prior=prior)
    assert_same_expectation(reference, gradient_runs(dreg, 2))


def test_dreg_without_the_vampprior_correction_is_detectably_biased(monkeypatch):
    """Negative control for the VampPrior case (this is the surrogate before the fix):
    the prior's direct phi-dependence weighted by the DReG coefficient v^2 instead of
    v. Measured bias: 7-17 SE on the encoder-scale coordinates; required: > 6.5 SE."""
    plain, dreg = _pair(1, "iwae", "dreg", prior="vamp")
    reference = _plain_runs(plain, 1, components=1, objective="iwae", beta=1.0,
                            prior="vamp")
    monkeypatch.setattr(estimators, "prior_shares_encoder", lambda model: False)
    assert_detectably_different(reference, gradient_runs(dreg, 2))


def test_dropping_the_responsibility_term_is_detectably_biased(monkeypatch):
    """Negative control: the per-component DReG needs the d log gamma_k term."""
    plain, dreg = _pair(2, "siwae", "dreg")
    reference = _plain_runs(plain, 1, components=2, objective="siwae", beta=1.0,
                            prior="mog")
    monkeypatch.setattr(estimators, "_log_alpha_live", lambda q, like: tf.stop_gradient(
        tf.transpose(tf.nn.log_softmax(q.mixture_distribution.logits_parameter(), -1))))
    original = estimators.component_log_prob
    monkeypatch.setattr(estimators, "component_log_prob",
                        lambda q, z: tf.stop_gradient(original(q, z)) + 0.0 * q.log_prob(z))
    assert_detectably_different(reference, gradient_runs(dreg, 8))


def test_dreg_reduces_encoder_gradient_variance_for_iwae():
    """Tucker et al.'s claim at T = 10, on the encoder coordinates (summed variance)."""
    plain, dreg = _pair(1, "iwae", "dreg", samples=10)
    mask = _encoder_mask(plain)
    a, b = gradient_runs(plain, 3), gradient_runs(dreg, 4)
    assert b[:, mask].var(0).sum() < 0.5 * a[:, mask].var(0).sum()


@pytest.mark.parametrize("components,objective", [
    (1, "iwae"), (2, "siwae"), (2, "selbo")])
def test_score_function_is_unbiased(components, objective):
    """Score function vs reparameterised, all coordinates (2 samples per component;
    the score estimator's spread sets the SE). Same power/false-failure as above."""
    plain, score = _pair(components, objective, "score", samples=2)
    reference = _plain_runs(plain, 5, components=components, objective=objective,
                            samples=2)
    assert_same_expectation(reference, gradient_runs(score, 6))


def test_score_function_with_flipped_score_is_detectably_biased(monkeypatch):
    """Negative control: the score term's sign flipped (REINFORCE pushing the wrong way)
    moves the encoder coordinates by > 6.5 SE for SIWAE."""
    plain, score = _pair(2, "siwae", "score", samples=2)
    reference = _plain_runs(plain, 5, components=2, objective="siwae", samples=2)
    original = estimators.component_log_prob
    monkeypatch.setattr(estimators, "component_log_prob", lambda q, z: -original(q, z))
    assert_detectably_different(reference, gradient_runs(score, 6))


def _plain_gradient(model, objective, x, seed, options=None):
    saved = model.objective, model.objective_options, model.estimator
    model.objective, model.objective_options = objective, dict(options or {})
    model.estimator = estimators.get_estimator("reparam", objective)
    try:
        grads, _, _ = estimators.gradients(model, x, x, seed=seed)
    finally:
        model.objective, model.objective_options, model.estimator = saved
    return _flat(grads).numpy()


@pytest.mark.parametrize("components,objective,estimator", [
    (1, "iwae", "dreg"), (2, "siwae", "dreg"), (1, "iwae", "score"),
    (2, "siwae", "score"), (2, "selbo", "score")])
def test_theta_gradient_is_the_plain_gradient_on_the_same_samples(
        components, objective, estimator):
    """Exact: theta (decoder + prior) follows the plain gradient of the bound itself.
    A different bound for theta (e.g. SELBO for DReG's SIWAE) is caught: the control
    below shows SELBO's and SIWAE's theta-gradients differ by > 5% on these samples."""
    model = _model(components, objective, estimator)
    x = tf.constant(np.tile([X0], (8, 1)).astype(np.float32))
    seed = tf.constant([3, 4])
    theta = ~_encoder_mask(model)
    got = _flat(estimators.gradients(model, x, x, seed=seed)[0]).numpy()[theta]
    want = _plain_gradient(model, objective, x, seed)[theta]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    other = "selbo" if objective != "selbo" else "siwae"
    control = _plain_gradient(model, other, x, seed)[theta]
    assert np.linalg.norm(control - want) > 0.05 * np.linalg.norm(want)


def test_estimator_validation():
    with pytest.raises(ValueError, match="gradient_estimator"):
        _model(1, "elbo", "dreg")
    with pytest.raises(ValueError, match="gradient_estimator"):
        _model(1, "elbo", "magic")
    with pytest.raises(ValueError, match="piwae"):
        _model(1, "piwae", "score")


@pytest.mark.parametrize("estimator,objective", [
    ("dreg", "siwae"), ("score", "siwae"), ("stl", "selbo")])
def test_fit_applies_the_estimators_gradient(estimator, objective):
    """`fit` takes one SGD step along `estimators.gradients` (same seed as the model's
    generator draws): the weights move by exactly -lr * gradient."""
    model = _model(2, objective, estimator)
    x = np.tile([X0], (16, 1)).astype(np.float32)
    before = [v.numpy() for v in model.trainable_variables]
    # The seed fit's train_step will draw: the generator's next value.
    probe = _model(2, objective, estimator)
    seed = replica_seed(probe.seed_generator.next())
    same_weights(model, probe)
    grads, _, _ = estimators.gradients(probe, tf.constant(x), tf.constant(x), seed=seed)
    model.compile(keras.optimizers.SGD(0.1), jit_compile=False)
    model.fit(x, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for b, g, v in zip(before, grads, model.trainable_variables):
        np.testing.assert_allclose(v.numpy(), b - 0.1 * g.numpy(), rtol=1e-4, atol=1e-5)
    assert tfvi.models.VAE.from_config(model.get_config()).gradient_estimator == estimator
