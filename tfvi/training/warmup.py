"""Warm-ups: callbacks that raise a model's non-trainable weight variable between epochs.

* `KLWarmup`: the KL annealing of Xu et al., "On the Necessity and Effectiveness of
  Learning the Prior of Variational Auto-Encoder", B.3 (after Bowman et al. 2016): the
  weight beta on `log p(z) - log q(z|x)` in the log-weights (`tfvi.bounds.log_weights`)
  rises linearly from `start` (0.01) to `end` (1) over the first `epochs` epochs and
  stays at `end`. It assigns `model.beta`.
* `DecoderWeightWarmup`: the decoder-weight warm-up of Livne, Swersky & Fleet, "MIM:
  Mutual Information Machine", section 5. It assigns `model.decoder_weight`.

Both assign a `keras.Variable`, so the compiled step is not retraced. While either
warms up, the loss (and `val_loss`) is not yet the objective being trained for: a
smaller beta or decoder weight lowers it. `objective_settled_epoch` says from which
epoch on losses can be compared, e.g. by early stopping (`start_from_epoch`).
"""

import keras

__all__ = ["DecoderWeightWarmup", "KLWarmup", "objective_settled_epoch", "warmup_beta"]

# MIM's decoder weight once warmed up: the 1/2 of Livne et al.'s symmetric mixture.
FULL_DECODER_WEIGHT = 0.5


def warmup_beta(epoch, epochs, start=0.01, end=1.0):
    """beta at the start of `epoch` (0-based): start + (end - start) * min(1, epoch/epochs)."""
    if epochs <= 0:
        return float(end)
    return float(start + (end - start) * min(1.0, epoch / epochs))


def objective_settled_epoch(callbacks):
    """The first epoch (0-based) from which the loss is the final objective and the
    final set of weights trains: the largest `settled_epoch` among `callbacks` (0 if
    none declares one). `KLWarmup` and `DecoderWeightWarmup` declare the end of their
    warm-up; the launcher's prior-training phases the start of the last phase.

    Early stopping that compares a warm-up epoch's validation loss with later ones
    favours the warm-up (its loss is lowered by beta < 1) and can restore a model that
    was never trained on the full bound, or stop before a later phase has run; pass
    this as its `start_from_epoch`.
    """
    return max((int(getattr(cb, "settled_epoch", 0)) for cb in callbacks), default=0)


class KLWarmup(keras.callbacks.Callback):
    """Linear KL warm-up: beta from `start` to `end` over `epochs` epochs (Xu et al. B.3).

    With `per_step=True` beta moves every batch (needs `steps_per_epoch`), a smoother
    ramp for runs of few epochs. The current beta is logged as `beta`.

    Args:
      epochs: warm-up length N in epochs (0 disables the warm-up: beta = `end`).
      start: beta at epoch 0 (Xu et al.: 0.01).
      end: final beta (1 for the bound itself).
      per_step: update every batch instead of every epoch.
      steps_per_epoch: batches per epoch, for `per_step`.
    """

    def __init__(self, epochs, start=0.01, end=1.0, per_step=False, steps_per_epoch=None):
        super().__init__()
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"`epochs` must be a non-negative integer; got {epochs!r}.")
        if not 0 <= start <= end:
            raise ValueError(f"Need 0 <= `start` <= `end`; got start={start!r}, end={end!r}.")
        if per_step and not steps_per_epoch:
            raise ValueError("`per_step=True` needs `steps_per_epoch` (batches per epoch).")
        self.epochs, self.start, self.end = epochs, float(start), float(end)
        self.per_step, self.steps_per_epoch = per_step, steps_per_epoch
        self._epoch = 0

    @property
    def settled_epoch(self):
        """The first epoch at `end` (see `objective_settled_epoch`)."""
        return self.epochs

    def _assign(self, progress):
        if not hasattr(self.model, "beta"):
            raise ValueError("KLWarmup needs a model with a `beta` variable (tfvi.models.VAE).")
        self.model.beta.assign(warmup_beta(progress, self.epochs, self.start, self.end))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._assign(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if self.per_step:
            self._assign(self._epoch + batch / self.steps_per_epoch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["beta"] = float(self.model.beta.numpy())


class DecoderWeightWarmup(keras.callbacks.Callback):
    """Raises `model.decoder_weight` linearly from 0 to `final_weight` (1/2) over
    `warmup_epochs` epochs (Livne et al., section 5), epoch `e` getting
    `final_weight * min(1, e / warmup_epochs)`."""

    def __init__(self, warmup_epochs, final_weight=FULL_DECODER_WEIGHT):
        super().__init__()
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"`warmup_epochs` must be a non-negative integer; got {warmup_epochs!r}.")
        if not 0.0 <= final_weight <= 1.0:
            raise ValueError(f"`final_weight` must be in [0, 1]; got {final_weight!r}.")
        self.warmup_epochs = warmup_epochs
        self.final_weight = float(final_weight)

    @property
    def settled_epoch(self):
        """The first epoch at the full weight (see `objective_settled_epoch`)."""
        return self.warmup_epochs

    def weight(self, epoch):
        if self.warmup_epochs == 0:
            return self.final_weight
        return self.final_weight * min(1.0, epoch / self.warmup_epochs)

    def on_epoch_begin(self, epoch, logs=None):
        self.model.decoder_weight.assign(self.weight(epoch))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["decoder_weight"] = float(self.model.decoder_weight.numpy())
