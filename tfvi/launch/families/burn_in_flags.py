"""`--burn_in_epochs` (Morningstar et al. B.3) for every model family with an encoder, decoder
and prior: the callback builder shared by `--model=vae` and `--model=vib`.

    tfvi-train --model=vae --burn_in_epochs=1
"""

from absl import flags as absl_flags

absl_flags.DEFINE_integer("burn_in_epochs", 0, "Epochs of burn-in against the prior "
                          "(Morningstar et al. B.3) before training (any --model with an encoder, "
                          "decoder and prior; 0: off).")


def burn_in_callbacks(model, prepared, flags):
    """[`tfvi.burn_in.BurnIn`] when `--burn_in_epochs` > 0, else []. The burn-in runs
    once, when `fit` starts a fresh run (a resumed run has optimizer steps and skips
    it: its weights already went through burn-in)."""
    if flags.burn_in_epochs < 0:
        raise ValueError(f"--burn_in_epochs={flags.burn_in_epochs} is not accepted; "
                         "accepted values: integers >= 0.")
    if not flags.burn_in_epochs:
        return []
    from tfvi.burn_in import BurnIn

    class FreshRunBurnIn(BurnIn):
        def on_train_begin(self, logs=None):
            optimizer = getattr(self.model, "optimizer", None)
            if optimizer is not None and int(optimizer.iterations.numpy()) > 0:
                return
            super().on_train_begin(logs)

    x, y, _ = prepared.eval_splits["train"]
    return [FreshRunBurnIn(x, y, epochs=flags.burn_in_epochs, batch_size=flags.batch_size,
                           learning_rate=flags.learning_rate, seed=flags.seed,
                           verbose=int(flags.verbose > 0))]
