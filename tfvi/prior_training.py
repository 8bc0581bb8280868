"""How a learned prior is trained (Xu et al., section 3 and Appendix B.3, Algorithm B.1).

* ``joint`` (default, Xu et al. eq. 5): prior, encoder and decoder maximise the bound
  together: plain ``model.fit``.
* ``posthoc``: the VAE is trained with the prior held at N(0, I), then encoder and
  decoder are frozen and only the prior is trained (maximising E_x E_q[log p(z)], i.e.
  fitting the aggregate posterior q(z)).
* ``iterative`` (Algorithm B.1): 1a encoder/decoder with p(z) = N(0, I); 1b prior for
  2M epochs (lr 1e-3 for M, then 1e-4); then I-1 times: encoder/decoder M epochs, prior
  M epochs (lr 1e-4).

"Prior held at N(0, I)" uses the fact that `RealNVPPrior` and `MAFPrior` *are* N(0, I)
at initialisation (identity couplings and MADEs, rotations, identity ActNorm), so the
first phase freezes the prior instead of swapping it; other priors are refused for
``posthoc``/``iterative``. The prior of the returned model is the one scored by every
NLL (no N(0, I) scoring of a model sampled from a learned prior).

Each phase recompiles the model with a fresh optimizer (phases change the trainable
set, and Xu et al. changes the learning rate between phases).
"""

from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfvi.layers.flows import ActNorm
from tfvi.layers.priors import MAFPrior, RealNVPPrior
from tfvi.types import ArrayLike

__all__ = ["STRATEGIES", "prior_is_standard_normal", "set_trainable", "train_with_prior"]

STRATEGIES = ("joint", "posthoc", "iterative")


def set_trainable(model: keras.Model, encoder_decoder: bool = True,
                  prior: bool = True) -> None:
    """Freezes or unfreezes the encoder+decoder and the prior's *own* weights.

    A VampPrior shares the encoder: its pseudo-inputs follow `prior`, the encoder's
    weights follow `encoder_decoder`.
    """
    model.encoder.trainable = bool(encoder_decoder)
    model.decoder.trainable = bool(encoder_decoder)
    shared = getattr(model.prior, "encoder", None)
    if shared is None:
        model.prior.trainable = bool(prior)
    else:
        model.prior.pseudo_inputs.trainable = bool(prior)


def prior_is_standard_normal(prior: keras.layers.Layer, atol: float = 1e-5,
                             seed: int = 0) -> bool:
    """True if `prior` is (numerically) N(0, I): a flow prior at its initialisation."""
    if not isinstance(prior, (RealNVPPrior, MAFPrior)):
        return False
    if any(isinstance(b, ActNorm) and float(b.initialized.numpy()) > 0
           for b in getattr(prior.flow, "blocks", [])):
        return False
    z = tf.random.stateless_normal([64, prior.latent_dim], seed=[seed, 0]) * 2.0
    ref = -0.5 * tf.reduce_sum(z ** 2, -1) - 0.5 * prior.latent_dim * np.log(2 * np.pi)
    return bool(np.allclose(prior().log_prob(z), ref, atol=atol))


def _compile(model, lr, optimizer_fn, jit_compile):
    model.compile(optimizer=optimizer_fn(lr), jit_compile=jit_compile)


def train_with_prior(model: keras.Model, data: tf.data.Dataset | ArrayLike,
                     strategy: str = "joint", epochs: int = 100,
                     prior_epochs: int | None = None, iterations: int = 4, lr: float = 1e-3,
                     prior_lr: float | None = None,
                     callbacks: Sequence[keras.callbacks.Callback] | None = None,
                     optimizer_fn: Callable[[float], keras.optimizers.Optimizer] | None = None,
                     jit_compile: bool | None = None, verbose: int = 0,
                     **fit_kwargs: Any) -> list[tuple[str, keras.callbacks.History]]:
    """Trains `model` (a `tfvi.models.VAE`) with the given prior-training strategy.

    Args:
      model: the VAE (its prior is the learned one).
      data: what `model.fit` takes (a `tf.data.Dataset` or an array).
      strategy: "joint", "posthoc" or "iterative".
      epochs: joint: all epochs; posthoc: encoder/decoder epochs; iterative: the
        pre-training epochs of phase 1a.
      prior_epochs: posthoc: prior epochs (default `epochs`); iterative: M, the epochs
        of each later phase (phase 1b is 2M; default `max(1, epochs // 4)`).
      iterations: I of Algorithm B.1 (iterative only).
      lr: learning rate of the encoder/decoder (and joint) phases.
      prior_lr: learning rate of the prior phases (default: Xu et al.'s 1e-3 then 1e-4
        for iterative; `lr` for posthoc).
      callbacks: Keras callbacks for every phase (e.g. `tfvi.training.KLWarmup`).
      optimizer_fn: `lr -> optimizer` (default Adam).
      jit_compile: passed to `compile` (default: the model's default, XLA).

    Returns:
      list of `(phase_name, keras.callbacks.History)`.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {list(STRATEGIES)}; got {strategy!r}.")
    for name, value in (("epochs", epochs), ("iterations", iterations)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
    optimizer_fn = optimizer_fn or (lambda rate: keras.optimizers.Adam(rate))
    callbacks = list(callbacks or [])
    history = []

    def phase(name, n_epochs, rate, encoder_decoder, prior):
        set_trainable(model, encoder_decoder=encoder_decoder, prior=prior)
        _compile(model, rate, optimizer_fn, jit_compile)
        h = model.fit(data, epochs=n_epochs, callbacks=callbacks, verbose=verbose,
                      **fit_kwargs)
        history.append((name, h))

    if strategy == "joint":
        phase("joint", epochs, lr, True, True)
        return history
    if not prior_is_standard_normal(model.prior):
        raise ValueError(
            f"`strategy={strategy!r}` first trains the VAE with p(z) = N(0, I), held by a "
            "flow prior at its initialisation (RealNVPPrior or MAFPrior, untrained and "
            f"without ActNorm initialisation); got {type(model.prior).__name__}.")
    try:
        if strategy == "posthoc":
            phase("vae", epochs, lr, True, False)
            phase("prior", prior_epochs or epochs, prior_lr or lr, False, True)
            return history
        m = prior_epochs or max(1, epochs // 4)
        phase("1a_vae", epochs, lr, True, False)
        phase("1b_prior", m, prior_lr or 1e-3, False, True)
        phase("1b_prior_low_lr", m, (prior_lr or 1e-3) / 10, False, True)
        for i in range(2, iterations + 1):
            phase(f"{i}a_vae", m, lr / 10, True, False)
            phase(f"{i}b_prior", m, (prior_lr or 1e-3) / 10, False, True)
        return history
    finally:
        set_trainable(model, True, True)
