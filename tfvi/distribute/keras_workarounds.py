"""`model.fit` under MultiWorkerMirroredStrategy with Keras 3.15: two workarounds.

Both bugs reproduce with a plain `Sequential` model (upstream keras-team/keras#20585 and
tensorflow/tensorflow#72388); they are kept here, in one place:

1. `Trainer._maybe_symbolic_build` calls `strategy.reduce("MEAN", batch)` on a nested
   batch such as `(x, y)` and fails on the `PerReplica` leaves. We build the model and
   optimizer ourselves (tfvi models create every variable in `build()`) and skip it.
2. `reduce_per_replica` reduces every log with `axis=0`, which fails on scalars; the
   step's logs are returned with shape `[1]` (Keras then averages them over replicas and
   the History still shows scalars).

Every tfvi model's `train_step` divides its per-replica loss by `num_replicas_in_sync`
(the optimizer SUM-reduces gradients), so a step with a global batch of B on N replicas
computes the gradient of the mean loss over B examples.
"""

import keras
import tensorflow as tf

__all__ = ["apply_multi_worker_workarounds"]


def _rank1_logs(step):
    def wrapped(data):
        logs = step(data)
        return {k: tf.reshape(v, [1]) for k, v in logs.items()}

    return wrapped


def apply_multi_worker_workarounds(model: keras.Model,
                                   strategy: tf.distribute.Strategy | None) -> keras.Model:
    """Makes `model.fit`/`evaluate` work under MultiWorkerMirroredStrategy (Keras 3.15).

    Call after `compile()` inside `strategy.scope()`; the model must be built (tfvi
    models are, once `input_dim` is given or `build()` ran). Does nothing for other
    strategies. See the module docstring for the two upstream bugs.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return model
    if not model.built:
        raise ValueError("apply_multi_worker_workarounds needs a built model: pass "
                         "`input_dim` or call `model.build((None, input_dim))` first.")
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    # Bug 1: skip the symbolic build (everything is built above).
    model._maybe_symbolic_build = lambda *args, **kwargs: None
    # Bug 2: scalar logs cannot be reduced along axis 0.
    model.train_step = _rank1_logs(model.train_step)
    model.test_step = _rank1_logs(model.test_step)
    return model
