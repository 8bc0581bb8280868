"""`fit`'s fast path (tfvi.input_pipeline): same batches, same steps, same weights.

All checks are exact identities (set equality of rows, step counts, weights of two
deterministic runs), so no Monte Carlo tolerance is involved.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvi
from tfvi import input_pipeline
from tfvi.training import NaNGuard
from tfvi.training import KLWarmup


def test_array_dataset_is_a_permutation_per_epoch_with_aligned_targets():
    x = np.arange(23, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y = -x[:, :1]
    ds = input_pipeline.array_dataset(x, y, batch_size=5, shuffle=True, seed=3)
    epochs = []
    for _ in range(2):
        batches = list(ds)
        assert [len(b[0]) for b in batches] == [5, 5, 5, 5, 3]  # remainder kept
        xs = np.concatenate([b[0].numpy() for b in batches])
        ys = np.concatenate([b[1].numpy() for b in batches])
        np.testing.assert_array_equal(np.sort(xs[:, 0]), np.arange(23))  # each row once
        np.testing.assert_array_equal(ys[:, 0], -xs[:, 0])  # pairs stay together
        epochs.append(xs[:, 0])
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch
    ordered = input_pipeline.array_dataset(x, shuffle=False, batch_size=4)
    plain = np.concatenate([b.numpy() for b in ordered])
    np.testing.assert_array_equal(plain, x)
    with pytest.raises(ValueError, match="batch_size"):
        input_pipeline.array_dataset(x, batch_size=0)
    with pytest.raises(ValueError, match="`y` must have as many rows"):
        input_pipeline.array_dataset(x, y[:5])


def test_callbacks_that_act_before_every_step_get_one_step_per_call():
    assert input_pipeline.needs_every_step(KLWarmup(5, per_step=True, steps_per_epoch=3))
    assert not input_pipeline.needs_every_step(KLWarmup(5))
    assert not input_pipeline.needs_every_step(NaNGuard())
    assert input_pipeline.auto_steps_per_execution([NaNGuard()]) == \
        input_pipeline.DEFAULT_STEPS_PER_EXECUTION
    assert input_pipeline.auto_steps_per_execution(
        [KLWarmup(5, per_step=True, steps_per_epoch=3)]) == 1


def _model(jit=False, **compile_kwargs):
    keras.utils.set_random_seed(0)
    model = tfvi.models.VAE(tfvi.layers.GaussianEncoder(2, hidden=(8,)),
                            tfvi.layers.BernoulliDecoder(64, hidden=(8,)), input_dim=64,
                            seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit,
                  **compile_kwargs)
    return model


def test_fast_fit_runs_the_same_steps_as_keras_arrays():
    x = tfvi.data.binarize(tfvi.data.load_digits()["train_probs"][:230], 0)
    fast, keras_path = _model(), _model(steps_per_execution=1)
    for model in (fast, keras_path):
        model.fit(x, batch_size=50, epochs=2, shuffle=False, verbose=0)
    # 230 = 4 x 50 + 30: five steps per epoch, the partial batch included.
    assert int(fast.optimizer.iterations) == int(keras_path.optimizer.iterations) == 10
    assert fast.steps_per_execution == input_pipeline.DEFAULT_STEPS_PER_EXECUTION
    assert keras_path.steps_per_execution == 1
    # Same batches in the same order, same sampling seeds: the same weights.
    for a, b in zip(fast.weights, keras_path.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_a_per_step_callback_sees_every_step():
    x = tfvi.data.binarize(tfvi.data.load_digits()["train_probs"][:100], 0)
    model = _model()
    seen = []

    class Counter(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(batch)

    model.fit(x, batch_size=25, epochs=1, verbose=0, callbacks=[Counter()])
    assert seen == [0, 1, 2, 3] and model.steps_per_execution == 1
    model.fit(tf.data.Dataset.from_tensor_slices(x).batch(25), epochs=1, verbose=0)
    assert model.steps_per_execution == input_pipeline.DEFAULT_STEPS_PER_EXECUTION
    assert int(model.optimizer.iterations) == 8


def test_a_model_built_under_a_strategy_keeps_one_step_per_call():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = _model()
    assert input_pipeline.distributed(model) and not input_pipeline.distributed(_model())
    x = tfvi.data.binarize(tfvi.data.load_digits()["train_probs"][:50], 0)
    model.fit(x, batch_size=25, epochs=1, verbose=0)  # outside the scope, as Keras allows
    assert model.steps_per_execution == 1 and int(model.optimizer.iterations) == 2


def test_steps_per_epoch_is_honoured_on_an_endless_stream():
    """Keras runs whole executions, so 16 steps per call on an endless stream with
    steps_per_epoch=15 would train 16 steps an epoch (and shift every later epoch's
    batches, which breaks exact resume); tfvi picks a divisor of steps_per_epoch."""
    x = (np.random.default_rng(0).random((300, 16)) < 0.5).astype(np.float32)
    model = tfvi.models.VAE(tfvi.layers.GaussianEncoder(2, hidden=(4,)),
                            tfvi.layers.BernoulliDecoder(16, hidden=(4,)), input_dim=16, seed=0)
    model.compile(optimizer="adam", jit_compile=False)
    stream = tf.data.Dataset.from_tensor_slices(x).batch(20).repeat()
    model.fit(stream, steps_per_epoch=15, epochs=2, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 30
    assert model.steps_per_execution == 15


def test_block_dataset_stacks_each_epochs_permutation_into_blocks():
    x = np.arange(23, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y = -x[:, :1]
    ds, per_epoch = input_pipeline.block_dataset(x, y, batch_size=5, block_steps=3,
                                                 shuffle=True, seed=3)
    # 23 = 4 x 5 + 3: one block of 3 batches, the fourth full batch, the remainder.
    assert per_epoch == 3
    elements = list(ds.take(2 * per_epoch))
    assert [tuple(e[0].shape) for e in elements[:3]] == [(3, 5, 3), (1, 5, 3), (1, 3, 3)]
    epochs = []
    for epoch in (elements[:3], elements[3:]):
        xs = np.concatenate([e[0].numpy().reshape(-1, 3) for e in epoch])
        ys = np.concatenate([e[1].numpy().reshape(-1, 1) for e in epoch])
        np.testing.assert_array_equal(np.sort(xs[:, 0]), np.arange(23))  # each row once
        np.testing.assert_array_equal(ys[:, 0], -xs[:, 0])
        epochs.append(xs[:, 0])
    assert not np.array_equal(*epochs)  # a new permutation every epoch
    ordered, n = input_pipeline.block_dataset(x, batch_size=4, block_steps=16, shuffle=False)
    blocks = list(ordered.take(n))
    assert n == 2 and [tuple(b.shape) for b in blocks] == [(5, 4, 3), (1, 3, 3)]
    np.testing.assert_array_equal(np.concatenate([b.numpy().reshape(-1, 3) for b in blocks]), x)
    with pytest.raises(ValueError, match="block_steps"):
        input_pipeline.block_dataset(x, block_steps=0)


def test_fused_blocks_train_exactly_like_one_xla_step_per_batch():
    """With XLA, fit on arrays runs blocks of steps in one XLA while-loop: the same
    steps, batches and sampling seeds as Keras' one call per step, so the same weights."""
    x = tfvi.data.binarize(tfvi.data.load_digits()["train_probs"][:230], 0)
    fused, per_step = _model(jit=True), _model(jit=True, steps_per_execution=1)
    calls = []

    class Calls(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            calls.append(batch)

    fused.fit(x, batch_size=50, epochs=2, shuffle=False, verbose=0, callbacks=[Calls()])
    per_step.fit(x, batch_size=50, epochs=2, shuffle=False, verbose=0)
    # 230 = 4 x 50 + 30: per epoch one block of 4 steps and one of the partial batch.
    assert calls == [0, 1, 0, 1]
    assert int(fused.optimizer.iterations) == int(per_step.optimizer.iterations) == 10
    for a, b in zip(fused.weights, per_step.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    history = fused.fit(x, batch_size=50, epochs=1, verbose=0)  # shuffled: still trains
    assert np.isfinite(history.history["loss"][0]) and int(fused.optimizer.iterations) == 15


def test_an_endless_stream_of_equal_batches_is_fused_into_blocks_of_the_same_steps():
    """`tfvi-train`'s path: an endless dataset of equal batches with steps_per_epoch
    runs as blocks of consecutive batches (a divisor of steps_per_epoch, so epochs keep
    their batches) in one XLA computation; the same steps and weights as one XLA step
    per batch."""
    x = tfvi.data.binarize(tfvi.data.load_digits()["train_probs"][:300], 0)
    stream = tf.data.Dataset.from_tensor_slices(x).batch(20, drop_remainder=True).repeat()
    assert input_pipeline.endless_batches(stream)
    assert not input_pipeline.endless_batches(stream.take(40))  # finite
    assert not input_pipeline.endless_batches(
        tf.data.Dataset.from_tensor_slices(x).batch(20).repeat())  # batch size unknown
    fused, per_step = _model(jit=True), _model(jit=True, steps_per_execution=1)
    calls = []

    class Calls(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            calls.append(batch)

    fused.fit(stream, steps_per_epoch=15, epochs=2, verbose=0, callbacks=[Calls()])
    per_step.fit(stream, steps_per_epoch=15, epochs=2, verbose=0)
    assert calls == [0, 0]  # one block of 15 steps per epoch
    assert int(fused.optimizer.iterations) == int(per_step.optimizer.iterations) == 30
    for a, b in zip(fused.weights, per_step.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    fused.fit(stream, steps_per_epoch=20, epochs=1, verbose=0, callbacks=[Calls()])
    assert calls[2:] == [0, 1] and int(fused.optimizer.iterations) == 50  # 2 blocks of 10
