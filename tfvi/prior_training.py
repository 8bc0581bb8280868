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

`phases` is the one schedule: `train_with_prior` runs it phase by phase, recompiling
with a fresh optimizer at each phase's learning rate (phases change the trainable set,
and Xu et al. changes the learning rate between phases); the launcher runs it inside
one `fit` (`--prior_training`, one optimizer, epochs split by `split_epochs`).
"""

import dataclasses
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfvi.layers.flows import ActNorm
from tfvi.layers.priors import MAFPrior, RealNVPPrior
from tfvi.types import ArrayLike
from tfvi.validation import check_choice, check_positive_int

__all__ = ["Phase", "STRATEGIES", "minimum_epochs", "phase_of_epoch", "phases",
           "prior_is_standard_normal", "set_trainable", "split_epochs", "train_with_prior"]

STRATEGIES = ("joint", "posthoc", "iterative")


@dataclasses.dataclass(frozen=True)
class Phase:
    """`epochs` epochs training the encoder+decoder and/or the prior at `learning_rate`."""

    name: str
    epochs: int
    encoder_decoder: bool
    prior: bool
    learning_rate: float


def phases(strategy: str, epochs: int, prior_epochs: int | None = None,
           iterations: int = 4, lr: float = 1e-3,
           prior_lr: float | None = None) -> list[Phase]:
    """The phases of a prior-training strategy (Xu et al., Algorithm B.1), in order.

    joint: `epochs` of everything at `lr`. posthoc: `epochs` of the VAE at `lr`, then
    `prior_epochs` (default `epochs`) of the prior at `prior_lr` (default `lr`).
    iterative: 1a `epochs` of the VAE at `lr`; 1b `2M` of the prior, M at `prior_lr`
    (default 1e-3) and M at a tenth of it; then I - 1 rounds of M VAE epochs at `lr/10`
    and M prior epochs at `prior_lr/10`, with M = `prior_epochs` (default
    `max(1, epochs // 4)`). Phases of zero epochs are left out.
    """
    check_choice("strategy", strategy, STRATEGIES)
    if strategy == "joint":
        out = [Phase("joint", epochs, True, True, lr)]
    elif strategy == "posthoc":
        out = [Phase("vae", epochs, True, False, lr),
               Phase("prior", epochs if prior_epochs is None else prior_epochs, False, True,
                     prior_lr or lr)]
    else:
        m = max(1, epochs // 4) if prior_epochs is None else prior_epochs
        low = (prior_lr or 1e-3) / 10
        out = [Phase("1a_vae", epochs, True, False, lr),
               Phase("1b_prior", m, False, True, prior_lr or 1e-3),
               Phase("1b_prior_low_lr", m, False, True, low)]
        for i in range(2, iterations + 1):
            out += [Phase(f"{i}a_vae", m, True, False, lr / 10),
                    Phase(f"{i}b_prior", m, False, True, low)]
    return [phase for phase in out if phase.epochs > 0]


def split_epochs(strategy: str, total: int, iterations: int = 4) -> tuple[int, int | None]:
    """`(epochs, prior_epochs)` for `phases` so the phases cover exactly `total` epochs:
    posthoc gives the VAE `total - total // 2` and the prior `total // 2`; iterative
    takes M = max(1, total // (4 I)) and gives phase 1a the remaining `total - 2 I M`."""
    if strategy == "joint":
        return total, None
    if strategy == "posthoc":
        return total - total // 2, total // 2
    m = max(1, total // (4 * iterations))
    return total - 2 * iterations * m, m


def minimum_epochs(strategy: str, iterations: int = 4) -> int:
    """The fewest total epochs for which `split_epochs` leaves no phase empty."""
    return {"joint": 1, "posthoc": 2}.get(strategy, 2 * iterations + 1)


def phase_of_epoch(schedule: Sequence[Phase], epoch: int) -> Phase:
    """The phase (of `phases`) that 0-based `epoch` falls in; the last one after the end."""
    end = 0
    for phase in schedule:
        end += phase.epochs
        if epoch < end:
            return phase
    return schedule[-1]


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
        of each later phase (phase 1b is 2M; default `max(1, epochs // 4)`). See
        `phases`.
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
    check_positive_int("epochs", epochs)
    check_positive_int("iterations", iterations)
    optimizer_fn = optimizer_fn or (lambda rate: keras.optimizers.Adam(rate))
    callbacks = list(callbacks or [])
    schedule = phases(strategy, epochs, prior_epochs, iterations, lr, prior_lr)
    if strategy != "joint" and not prior_is_standard_normal(model.prior):
        raise ValueError(
            f"`strategy={strategy!r}` first trains the VAE with p(z) = N(0, I), held by a "
            "flow prior at its initialisation (RealNVPPrior or MAFPrior, untrained and "
            f"without ActNorm initialisation); got {type(model.prior).__name__}.")
    history = []
    try:
        for phase in schedule:
            set_trainable(model, encoder_decoder=phase.encoder_decoder, prior=phase.prior)
            model.compile(optimizer=optimizer_fn(phase.learning_rate),
                          jit_compile=jit_compile)
            history.append((phase.name, model.fit(data, epochs=phase.epochs,
                                                  callbacks=callbacks, verbose=verbose,
                                                  **fit_kwargs)))
        return history
    finally:
        set_trainable(model, True, True)
