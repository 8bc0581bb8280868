"""Checkpoints are atomic and restore model + optimizer; the NaN guard names the step
and the cause; TensorBoard events are written without the tensorboard package."""

import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvi
from tfvi import training as cb
from tfvi.training import atomic


def tiny_vae(seed=0):
    model = tfvi.models.VAE(tfvi.layers.GaussianEncoder(2, hidden=(8,)),
                            tfvi.layers.BernoulliDecoder(64, hidden=(8,)),
                            objective="iwae", samples=2, input_dim=64, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    return model


@pytest.fixture(scope="module")
def data():
    return tfvi.data.load_digits()["test_x"][:64]


def test_checkpoint_round_trip_restores_weights_and_optimizer(tmp_path, data):
    model = tiny_vae()
    model.fit(data, batch_size=32, epochs=2, verbose=0)
    manager = cb.CheckpointManager(str(tmp_path / "ckpt"), keep=2)
    manager.save(model, 2, {"history": {"loss": [1.0, 0.5]}})
    fresh = tiny_vae(seed=1)
    state = manager.restore(fresh)
    assert state["epoch"] == 2 and state["history"]["loss"] == [1.0, 0.5]
    for a, b in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))
    assert int(fresh.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) == 4
    for a, b in zip(model.optimizer.variables, fresh.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))


