"""Burn-in against the prior (Morningstar et al., B.3), for any model with `encoder`, `decoder`
and `prior` (VAE, VIBClassifier, ...).

Before normal training, the decoder is fitted to prior samples and the encoder is
spread over the prior by minimising, with the prior held fixed,

    L = E_{x ~ data} E_{z ~ r(z)} [ -log p(x|z) - log q(z|x) ]         (B.3, step 4)

over the encoder and decoder variables: the first term makes p(x|z) for z ~ r the
per-pixel marginal of the data (the decoder "reflects the prior over the data set"),
the second is the cross-entropy H(r, q(.|x)), minimised by the q closest to r in
forward KL (for a Gaussian q and standard-normal r: mean 0, unit scale). B.3 runs
one epoch. Use `burn_in(model, data)` before `fit`, or the `BurnIn` callback.
"""

import keras
import numpy as np
import tensorflow as tf

from tfvi.models.core import unpack_batch

__all__ = ["burn_in", "burn_in_loss", "BurnIn"]


def burn_in_loss(model, x, y=None, samples=1, seed=None):
    """Per-example burn-in loss `[batch]`: E_{z~r}[-log p(y|z) - log q(z|x)] with
    `samples` prior draws per example (the prior's gradient is stopped)."""
    y = x if y is None else y
    batch = tf.shape(x)[0]
    z = tf.stop_gradient(model.prior().sample([samples, batch], seed=seed))  # [S, B, d]
    log_lik = model.decoder(z).log_prob(model.decoder.prepare_targets(y))
    log_q = model.encoder(x).log_prob(z)
    return -tf.reduce_mean(log_lik + log_q, axis=0)


def _as_dataset(data, y, batch_size, seed):
    if isinstance(data, tf.data.Dataset):
        return data
    x = np.asarray(data, np.float32)
    ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, np.asarray(y)))
    return ds.shuffle(len(x), seed=seed).batch(batch_size)


def burn_in(model, data, y=None, epochs=1, batch_size=100, learning_rate=1e-3,
            samples=1, seed=0, verbose=1):
    """Runs the B.3 burn-in on `model`'s encoder and decoder; the prior is unchanged.

    Args:
      model: a tfvi model with `encoder`, `decoder` and `prior` (built).
      data: `[N, input_dim]` array (with `y` targets, or `x` itself), or a
        `tf.data.Dataset` of `x` or `(x, y)` batches.
      epochs: passes over the data (B.3: one).
      batch_size: for array data.
      learning_rate: of the burn-in's own Adam optimizer (the model's optimizer and
        its state are not touched).
      samples: prior samples per example.
      seed: sampling and shuffling seed.
      verbose: 1 shows a progress bar per epoch.

    Returns:
      list of the mean burn-in loss of each epoch.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"`epochs` must be a non-negative integer; got {epochs!r}.")
    for name in ("encoder", "decoder", "prior"):
        if not hasattr(model, name):
            raise ValueError(f"`model` must have an `{name}` for burn-in; got {model!r}.")
    if not model.built:
        raise ValueError("Build the model first (pass `input_dim` or call `build`).")
    variables = model.encoder.trainable_variables + model.decoder.trainable_variables
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(variables)
    dataset = _as_dataset(data, y, batch_size, seed)

    @tf.function
    def step(x, y, s):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(burn_in_loss(model, x, y, samples, seed=s))
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    steps = int(dataset.cardinality())
    steps = steps if steps >= 0 else None  # unknown/infinite: the bar counts up
    history = []
    for epoch in range(epochs):
        bar = (keras.utils.Progbar(steps, stateful_metrics=["burn_in_loss"])
               if verbose else None)
        total, count = 0.0, 0
        for b, batch in enumerate(dataset):
            x, t = unpack_batch(batch)
            loss = float(step(tf.cast(x, tf.float32), t,
                              tf.constant([seed, epoch * 1_000_003 + b], tf.int32)))
            total, count = total + loss, count + 1
            if bar is not None:
                bar.add(1, values=[("burn_in_loss", loss)])
        history.append(total / max(count, 1))
        if bar is not None and steps is None:
            bar.update(count, finalize=True)  # ends the bar's line
        if verbose:
            print(f"burn-in epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f}")
    return history


class BurnIn(keras.callbacks.Callback):
    """Runs `burn_in(model, data, **kwargs)` when `fit` starts (once)."""

    def __init__(self, data, y=None, epochs=1, **kwargs):
        super().__init__()
        self.data, self.y, self.epochs, self.kwargs = data, y, epochs, kwargs
        self.history = None

    def on_train_begin(self, logs=None):
        if self.history is None and self.epochs:
            self.history = burn_in(self.model, self.data, self.y, epochs=self.epochs,
                                   **self.kwargs)
