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
    import tfvi.plots
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
    tfvi.plots.plot_component_modes(vae, x[:3], (2, 2), targets=x[:3], path=str(path))
    assert path.stat().st_size > 1000


def test_elbo_vib_trains_the_beta_weighted_bound():
    """K=1 ELBO VIB: the training loss is -(E log p(y|z) - beta KL), beta = 0.05 (B.1),
    not the beta = 1 ELBO (that bug made the ELBO VIB of the seed-000 grid collapse to
    the prior, i.e. to chance accuracy)."""
    model = _vib(components=1, objective="elbo")
    model.compile(keras.optimizers.SGD(0.0), jit_compile=False)
    x, y = _data(100)
    logs = {k: v[0] for k, v in  # one epoch of one batch: the logs of one train_step
            model.fit(x, y, batch_size=100, epochs=1, verbose=0).history.items()}
    assert logs["kl"] > 0.1  # so that beta = 0.05 and beta = 1 differ measurably
    np.testing.assert_allclose(logs["loss"], -(logs["reconstruction"] - 0.05 * logs["kl"]),
                               rtol=1e-5)
    np.testing.assert_allclose(logs["elbo"], -logs["loss"], rtol=1e-6)


def _launcher_flags(*args):
    from absl import flags

    from tfvi.launch import train as T

    T.setup()
    f = flags.FLAGS
    f.unparse_flags()
    f(["tfvi-train", *args])
    return T, f


def test_single_column_vib_preset_is_the_b1_grid_cell():
    T, f = _launcher_flags("--preset=single_column_digits_vib")
    T.tfvi_flags.apply_preset(f)
    T.tfvi_flags.validate(f)
    assert (f.model, f.view, f.target, f.objective, f.components, f.samples, f.beta,
            f.latent_dim, f.covariance, f.prior, f.lr_schedule) == (
        "vib", "single_column", "label", "siwae", 5, 5, 0.05, 2, "full", "mog", "step")
    # B.1 halves the rate halfway through training (15000 of 30000 steps).
    assert f.lr_decay_steps == f.epochs * (1500 // f.batch_size) // 2


def test_style_modality_preset_trains_on_same_class_targets(tmp_path):
    """`--preset=style_modality_digits` (C.7) runs end to end (tiny nets, one epoch)."""
    T, f = _launcher_flags(
        "--preset=style_modality_digits", "--epochs=1", "--encoder_hidden=16",
        "--decoder_hidden=16", "--jit_compile=false", "--eval_iwae_samples=10",
        "--eval_max_examples=50", "--noplots", "--noexport", "--verbose=0",
        f"--workdir={tmp_path / 'w'}")
    metrics = T.train(f)
    assert tuple(map(metrics["flags"].get, ("model", "target", "view", "components", "objective"))) == (
        "vae", "same_class_random", "full", 5, "siwae")
    assert metrics["epochs_trained"] == 1
    assert np.isfinite(metrics["test"]["nll"])
