"""Prior-training strategies (joint / post-hoc / iterative, Xu et al. B.3) and KL warm-up."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvi
from tfvi.prior_training import prior_is_standard_normal, set_trainable, train_with_prior
from tfvi.training.warmup import (DecoderWeightWarmup, KLWarmup, objective_settled_epoch,
                                 warmup_beta)

D, LATENT = 10, 2


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    return (rng.random((48, D)) < 0.3).astype(np.float32)


def _model(prior=None):
    prior = prior or tfvi.priors.RealNVPPrior(LATENT, depth=2, hidden=(8,), seed=0)
    return tfvi.models.VAE(tfvi.layers.GaussianEncoder(LATENT, hidden=(16,)),
                           tfvi.layers.BernoulliDecoder(output_dim=D, hidden=(16,)),
                           prior, objective="elbo", input_dim=D, seed=0)


def _snapshot(layer):
    return [v.numpy().copy() for v in layer.weights]


def _changed(layer, before):
    return [not np.allclose(v.numpy(), b) for v, b in zip(layer.weights, before)]


def test_flow_priors_are_standard_normal_at_init():
    assert prior_is_standard_normal(tfvi.priors.RealNVPPrior(3, depth=3, hidden=(8,), seed=1))
    assert prior_is_standard_normal(tfvi.priors.MAFPrior(3, depth=2, hidden=(8,)))
    assert not prior_is_standard_normal(tfvi.priors.MixtureOfGaussians(3, components=2))
    prior = tfvi.priors.RealNVPPrior(3, depth=1, hidden=(8,), seed=1)
    prior.initialize(3.0 * tf.random.normal([50, 3], seed=1))
    assert not prior_is_standard_normal(prior)


def test_posthoc_phases(data):
    model = _model()
    prior_before = _snapshot(model.prior)
    history = train_with_prior(model, data, "posthoc", epochs=2, prior_epochs=3, lr=1e-2,
                               jit_compile=False, batch_size=16)
    assert [name for name, _ in history] == ["vae", "prior"]
    assert len(history[0][1].history["loss"]) == 2 and len(history[1][1].history["loss"]) == 3
    assert any(_changed(model.prior, prior_before))
    # Everything is trainable again afterwards.
    assert len(model.trainable_variables) == len(model.encoder.trainable_variables) + len(
        model.decoder.trainable_variables) + len(model.prior.trainable_variables)


def test_freezing_and_the_prior_phase_fits_the_aggregate_posterior(data):
    """Phase a moves only q and p(x|z); phase b only the prior, and raises
    E_x E_q log p(z) (the prior fits the aggregate posterior q(z))."""
    model = _model()
    prior0, enc0 = _snapshot(model.prior), _snapshot(model.encoder)
    set_trainable(model, encoder_decoder=True, prior=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    model.fit(data, epochs=3, batch_size=16, verbose=0)
    assert not any(_changed(model.prior, prior0)) and any(_changed(model.encoder, enc0))
    assert prior_is_standard_normal(model.prior)
    x, seed = tf.constant(data), tf.constant([3, 3])

    def mean_log_prior():
        return float(tf.reduce_mean(model.log_weight_terms(x, samples=200, seed=seed)
                                    ["log_prior"]))

    before = mean_log_prior()
    enc, dec = _snapshot(model.encoder), _snapshot(model.decoder)
    set_trainable(model, encoder_decoder=False, prior=True)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=False)
    model.fit(data, epochs=30, batch_size=16, verbose=0)
    assert not any(_changed(model.encoder, enc)) and not any(_changed(model.decoder, dec))
    assert mean_log_prior() > before


def test_iterative_alternates_phases(data):
    model = _model(tfvi.priors.MAFPrior(LATENT, depth=1, hidden=(8,)))
    history = train_with_prior(model, data, "iterative", epochs=1, prior_epochs=1,
                               iterations=2, jit_compile=False, batch_size=24)
    assert [n for n, _ in history] == ["1a_vae", "1b_prior", "1b_prior_low_lr", "2a_vae",
                                       "2b_prior"]
    lrs = [float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))]
    assert np.isclose(lrs[0], 1e-4)
    assert all(v.trainable for v in model.encoder.weights if "kernel" in v.path)


def test_strategy_validation(data):
    with pytest.raises(ValueError, match="strategy"):
        train_with_prior(_model(), data, "alternating")
    with pytest.raises(ValueError, match="N\\(0, I\\)"):
        train_with_prior(_model(tfvi.priors.MixtureOfGaussians(LATENT)), data, "posthoc")
    with pytest.raises(ValueError, match="epochs"):
        train_with_prior(_model(), data, "joint", epochs=0)


def test_kl_warmup_schedule(data):
    assert warmup_beta(0, 10) == pytest.approx(0.01)
    assert warmup_beta(5, 10) == pytest.approx(0.505)
    assert warmup_beta(10, 10) == warmup_beta(50, 10) == 1.0
    model = _model(tfvi.priors.StandardNormal(LATENT))
    model.compile(optimizer="adam", jit_compile=False)
    h = model.fit(data, epochs=4, batch_size=48, verbose=0, callbacks=[KLWarmup(2)])
    np.testing.assert_allclose(h.history["beta"], [0.01, 0.505, 1.0, 1.0], rtol=1e-6)
    with pytest.raises(ValueError, match="epochs"):
        KLWarmup(-1)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        KLWarmup(3, per_step=True)


def test_the_objective_settles_after_the_longest_warmup():
    """Epoch `epochs` is the first at beta = 1 (and at the full decoder weight); with
    prior-training phases, the first epoch of the last phase."""
    assert warmup_beta(objective_settled_epoch([KLWarmup(7)]), 7) == 1.0
    assert warmup_beta(objective_settled_epoch([KLWarmup(7)]) - 1, 7) < 1.0
    assert objective_settled_epoch([KLWarmup(3), DecoderWeightWarmup(5),
                                    keras.callbacks.History()]) == 5
    assert objective_settled_epoch([keras.callbacks.History()]) == 0
    from tfvi.launch.families.learned_priors import PriorTrainingPhases

    # posthoc over 10 epochs: 5 of the VAE, then 5 of the prior; judged from epoch 5.
    assert objective_settled_epoch([PriorTrainingPhases("posthoc", 10)]) == 5
    assert objective_settled_epoch([PriorTrainingPhases("joint", 10), KLWarmup(2)]) == 2


def test_kl_warmup_changes_the_trained_objective(data):
    """beta scales log p(z) - log q(z|x) in the loss the step minimises."""
    model = _model(tfvi.priors.StandardNormal(LATENT))
    model.compile(optimizer="adam", jit_compile=False)
    x, seed = tf.constant(data), tf.constant([1, 1])
    terms = model.log_weight_terms(x, seed=seed)
    low = model.bound_values(terms, beta=tf.constant(0.01))["elbo"]
    np.testing.assert_allclose(
        low, tf.reduce_mean(terms["log_likelihood"]
                            + 0.01 * (terms["log_prior"] - terms["log_posterior"]), [0, 1]),
        rtol=1e-5)


@pytest.mark.parametrize("strategy", ["posthoc", "iterative"])
def test_split_epochs_covers_every_total_with_no_empty_phase(strategy):
    """The launcher's split: the phases of `split_epochs(total)` sum to `total` (also
    when `total` is not divisible), and none is empty from `minimum_epochs` on."""
    from tfvi.prior_training import minimum_epochs, phases, split_epochs

    for total in range(minimum_epochs(strategy), 70):
        schedule = phases(strategy, *split_epochs(strategy, total))
        assert sum(p.epochs for p in schedule) == total, total
        assert all(p.epochs > 0 for p in schedule)
        assert schedule[0].encoder_decoder and not schedule[0].prior  # VAE first
        assert not schedule[-1].encoder_decoder and schedule[-1].prior  # prior last
    assert split_epochs("posthoc", 7) == (4, 3)
    # Xu et al. B.1 with I = 4: M = 33 // 16 = 2, phase 1a gets 33 - 16 = 17.
    assert split_epochs("iterative", 33) == (17, 2)


def test_phases_drop_empty_ones_and_follow_algorithm_b1():
    from tfvi.prior_training import Phase, phase_of_epoch, phases

    assert [p.name for p in phases("posthoc", 3, prior_epochs=0)] == ["vae"]
    assert [p.name for p in phases("iterative", 0, prior_epochs=2, iterations=2)] == [
        "1b_prior", "1b_prior_low_lr", "2a_vae", "2b_prior"]
    schedule = phases("iterative", 4, prior_epochs=1, iterations=2, lr=1e-3)
    assert [(p.encoder_decoder, p.prior) for p in schedule] == [
        (True, False), (False, True), (False, True), (True, False), (False, True)]
    assert np.allclose([p.learning_rate for p in schedule], [1e-3, 1e-3, 1e-4, 1e-4, 1e-4])
    assert [phase_of_epoch(schedule, e).name for e in (0, 3, 4, 5, 6, 7, 99)] == [
        "1a_vae", "1a_vae", "1b_prior", "1b_prior_low_lr", "2a_vae", "2b_prior", "2b_prior"]
    assert phases("joint", 5) == [Phase("joint", 5, True, True, 1e-3)]