def test_a_crash_while_writing_never_leaves_a_half_checkpoint(tmp_path, data, monkeypatch):
    model = tiny_vae()
    manager = cb.CheckpointManager(str(tmp_path / "ckpt"), keep=3)
    manager.save(model, 1, {})

    def crash(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")  # half a file, then the process "dies"
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(model, "save_weights", crash)
    with pytest.raises(KeyboardInterrupt):
        manager.save(model, 2, {})
    assert [e for e, _ in manager.checkpoints()] == [1]
    assert manager.latest().endswith("epoch-00001")
    # A Python-level crash cleans its temporary directory up (try/finally) ...
    assert not glob.glob(str(tmp_path / "ckpt" / ".tmp-*"))
    # ... only SIGKILL leaves debris, which the next start removes.
    os.makedirs(str(tmp_path / "ckpt" / ".tmp-killed" / "x"))
    again = cb.CheckpointManager(str(tmp_path / "ckpt"))
    assert not glob.glob(str(tmp_path / "ckpt" / ".tmp-*"))  # ... and cleaned at start
    assert again.restore(tiny_vae())["epoch"] == 1


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    model = tiny_vae()
    manager = cb.CheckpointManager(str(tmp_path), keep=2)
    for epoch in range(1, 5):
        manager.save(model, epoch, {})
    assert [e for e, _ in manager.checkpoints()] == [3, 4]
    manager.save(model, 4, {"again": True})  # same epoch twice: replaced atomically
    assert json.load(open(os.path.join(manager.latest(), "state.json")))["again"]


def test_checkpoints_are_throttled_in_time_but_the_last_epoch_is_saved(tmp_path, data,
                                                                         monkeypatch):
    """With `min_seconds`, a checkpoint at the first epoch end that many seconds after
    the previous save (or the start), and always after the last epoch; 0 saves every
    epoch. Each saved state holds the whole history up to its epoch."""
    from tfvi.training import checkpointing

    clock = {"now": 0.0}
    monkeypatch.setattr(checkpointing.time, "monotonic", lambda: clock["now"])

    class Tick(keras.callbacks.Callback):  # each epoch "takes" 4 s
        def on_epoch_end(self, epoch, logs=None):
            clock["now"] += 4.0

    def saved(min_seconds, epochs, keep=10):
        manager = cb.CheckpointManager(str(tmp_path / f"ckpt{min_seconds}"), keep=keep)
        checkpoint = cb.CheckpointCallback(manager, min_seconds=min_seconds)
        tiny_vae().fit(data, batch_size=32, epochs=epochs, verbose=0,
                       callbacks=[Tick(), checkpoint])
        return manager, [e for e, _ in manager.checkpoints()]

    assert saved(0.0, 3)[1] == [1, 2, 3]
    # Epoch ends at 4, 8, 12, ... s: saves at 12 s (epoch 3), 24 s (epoch 6), then the
    # last epoch (7) at the end of fit.
    manager, epochs = saved(10.0, 7)
    assert epochs == [3, 6, 7]
    state = json.load(open(os.path.join(manager.latest(), "state.json")))
    assert state["epoch"] == 7 and len(state["history"]["loss"]) == 7
    assert state["global_step"] == 7 * 2
    assert saved(1e6, 4)[1] == [4]


def test_nan_guard_names_the_step_and_the_cause(data):
    model = tiny_vae()
    bad = data.copy()
    bad[40:] = np.nan
    # The data checks of `fit` stop a NaN in the data before training, naming it ...
    with pytest.raises(ValueError, match=r"`x` has a non-finite value nan at index "
                                         r"\(40, 0\)"):
        model.fit(bad, batch_size=32, epochs=1, verbose=0, callbacks=[cb.NaNGuard()])
    # ... behind them (Keras' own fit), the guard names the step and the cause.
    with pytest.raises(cb.NonFiniteLossError,
                       match=r"epoch 1, step 2 \(global step \d+\).*non-finite"):
        keras.Model.fit(model, bad, batch_size=32, epochs=1, verbose=0, shuffle=False,
                        callbacks=[cb.NaNGuard()])


def test_nan_guard_reports_non_finite_weights(data):
    model = tiny_vae()
    model.fit(data[:32], batch_size=32, epochs=1, verbose=0)
    model.decoder.head.kernel.assign(np.full((8, 64), np.nan, np.float32))
    with pytest.raises(cb.NonFiniteLossError, match=r"non-finite weights \(\d+ of \d+ tensors: vae\w*/"):
        model.fit(data[:32], batch_size=32, epochs=1, verbose=0, callbacks=[cb.NaNGuard()])


def test_tensorboard_scalars_and_images_are_readable(tmp_path, data):
    model = tiny_vae()
    scalars = cb.TensorBoardScalars(str(tmp_path))
    images = cb.ImageSummaries(str(tmp_path / "images"), data, data, (8, 8, 1))
    model.fit(data, batch_size=32, epochs=2, verbose=0, validation_data=data[:32],
              callbacks=[scalars, images])
    found = {}
    for path in glob.glob(str(tmp_path / "**" / "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.setdefault((os.path.basename(os.path.dirname(path)), value.tag),
                                 []).append((event.step, value))
    assert [s for s, _ in found[("train", "epoch_loss")]] == [1, 2]
    assert ("validation", "epoch_loss") in found
    step, value = found[("images", "samples")][-1]
    tensor = tf.make_ndarray(value.tensor)
    assert step == 2 and tensor[0] == b"8" and tensor[1] == b"8" and len(tensor) == 18
    decoded = tf.io.decode_png(tensor[2]).numpy()
    assert decoded.shape == (8, 8, 1)


def test_image_summaries_are_throttled_but_the_last_epoch_is_written(tmp_path, data):
    model = tiny_vae()
    images = cb.ImageSummaries(str(tmp_path), data, data, (8, 8, 1), min_seconds=1e6)
    model.fit(data, batch_size=32, epochs=4, verbose=0, callbacks=[images])
    steps = [event.step for path in glob.glob(str(tmp_path / "events.out.tfevents.*"))
             for event in tf.compat.v1.train.summary_iterator(path)
             for value in event.summary.value if value.tag == "samples"]
    assert steps == [1, 4]  # the first epoch, then only the last one


def test_write_json_atomic(tmp_path):
    path = str(tmp_path / "a" / "m.json")
    atomic.write_json(path, {"x": np.float32(1.5), "y": np.arange(2)})
    assert json.load(open(path)) == {"x": 1.5, "y": [0, 1]}
    assert os.listdir(tmp_path / "a") == ["m.json"]
