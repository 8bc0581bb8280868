"""Early stopping whose state is saved with each checkpoint, so that a resumed run stops
at the same epoch and ends with the same weights as an uninterrupted one.

Keras' `EarlyStopping` keeps the best value, the epochs waited and the best weights in
memory, and `fit` resets them. A run resumed from a checkpoint then (1) forgets the
best epoch before the interruption, (2) trains on after a run that had already
stopped, and (3), killed after training, is evaluated with the last epoch's weights
instead of the best. `ResumableEarlyStopping` hands its state to the
`CheckpointCallback` that saves it (`get_state`, plus the best weights when they are
not the checkpoint's own) and takes it back before training resumes (`set_state`).
"""

import keras

__all__ = ["ResumableEarlyStopping"]


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` with `restore_best_weights=True` whose state a
    checkpoint holds.

    Put it before the `CheckpointCallback(..., early_stopping=this)` in the callback
    list: at each epoch end it must have judged the epoch before the checkpoint is
    written. The best weights are put back by `restore_best(model)`, called after
    `fit` returns, not at the end of `fit`: a checkpoint written then must hold the
    last epoch's weights, which belong with its optimizer state.

    Args:
      patience: epochs without improvement of `monitor` before stopping.
      start_from_epoch: the first epoch (0-based) that may count as the best, e.g.
        `tfvi.training.objective_settled_epoch(callbacks)` after a warm-up.
      monitor: the logged value to minimise.
    """

    def __init__(self, patience, start_from_epoch=0, monitor="val_loss"):
        super().__init__(monitor=monitor, patience=patience, mode="min",
                         restore_best_weights=True, start_from_epoch=start_from_epoch)
        self._resumed = None

    @property
    def stopped(self):
        """Whether an epoch so far triggered the stop."""
        return self.stopped_epoch > 0

    def get_state(self, epochs_done):
        """The JSON state after `epochs_done` epochs. `best_is_current`: the best weights
        are the model's own (the best epoch is the last one), so need no copy."""
        return {"best": None if self.best is None else float(self.best),
                "best_epoch": int(self.best_epoch), "wait": int(self.wait),
                "stopped_epoch": int(self.stopped_epoch),
                "has_best_weights": self.best_weights is not None,
                "best_is_current": (self.best_weights is not None
                                    and self.best_epoch == epochs_done - 1)}

    def set_state(self, state, best_weights):
        """Takes back `get_state`'s dict and the best weights (a `get_weights()` list)."""
        if state.get("has_best_weights") and best_weights is None:
            raise ValueError("the early-stopping state has best weights; pass them.")
        self._resumed = (dict(state), best_weights)
        self._apply()

    def _apply(self):
        if self._resumed is None:
            return
        state, best_weights = self._resumed
        self.best = state["best"]
        self.best_epoch, self.wait = state["best_epoch"], state["wait"]
        self.stopped_epoch = state["stopped_epoch"]
        self.best_weights = best_weights

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)  # resets the state, which a resumed run keeps
        self._apply()
        self._resumed = None  # a later `fit` starts afresh, as Keras' does

    def on_train_end(self, logs=None):
        pass  # `restore_best`, once the last checkpoint is written

    def restore_best(self, model):
        """Sets `model`'s weights to the best epoch's (no-op before any was judged)."""
        if self.best_weights is not None:
            model.set_weights(self.best_weights)
