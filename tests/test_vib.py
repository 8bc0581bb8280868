"""VIBClassifier: training, posterior predictive, serialisation, baselines."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfvi


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n).astype(np.int32)
    x = np.eye(4, dtype=np.float32)[labels] * 2.0 + 0.3 * rng.standard_normal((n, 4))
    return x.astype(np.float32), labels


def _vib(components=2, objective="siwae", **kwargs):
    keras.utils.set_random_seed(0)
    return tfvi.models.VIBClassifier(
        tfvi.layers.MixtureEncoder(2, components=components, hidden=(32,),
                                   activation="elu", covariance="full"),
        tfvi.layers.CategoricalDecoder(4),
        tfvi.priors.MixtureOfGaussians(2, components=4, seed=0),
        objective=objective, samples=2, input_dim=4, seed=0, **kwargs)


@pytest.fixture(scope="module")
def trained():
    x, y = _data()
    model = _vib()
    model.compile(keras.optimizers.Adam(1e-2), jit_compile=False)
    history = model.fit(x, y, batch_size=100, epochs=25, verbose=0).history
    return model, x, y, history


def test_vib_learns_and_reports_accuracy(trained):
    model, x, y, history = trained
    assert history["accuracy"][-1] > 0.9
    assert history["siwae"][-1] > history["siwae"][0]
    probs = tfvi.evaluation.posterior_predictive(model, x, num_samples=500)
    assert probs.shape == (len(x), 4)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert tfvi.evaluation.accuracy(probs, y) > 0.9
    assert 0.0 <= tfvi.evaluation.expected_calibration_error(probs, y) < 0.5
    # Stratified predictive (call) and ancestral Monte Carlo agree.
    np.testing.assert_allclose(model.predict_proba(x[:50], samples=200).numpy(),
                               probs[:50], atol=0.05)


def test_predictive_of_a_near_deterministic_encoder_is_softmax_of_the_mean():
    model = _vib(components=1, objective="elbo")
    enc = model.encoder
    x = _data(8)[0]
    params = enc.posterior_parameters(tf.constant(x))
    # Shrink the posterior scale to ~0: the predictive is the classifier at the mean.
    # full covariance: the raw outputs fill a lower triangle whose diagonal is softplus'd
    raw = tfp.math.fill_triangular_inverse(tf.linalg.diag(tf.fill([2], -30.0)))
    enc.scale_layer.bias.assign(raw)
    enc.scale_layer.kernel.assign(tf.zeros_like(enc.scale_layer.kernel))
    expected = tf.nn.softmax(model.classifier.decoder_parameters(params["loc"])["logits"])
    probs = tfvi.evaluation.posterior_predictive(model, x, num_samples=50)
    np.testing.assert_allclose(probs, expected.numpy(), atol=1e-4)


def test_round_trip(trained, tmp_path):
    model, x, _, _ = trained
    path = str(tmp_path / "vib.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, tfvi.models.VIBClassifier)
    assert loaded.beta.numpy() == pytest.approx(0.05)
    seed = tf.constant([1, 2])
    np.testing.assert_allclose(loaded.predict_proba(x[:10], seed=seed),
                               model.predict_proba(x[:10], seed=seed), rtol=1e-5)


def test_validation():
    with pytest.raises(ValueError, match="classifier"):
        tfvi.models.VIBClassifier(tfvi.layers.GaussianEncoder(2),
                                  tfvi.layers.BernoulliDecoder(4))
    with pytest.raises(ValueError, match="predict_samples"):
        _vib(predict_samples=0)


def test_baselines_shapes_and_training():
    x, y = _data(200)
    for model in (tfvi.models.baselines.pyramid_mlp(4, 4),
                  tfvi.models.baselines.bottleneck_mlp(4, 4)):
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=1, batch_size=100, verbose=0)
        probs = model.predict(x, verbose=0)
        assert probs.shape == (200, 4)
        np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert [l.units for l in tfvi.models.baselines.pyramid_mlp(4).layers] == [256] * 5 + [10]
    assert tfvi.models.baselines.bottleneck_mlp(4).layers[-2].units == 2


def test_launcher_family_is_registered_and_checks_flags():
    from types import SimpleNamespace

    from tfvi.launch import families, registry

    families.import_all()
    family = registry.MODELS["vib"]
    assert "siwae" in family.objectives and "ppd" in family.objectives
    flags = SimpleNamespace(target="input", posterior="mixture", components=5,
                            objective="siwae", gradient_estimator="reparam")
    with pytest.raises(ValueError, match="--target=label"):
        family.check_flags(flags)
    flags.target, flags.objective = "label", "elbo"
    with pytest.raises(ValueError, match="selbo, siwae"):
        family.check_flags(flags)
    flags.objective, flags.gradient_estimator = "selbo", "dreg"
    with pytest.raises(ValueError, match="dreg"):
        family.check_flags(flags)


def test_component_modes_plot(trained, tmp_path):
    from tfvi.evaluation import modes

    model, x, _, _ = trained
    out = modes.component_modes(model, x[:3])  # VIB: the class decoded at each mode
    assert out["alpha"].shape == (3, 2) and out["decoded"].shape == (3, 2)
    assert set(np.unique(out["decoded"])) <= {0, 1, 2, 3}
    np.testing.assert_allclose(out["alpha"].sum(1), 1.0, rtol=1e-5)
    vae = tfvi.models.VAE(tfvi.layers.MixtureEncoder(2, components=3, hidden=(8,)),
                          tfvi.layers.BernoulliDecoder(4, hidden=(8,)),
                          objective="siwae", input_dim=4, seed=0)
    out = modes.component_modes(vae, x[:3])
    assert out["decoded"].shape == (3, 3, 4)
    assert set(np.unique(out["decoded"])) <= {0.0, 1.0}
    path = tmp_path / "modes.png"
    modes.plot_component_modes(vae, x[:3], (2, 2), targets=x[:3], path=str(path))
    assert path.stat().st_size > 1000
