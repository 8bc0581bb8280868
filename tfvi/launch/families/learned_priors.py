"""Learned priors and flow posteriors for the launcher (Xu et al.; VampPrior for Livne et al.).

Registers `--prior=vamp|realnvp|maf` and `--posterior=realnvp` (any family), and the
`learned_priors` feature (for the families that list it, `--model=vae`): the KL
warm-up (`--kl_warmup_epochs`, `tfvi.training.KLWarmup`) and the prior-training
strategy (`--prior_training=joint|posthoc|iterative`, `tfvi.prior_training`).

    tfvi-train --model=vae --prior=realnvp --prior_depth=10 --prior_hidden=256 \
      --kl_warmup_epochs=5 --prior_training=iterative --epochs=32

`--prior_training=posthoc|iterative` is run inside the launcher's single `fit` by
`PriorTrainingPhases`, a callback that switches, per epoch, which weights train
(encoder+decoder or the prior; `tfvi.prior_training.set_trainable`) and retraces
the train function (`make_train_function(force=True)`: Keras 3 does not retrace when
`trainable` changes). It keeps one optimizer and the `--learning_rate` throughout
(unlike `tfvi.prior_training.train_with_prior`, which recompiles per phase with Xu
et al.'s learning-rate drops); the phases are `tfvi.prior_training.phases` over
`--epochs` split by `tfvi.prior_training.split_epochs`, and the phase of an epoch
depends only on its index, so a resumed run continues in the right phase:

* posthoc: the first E - E//2 epochs train the VAE (prior held at N(0, I)), the last
  E//2 only the prior;
* iterative (Algorithm B.1 with I = 4): with M = max(1, E // 16), phase 1a (VAE)
  gets E - 8M epochs, 1b (prior) 2M, then three rounds of M VAE + M prior epochs.
"""

import keras

from tfvi import prior_training
from tfvi.launch.components import hidden_sizes
from tfvi.launch.registry import (
    Feature,
    Flag,
    register_feature,
    register_posterior,
    register_prior,
)

FLOW_PRIORS = ("realnvp", "maf")
ITERATIONS = 4


# ---------------------------------------------------------------------- priors
@register_prior("vamp")
def vamp_prior(config, latent_dim, encoder, prepared):
    from tfvi import priors

    x_train = prepared.eval_splits["train"][0]
    return priors.VampPrior(encoder, num_pseudo_inputs=config.pseudo_inputs,
                            init_from_data=x_train, seed=config.seed, name="prior")


@register_prior("realnvp")
def realnvp_prior(config, latent_dim, encoder, prepared):
    from tfvi import priors

    return priors.RealNVPPrior(latent_dim, depth=config.prior_depth,
                               hidden=(config.prior_hidden,), seed=config.seed, name="prior")


@register_prior("maf")
def maf_prior(config, latent_dim, encoder, prepared):
    from tfvi import priors

    return priors.MAFPrior(latent_dim, depth=config.prior_depth,
                           hidden=(config.prior_hidden, config.prior_hidden), name="prior")


# ------------------------------------------------------------------ posteriors
@register_posterior("realnvp")
def realnvp_posterior(config, latent_dim, input_dim):
    from tfvi import layers

    return layers.RealNVPPosterior(latent_dim, depth=config.posterior_depth,
                                   hidden=hidden_sizes(config.encoder_hidden),
                                   flow_hidden=(config.posterior_flow_hidden,),
                                   activation=config.activation,
                                   covariance=config.covariance, seed=config.seed,
                                   name="encoder")


# ------------------------------------------------------------- flag checks
def check_learned_prior_flags(config):
    """Raises ValueError naming the flag for combinations that cannot run."""
    for kind in ("posterior", "prior"):
        if getattr(config, kind) == "realnvp" and config.latent_dim < 2:
            raise ValueError(f"--{kind}=realnvp needs --latent_dim >= 2; got "
                             f"{config.latent_dim}.")
    if config.prior_training == "joint":
        return
    if config.prior not in FLOW_PRIORS:
        raise ValueError(
            f"--prior_training={config.prior_training} first trains the VAE with "
            "p(z) = N(0, I), held by a flow prior at its initialisation; accepted "
            f"--prior values with it: {', '.join(FLOW_PRIORS)} (got --prior={config.prior}).")
    if config.strategy != "default":
        raise ValueError(f"--prior_training={config.prior_training} is not supported "
                         f"with --strategy={config.strategy}; accepted: default.")
    minimum = prior_training.minimum_epochs(config.prior_training, ITERATIONS)
    if config.epochs < minimum:
        raise ValueError(f"--prior_training={config.prior_training} needs --epochs >= "
                         f"{minimum} (one epoch per phase at least); got {config.epochs}.")


