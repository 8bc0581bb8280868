"""`keras.callbacks.TensorBoard` works with a tfvi model's `fit`.

TensorFlow 2.21 no longer installs the `tensorboard` package, and Keras' callback
imports it, so without the dependency in setup.py the callback fails at construction.
The truths checked: the package imports at the version setup.py pins, and the event
files hold, per epoch, exactly the losses and metrics `fit` returned in its history
(read back with TensorBoard's own event reader), plus the weight histograms.
"""

import importlib.metadata

import keras
import numpy as np
import pytest

import tfvi


def test_tensorboard_is_installed_at_the_pinned_version():
    import tensorboard  # noqa: F401  (fails if setup.py's dependency is missing)

    assert importlib.metadata.version("tensorboard").startswith("2.21.")


@pytest.fixture(scope="module")
def logged_fit(tmp_path_factory):
    from tensorboard.backend.event_processing import event_accumulator

    log_dir = tmp_path_factory.mktemp("tb")
    keras.utils.set_random_seed(0)
    model = tfvi.models.VAE(tfvi.layers.GaussianEncoder(2, hidden=(8,)),
                            tfvi.layers.BernoulliDecoder(64, hidden=(8,)),
                            objective="iwae", samples=3, input_dim=64, seed=0)
    model.compile(optimizer="adam", jit_compile=False)
    x = tfvi.data.load_digits()["test_x"][:64]
    history = model.fit(x, batch_size=32, epochs=2, validation_data=(x[:32],), verbose=0,
                        callbacks=[keras.callbacks.TensorBoard(str(log_dir),
                                                               histogram_freq=1)])
    runs = {}
    for run in ("train", "validation"):
        acc = event_accumulator.EventAccumulator(
            str(log_dir / run), size_guidance={event_accumulator.TENSORS: 0})
        acc.Reload()
        runs[run] = acc
    return history.history, runs


def _scalar(acc, tag):
    """[(step, value)] of a scalar tag (Keras 3 writes scalars as tensors)."""
    import tensorflow as tf

    return [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]


def test_epoch_scalars_equal_the_fit_history(logged_fit):
    history, runs = logged_fit
    for name in ("loss", "iwae", "elbo", "kl"):
        logged = _scalar(runs["train"], f"epoch_{name}")
        assert [step for step, _ in logged] == [0, 1], name
        np.testing.assert_allclose([v for _, v in logged], history[name], rtol=1e-6,
                                   err_msg=name)
    val = _scalar(runs["validation"], "epoch_loss")
    np.testing.assert_allclose([v for _, v in val], history["val_loss"], rtol=1e-6)


def test_weight_histograms_are_written(logged_fit):
    _, runs = logged_fit
    tags = runs["train"].Tags()["tensors"]
    histograms = [t for t in tags if t.endswith("/histogram")]
    assert histograms, tags
