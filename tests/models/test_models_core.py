"""The model core (`tfvi.models.core`) and what every family built on it keeps.

Truths checked: batch unpacking; the one K > 1 objective rule; each family's config and
metrics are its own (no family carries, pops or fakes another's arguments); the encoder
runs once per input batch in every training step (the estimators and AIWAE's chains
share q's parameters); passing precomputed posterior parameters changes nothing; the
variable split sends each group the gradient of its own loss.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvi import estimators, layers, models
from tfvi.models.core import LatentVariableModel, replica_loss_scale, unpack_batch
from tfvi.validation import check_objective_for_components

X = (np.random.default_rng(0).random((8, 6)) < 0.5).astype(np.float32)
CORE_KEYS = {"encoder", "decoder", "prior", "input_dim", "seed"}


def test_unpack_batch():
    x, y = tf.ones([2, 3]), tf.zeros([2])
    assert unpack_batch(x) == (x, x)
    assert unpack_batch((x,)) == (x, x)
    assert unpack_batch((x, y)) == (x, y)
    assert unpack_batch((x, None, None)) == (x, x)
    with pytest.raises(ValueError, match="Sample weights are not supported"):
        unpack_batch((x, y, tf.ones([2])))
    with pytest.raises(ValueError, match="got a tuple of 4 elements"):
        unpack_batch((x, y, None, None))


def test_objective_rule_for_mixture_components():
    for objective in ("elbo", "iwae", "selbo", "siwae", "miwae", "ppd"):
        assert check_objective_for_components(objective, 1) == objective
    for objective in ("selbo", "siwae", "miwae", "ciwae", "piwae", "ppd"):
        assert check_objective_for_components(objective, 3) == objective
    with pytest.raises(ValueError, match=r"`objective`='iwae' .* 3-component .* accepted "
                                         r"values: selbo, siwae"):
        check_objective_for_components("iwae", 3)
    with pytest.raises(ValueError, match=r"--objective='siwae' .* accepted values: selbo "
                                         r"\(or --components=1\)"):
        check_objective_for_components("siwae", 2, allowed=("selbo",), name="--objective",
                                       components_name="--components")
    with pytest.raises(ValueError, match="accepted values: none"):
        check_objective_for_components("iwae", 2, allowed=())


def _parts(components=1):
    return (layers.MixtureEncoder(2, components=components, hidden=(4,)),
            layers.BernoulliDecoder(6, hidden=(4,)))


def _families():
    return {
        "vae": models.VAE(*_parts(), objective="iwae", samples=2, input_dim=6, seed=0),
        "vib": models.VIBClassifier(
            layers.MixtureEncoder(2, components=2, hidden=(4,)),
            layers.CategoricalDecoder(3, hidden=()), objective="siwae", samples=2,
            input_dim=6, seed=0),
        "aiwae": models.AIWAE(*_parts(), samples=2, temperatures=2, leapfrog_steps=1,
                              input_dim=6, seed=0),
        "mim": models.MIM(*_parts(), input_dim=6, seed=0),
    }


def test_each_family_keeps_only_its_own_arguments_and_metrics():
    fams = _families()
    for name, model in fams.items():
        assert isinstance(model, LatentVariableModel), name
        config = model.get_config()
        assert CORE_KEYS - {"decoder"} <= set(config), name
        assert [m.name for m in model.metrics] == list(model.metric_names()), name
        clone = type(model).from_config(config)
        assert clone.get_config() == config, name
    for name in ("aiwae", "mim"):  # not VAEs: no VAE argument, real or dummy
        assert not isinstance(fams[name], models.VAE)
        assert not {"objective", "stl", "gradient_estimator", "objective_options",
                    "qz_regularizer"} & set(fams[name].get_config())
    assert "beta" not in fams["mim"].get_config() and float(fams["mim"].beta) == 1.0
    assert fams["vib"].get_config()["classifier"]["class_name"] == "CategoricalDecoder"
    assert fams["vib"].metric_names() == fams["vae"].metric_names()[:1] + (
        "siwae",) + fams["vae"].metric_names()[2:] + ("accuracy",)


def _count_encoder_calls(model, data):
    """Encoder runs in one eager `train_step`."""
    calls = []
    original = model.encoder.posterior_parameters

    def counted(x, *args, **kwargs):
        calls.append(x.shape)
        return original(x, *args, **kwargs)

    model.encoder.posterior_parameters = counted
    model.compile(keras.optimizers.SGD(1e-3), jit_compile=False, steps_per_execution=1)
    logs = model.train_step(data)
    assert all(np.isfinite(float(v)) for v in logs.values())
    return len(calls)


@pytest.mark.parametrize("estimator,objective,components", [
    ("reparam", "iwae", 1), ("stl", "siwae", 2), ("dreg", "siwae", 2),
    ("score", "selbo", 2)])
def test_vae_step_runs_the_encoder_once(estimator, objective, components):
    model = models.VAE(*_parts(components), objective=objective, samples=2, input_dim=6,
                       seed=0, gradient_estimator=estimator)
    assert _count_encoder_calls(model, tf.constant(X)) == 1


def test_aiwae_step_shares_q_between_the_chains_and_the_elbo():
    fams = _families()
    assert _count_encoder_calls(fams["aiwae"], tf.constant(X)) == 1
    # MIM encodes two batches: the data and the decoding samples, each once.
    assert _count_encoder_calls(fams["mim"], tf.constant(X)) == 2


def test_precomputed_posterior_parameters_change_nothing():
    model = models.VAE(*_parts(2), objective="siwae", samples=3, input_dim=6, seed=0)
    x, seed = tf.constant(X), tf.constant([3, 4])
    plain = model.log_weight_terms(x, seed=seed)
    shared, dists = model.log_weight_terms(
        x, seed=seed, params=model.encoder.posterior_parameters(x), return_distributions=True)
    for key, value in plain.items():
        np.testing.assert_array_equal(shared[key], value)
    np.testing.assert_allclose(dists["posterior"].log_prob(shared["z"]),
                               shared["log_posterior"], rtol=1e-6)
    np.testing.assert_allclose(dists["prior"].log_prob(shared["z"]), shared["log_prior"],
                               rtol=1e-6)


def test_grouped_gradients_send_each_group_its_own_loss():
    a, b = tf.Variable(2.0), tf.Variable(3.0)
    assert estimators.split_variables([a, b], [b]) == ([a], [b])
    with tf.GradientTape(persistent=True) as tape:
        losses = {"model": a * b, "inference": a * b * b}
    got = estimators.grouped_gradients(tape, losses, [a, b], [b])
    assert [float(g) for g in got] == [3.0, 2 * 2.0 * 3.0]  # d(ab)/da, d(ab^2)/db
    with tf.GradientTape(persistent=True) as tape:
        losses = {"all": a * b}
    assert [float(g) for g in estimators.grouped_gradients(tape, losses, [a, b], [b])] == \
        [3.0, 2.0]


def test_replica_loss_scale_is_one_over_replicas():
    assert replica_loss_scale() == 1.0
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        assert replica_loss_scale() == 1.0
