"""The `burn_in` feature: `--burn_in_epochs` (Morningstar et al. B.3) for the model
families with an encoder, decoder and prior that list it (`--model=vae`, `--model=vib`).

    tfvi-train --model=vae --burn_in_epochs=1
"""

from tfvi.launch.registry import Feature, Flag, register_feature


def burn_in_callbacks(model, prepared, config):
    """[`tfvi.training.BurnIn`] when `--burn_in_epochs` > 0, else []. The burn-in runs
    once, when `fit` starts a fresh run (a resumed run has optimizer steps and skips
    it: its weights already went through burn-in)."""
    if not config.burn_in_epochs:
        return []
    from tfvi.training.burn_in import BurnIn

    class FreshRunBurnIn(BurnIn):
        def on_train_begin(self, logs=None):
            optimizer = getattr(self.model, "optimizer", None)
            if optimizer is not None and int(optimizer.iterations.numpy()) > 0:
                return
            super().on_train_begin(logs)

    x, y, _ = prepared.eval_splits["train"]
    return [FreshRunBurnIn(x, y, epochs=config.burn_in_epochs, batch_size=config.batch_size,
                           learning_rate=config.learning_rate, seed=config.seed,
                           verbose=int(config.verbose > 0))]


register_feature(Feature(
    name="burn_in",
    flags=(Flag("burn_in_epochs", "integer", 0, "Epochs of burn-in against the prior "
                "(Morningstar et al. B.3) before training (the model families with an "
                "encoder, decoder and prior; 0: off).", minimum=0),),
    callbacks=burn_in_callbacks))