# ----------------------------------------------------------- prior training
class PriorTrainingPhases(keras.callbacks.Callback):
    """Per-epoch phases of `--prior_training` within one `fit` (see module docstring).

    Logs `prior_phase` (1 for prior-only epochs, 0 for encoder/decoder epochs).
    """

    def __init__(self, strategy, epochs, verbose=0):
        super().__init__()
        self.phases = prior_training.phases(
            strategy, *prior_training.split_epochs(strategy, epochs, ITERATIONS),
            iterations=ITERATIONS)
        self.verbose = verbose
        self._current = None

    @property
    def settled_epoch(self):
        """The start of the last phase: early stopping judges only its epochs, so it
        cannot stop a run before its prior (or its encoder/decoder) phase has run
        (`tfvi.training.objective_settled_epoch`)."""
        return sum(phase.epochs for phase in self.phases[:-1])

    def on_epoch_begin(self, epoch, logs=None):
        phase = prior_training.phase_of_epoch(self.phases, epoch)
        if (phase.encoder_decoder, phase.prior) != self._current:
            prior_training.set_trainable(self.model, encoder_decoder=phase.encoder_decoder,
                                         prior=phase.prior)
            # Keras 3 caches the traced step with the old trainable set.
            self.model.make_train_function(force=True)
            self._current = (phase.encoder_decoder, phase.prior)
            if self.verbose:
                print(f"prior training: phase {phase.name} from epoch {epoch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["prior_phase"] = float(not self._current[0])

    def on_train_end(self, logs=None):
        prior_training.set_trainable(self.model, True, True)
        self.model.make_train_function(force=True)
        self._current = None


def learned_prior_callbacks(model, prepared, config):
    """KL warm-up and prior-training phases for a VAE-like model (`beta`, `prior`)."""
    cbs = []
    if config.kl_warmup_epochs:
        from tfvi.training.warmup import KLWarmup

        cbs.append(KLWarmup(config.kl_warmup_epochs, start=min(0.01, config.beta),
                            end=config.beta))
    if config.prior_training != "joint":
        cbs.append(PriorTrainingPhases(config.prior_training, config.epochs,
                                       verbose=int(config.verbose > 0)))
    return cbs


register_feature(Feature(
    name="learned_priors",
    flags=(
        Flag("prior_depth", "integer", 10, "--prior=realnvp|maf: flow depth K (coupling "
             "blocks / MAF layers; Xu et al.: up to 50).", minimum=1),
        Flag("prior_hidden", "integer", 256, "--prior=realnvp|maf: hidden width of the "
             "coupling networks (realnvp: one layer; maf: two MADE layers).", minimum=1),
        Flag("pseudo_inputs", "integer", 500, "--prior=vamp: number M of pseudo-inputs "
             "(initialised from training inputs).", minimum=1),
        Flag("posterior_depth", "integer", 10, "--posterior=realnvp: flow depth K on top "
             "of the Gaussian base encoder.", minimum=1),
        Flag("posterior_flow_hidden", "integer", 256, "--posterior=realnvp: hidden width "
             "of the coupling networks.", minimum=1),
        Flag("kl_warmup_epochs", "integer", 0, "KL warm-up (Xu et al. B.3): beta rises "
             "linearly from 0.01 to --beta over this many epochs (0: off).", minimum=0),
        Flag("prior_training", "enum", "joint", "How a learned prior trains (Xu et al., "
             "Alg. B.1): joint, posthoc (VAE with N(0, I), then the prior), iterative "
             "(alternating).", choices=prior_training.STRATEGIES),
    ),
    check_flags=check_learned_prior_flags, callbacks=learned_prior_callbacks))
