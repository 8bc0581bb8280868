"""Fault injection (issue 14), the in-process cases: bad data at `fit`, strict JSON,
divergence warning, disk-full errors of single files. The launcher cases (kills,
locks, corrupt workdirs) are in tests/test_faults.py."""

import errno
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import tfvi
from tfvi.data.validation import DataError
from tfvi.training import atomic

pytestmark = pytest.mark.faults


def strict_json(path):
    def refuse(token):
        raise ValueError(f"non-strict JSON token {token}")

    with open(path) as f:
        return json.loads(f.read(), parse_constant=refuse)


# ------------------------------------------------------------ 6. data at fit
def _vae():
    model = tfvi.models.VAE(tfvi.layers.GaussianEncoder(2, hidden=(8,)),
                            tfvi.layers.BernoulliDecoder(6, hidden=(8,)), input_dim=6,
                            seed=0)
    model.compile(jit_compile=False)
    model.build((None, 6))
    return model


def _weights(model):
    return [w.numpy().copy() for w in model.weights]


@pytest.mark.parametrize("make, match", [
    (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 3 * 6 + 4, np.nan, x),
     r"`x` has a non-finite value nan at index \(3, 4\); rule: every value finite"),
    (lambda x: x * 5 - 2, r"`x` has the value -2.0 at index \(0, 0\); rule: values in "
                          r"\[0, 1\] \(Bernoulli"),
    (lambda x: x[:0], r"`x` is empty"),
])
def test_bad_arrays_fail_at_fit_naming_array_index_and_rule(make, match):
    model = _vae()
    before = _weights(model)
    x = np.zeros((10, 6), np.float32)
    with pytest.raises(DataError, match=match):
        model.fit(make(x), epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model)))


def test_empty_dataset_and_non_finite_dataset_fail_clearly():
    model = _vae()
    empty = tf.data.Dataset.from_tensor_slices(np.zeros((0, 6), np.float32)).batch(2)
    with pytest.raises(DataError, match="is empty"):
        model.fit(empty, epochs=1, verbose=0)
    x = np.zeros((4, 6), np.float32)
    x[1, 2] = np.nan
    before = _weights(model)
    with pytest.raises(tf.errors.InvalidArgumentError, match="`x` has a non-finite value"):
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(2), epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model)))


def test_integer_binary_arrays_are_cast_and_fit():
    model = _vae()
    x = (np.arange(60).reshape(10, 6) % 2).astype(np.int64)
    history = model.fit(x, epochs=1, batch_size=5, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    floats = model.evaluate(x.astype(np.float32), verbose=0, return_dict=True)
    assert np.isfinite(floats["loss"])


def test_non_finite_values_are_written_as_null_with_a_reason(tmp_path):
    path = str(tmp_path / "m.json")
    atomic.write_json(path, {"a": float("nan"), "b": [1.0, np.float32("inf")], "c": 2})
    saved = strict_json(path)
    assert saved["a"] is None and saved["b"] == [1.0, None] and saved["c"] == 2
    assert set(saved["null_reasons"]) == {"a", "b[1]"}


def test_finite_divergence_warns_once(capsys):
    from tfvi.training import NaNGuard

    guard = NaNGuard()
    guard.on_train_batch_end(0, {"loss": 12.0})
    guard.on_train_batch_end(1, {"loss": 1e11})
    guard.on_train_batch_end(2, {"loss": 2e11})
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "1e+11" in err[0] and "diverging" in err[0]


def test_disk_full_error_for_a_file_names_path_and_size(tmp_path, monkeypatch):
    monkeypatch.setenv("TFVI_FAULT_RAISE_AT", "json.before_rename:enospc")
    path = str(tmp_path / "m.json")
    with pytest.raises(atomic.DiskFullError) as info:
        atomic.write_json(path, {"x": list(range(100))})
    assert info.value.errno == errno.ENOSPC and path in str(info.value)
    assert f"needs at least {info.value.needed} bytes" in str(info.value)
    assert info.value.needed > 100 and os.listdir(tmp_path) == []
