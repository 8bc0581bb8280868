"""Flow layers: exact invertibility, log-det = autodiff Jacobian log-det, autoregressive
masks, ActNorm data init, and maximum-likelihood fits of a 2-D density with known
entropy (Xu et al.'s Real NVP prior, and MAF)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfvi
from tfvi.layers import flows

tfd = tfp.distributions
DIM = 4


def _perturb(layer, scale=0.3, seed=0):
    for i, v in enumerate(layer.trainable_variables):
        v.assign(v + scale * tf.random.normal(v.shape, seed=seed + i))
    return layer


def _make(kind):
    if kind == "invertible_dense":
        return _perturb(flows.InvertibleDense(DIM, seed=3))
    if kind == "coupling":
        return _perturb(flows.AffineCoupling(DIM, hidden=(16,)))
    if kind == "actnorm":
        layer = flows.ActNorm(DIM)
        layer.initialize(3.0 * tf.random.normal([100, DIM], seed=9) + 1.0)
        return layer
    if kind == "realnvp":
        flow = _perturb(flows.RealNVPFlow(DIM, depth=3, hidden=(16,), seed=1))
        flow.initialize(2.0 * tf.random.normal([100, DIM], seed=8))
        return flow
    return _perturb(flows.MAFFlow(DIM, depth=3, hidden=(16, 16)), scale=0.15)


KINDS = ["invertible_dense", "coupling", "actnorm", "realnvp", "maf"]


@pytest.mark.parametrize("kind", KINDS)
def test_exactly_invertible(kind):
    layer = _make(kind)
    x = tf.random.normal([2, 5, DIM], seed=11)  # leading sample and batch axes
    y = layer.bijector().forward(x)
    assert y.shape == x.shape
    assert np.abs(y - x).max() > 1e-2  # not the identity
    # Fresh tensors and bijectors, so TFP's forward/inverse cache cannot answer.
    x_back = layer.bijector().inverse(tf.identity(y))
    np.testing.assert_allclose(x_back, x, atol=1e-5)
    y_again = layer.bijector().forward(tf.identity(x_back))
    np.testing.assert_allclose(y_again, y, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_log_det_matches_autodiff_jacobian(kind):
    layer = _make(kind)
    x = tf.random.normal([6, DIM], seed=12)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer.bijector().forward(x)
    jac = tape.batch_jacobian(y, x)
    _, log_abs_det = tf.linalg.slogdet(tf.cast(jac, tf.float64))
    fldj = layer.bijector().forward_log_det_jacobian(tf.identity(x), event_ndims=1)
    np.testing.assert_allclose(fldj, log_abs_det, atol=1e-4)
    ildj = layer.bijector().inverse_log_det_jacobian(tf.identity(y), event_ndims=1)
    np.testing.assert_allclose(ildj, -log_abs_det, atol=1e-4)


def test_coupling_and_made_start_at_identity():
    x = tf.random.normal([7, DIM], seed=13)
    # MAF depth 3: two order reversals between the layers cancel.
    for layer in (flows.AffineCoupling(DIM, hidden=(8,)), flows.MAFFlow(DIM, depth=3)):
        np.testing.assert_allclose(layer.bijector().forward(x), x, atol=1e-6)


def test_made_is_autoregressive():
    made = _perturb(flows.MADE(5, hidden=(32, 32)), scale=0.5)
    x = tf.random.normal([3, 5], seed=14)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        shift, log_scale = made(x)
    for out in (shift, log_scale):
        jac = tape.batch_jacobian(out, x).numpy()  # [3, out_i, in_j]
        upper = np.triu(np.ones((5, 5)))  # j >= i: must not influence output i
        assert np.all(jac[:, upper.astype(bool)] == 0.0)
        assert np.abs(jac[:, 4, :4]).min() > 0.0  # the last output sees all earlier inputs


def test_actnorm_data_dependent_init():
    layer = flows.ActNorm(3)
    x = tf.random.normal([500, 3], seed=15) * [1.0, 5.0, 0.1] + [2.0, -1.0, 0.0]
    np.testing.assert_allclose(layer(x), x)  # identity before init
    layer.initialize(x)
    y = layer(x).numpy()
    np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(0), 1.0, atol=1e-3)
    assert float(layer.initialized.numpy()) == 1.0


def test_invertible_dense_starts_as_rotation():
    layer = flows.InvertibleDense(5, seed=0)
    x = tf.random.normal([4, 5], seed=16)
    np.testing.assert_allclose(tf.norm(layer(x), axis=-1), tf.norm(x, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(
        layer.bijector().forward_log_det_jacobian(x, event_ndims=1), 0.0, atol=1e-5)


@pytest.mark.parametrize("cls,kwargs", [
    (flows.RealNVPFlow, dict(latent_dim=3, depth=2, hidden=(8,), seed=0)),
    (flows.MAFFlow, dict(latent_dim=3, depth=2, hidden=(8,))),
])
def test_config_round_trip(cls, kwargs):
    layer = _perturb(cls(**kwargs))
    clone = cls.from_config(layer.get_config())
    clone.set_weights(layer.get_weights())
    x = tf.random.normal([5, 3], seed=17)
    np.testing.assert_allclose(clone(x), layer(x), atol=1e-6)


def test_flow_argument_validation():
    with pytest.raises(ValueError, match="latent_dim"):
        flows.RealNVPFlow(1)
    with pytest.raises(ValueError, match="depth"):
        flows.RealNVPFlow(3, depth=0)
    with pytest.raises(ValueError, match="mask"):
        flows.MaskedDense(4, np.ones((3, 5)))


# -------------------------------------------- maximum likelihood on a known density
# Banana: z1 = u1, z2 = 0.5 u2 + 0.8 (u1^2 - 1), u ~ N(0, I). A shear has unit
# Jacobian, so H(p) = H(N(0,1)) + H(N(0, 0.5^2)) exactly, and
# log p(z) = log N(z1; 0, 1) + log N(z2; 0.8 (z1^2 - 1), 0.5^2).
def _banana_sample(n, seed):
    u = tf.random.stateless_normal([n, 2], seed=seed)
    return tf.stack([u[:, 0], 0.5 * u[:, 1] + 0.8 * (u[:, 0] ** 2 - 1.0)], axis=-1)


def _banana_log_prob(z):
    return (tfd.Normal(0.0, 1.0).log_prob(z[:, 0])
            + tfd.Normal(0.8 * (z[:, 0] ** 2 - 1.0), 0.5).log_prob(z[:, 1]))


BANANA_ENTROPY = 0.5 * math.log(2 * math.pi * math.e) + 0.5 * math.log(
    2 * math.pi * math.e * 0.25)


def _fit(prior, steps, lr, batch=512):
    optimizer = keras.optimizers.Adam(lr)
    variables = prior.trainable_variables
    optimizer.build(variables)

    @tf.function(jit_compile=True)
    def step(seed):
        z = _banana_sample(batch, seed)
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(prior().log_prob(z))
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    for i in range(steps):
        step(tf.constant([i, 7]))
    z = _banana_sample(20000, tf.constant([10**6, 1]))
    log_p, log_q = _banana_log_prob(z), prior().log_prob(z)
    cross_entropy = -tf.reduce_mean(log_q).numpy()
    kl = tf.reduce_mean(log_p - log_q).numpy()
    return cross_entropy, kl


@pytest.mark.parametrize("make_prior,steps,lr", [
    (lambda: tfvi.priors.RealNVPPrior(2, depth=4, hidden=(32,), seed=0), 400, 5e-3),
    (lambda: tfvi.priors.MAFPrior(2, depth=2, hidden=(32, 32)), 400, 5e-3),
], ids=["realnvp", "maf"])
def test_ml_fit_reaches_target_entropy(make_prior, steps, lr):
    prior = make_prior()
    cross_entropy, kl = _fit(prior, steps, lr)
    # E_p[-log q] = H(p) + KL(p || q): within 0.05 nats of the entropy means KL < 0.05.
    assert kl < 0.05, (cross_entropy, BANANA_ENTROPY, kl)
    assert abs(cross_entropy - BANANA_ENTROPY) < 0.05 + 0.03  # + MC error of 20000 draws
