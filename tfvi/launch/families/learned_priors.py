"""Learned priors and flow posteriors for the launcher (Xu et al.; VampPrior for Livne et al.).

Registers `--prior=vamp|realnvp|maf` and `--posterior=realnvp`, the KL warm-up
(`--kl_warmup_epochs`, `tfvi.training.KLWarmup`) and the prior-training strategy
(`--prior_training=joint|posthoc|iterative`, `tfvi.prior_training`) for `--model=vae`.

    tfvi-train --model=vae --prior=realnvp --prior_depth=10 --prior_hidden=256 \
      --kl_warmup_epochs=5 --prior_training=iterative --epochs=32

`--prior_training=posthoc|iterative` is run inside the launcher's single `fit` by
`PriorTrainingPhases`, a callback that switches, per epoch, which weights train
(encoder+decoder or the prior; `tfvi.prior_training.set_trainable`) and retraces
the train function (`make_train_function(force=True)`: Keras 3 does not retrace when
`trainable` changes). It keeps one optimizer and the `--learning_rate` throughout
(unlike `tfvi.prior_training.train_with_prior`, which recompiles per phase with seed
004's learning-rate drops); the phase of an epoch depends only on its index, so a
resumed run continues in the right phase. Epoch split for `--epochs=E`:

* posthoc: the first E - E//2 epochs train the VAE (prior held at N(0, I)), the last
  E//2 only the prior;
* iterative (Algorithm B.1 with I = 4): with M = max(1, E // 16), phase 1a (VAE)
  gets E - 8M epochs, 1b (prior) 2M, then three rounds of M VAE + M prior epochs.
"""

from absl import flags as absl_flags

from tfvi.launch.registry import register_posterior, register_prior

absl_flags.DEFINE_integer("prior_depth", 10, "--prior=realnvp|maf: flow depth K "
                          "(coupling blocks / MAF layers; Xu et al.: up to 50).")
absl_flags.DEFINE_integer("prior_hidden", 256, "--prior=realnvp|maf: hidden width of the "
                          "coupling networks (realnvp: one layer; maf: two MADE layers).")
absl_flags.DEFINE_integer("pseudo_inputs", 500, "--prior=vamp: number M of pseudo-inputs "
                          "(initialised from training inputs).")
absl_flags.DEFINE_integer("posterior_depth", 10, "--posterior=realnvp: flow depth K on top "
                          "of the Gaussian base encoder.")
absl_flags.DEFINE_integer("posterior_flow_hidden", 256, "--posterior=realnvp: hidden width "
                          "of the coupling networks.")
absl_flags.DEFINE_integer("kl_warmup_epochs", 0, "KL warm-up (Xu et al. B.3): beta rises "
                          "linearly from 0.01 to --beta over this many epochs (0: off).")
absl_flags.DEFINE_float("qz_regularizer", 0.0, "Weight of Xu et al.'s (B.3) penalty "
                        "mean_k Mean[z_k]^2 + (Var[z_k] - 1)^2 on the aggregate posterior "
                        "(0: off; Xu et al. uses 1 with Real NVP priors).")
absl_flags.DEFINE_enum("prior_training", "joint", ["joint", "posthoc", "iterative"],
                       "How a learned prior trains (Xu et al., Alg. B.1): joint, posthoc "
                       "(VAE with N(0, I), then the prior), iterative (alternating).")

FLOW_PRIORS = ("realnvp", "maf")
ITERATIONS = 4


def _hidden(flags):
    from tfvi.launch.components import hidden_sizes

    return hidden_sizes(flags.encoder_hidden)


# ---------------------------------------------------------------------- priors
@register_prior("vamp")
def vamp_prior(flags, latent_dim, encoder, prepared):
    from tfvi import priors

    x_train = prepared.eval_splits["train"][0]
    return priors.VampPrior(encoder, num_pseudo_inputs=flags.pseudo_inputs,
                            init_from_data=x_train, seed=flags.seed, name="prior")


@register_prior("realnvp")
def realnvp_prior(flags, latent_dim, encoder, prepared):
    from tfvi import priors

    return priors.RealNVPPrior(latent_dim, depth=flags.prior_depth,
                               hidden=(flags.prior_hidden,), seed=flags.seed, name="prior")


@register_prior("maf")
def maf_prior(flags, latent_dim, encoder, prepared):
    from tfvi import priors

    return priors.MAFPrior(latent_dim, depth=flags.prior_depth,
                           hidden=(flags.prior_hidden, flags.prior_hidden), name="prior")


# ------------------------------------------------------------------ posteriors
@register_posterior("realnvp")
def realnvp_posterior(flags, latent_dim, input_dim):
    from tfvi import layers

    return layers.RealNVPPosterior(latent_dim, depth=flags.posterior_depth,
                                   hidden=_hidden(flags),
                                   flow_hidden=(flags.posterior_flow_hidden,),
                                   activation=flags.activation,
                                   covariance=flags.covariance, seed=flags.seed,
                                   name="encoder")


# ------------------------------------------------------------- flag checks
def check_learned_prior_flags(flags):
    """Raises ValueError naming the flag for combinations that cannot run."""
    for name in ("prior_depth", "prior_hidden", "pseudo_inputs", "posterior_depth",
                 "posterior_flow_hidden"):
        if getattr(flags, name) < 1:
            raise ValueError(f"--{name}={getattr(flags, name)} is not accepted; accepted "
                             "values: integers >= 1.")
    if flags.kl_warmup_epochs < 0:
        raise ValueError(f"--kl_warmup_epochs={flags.kl_warmup_epochs} is not accepted; "
                         "accepted values: integers >= 0.")
    if not flags.qz_regularizer >= 0:
        raise ValueError(f"--qz_regularizer={flags.qz_regularizer} is not accepted; "
                         "accepted values: floats >= 0.")
    if flags.posterior == "realnvp" and flags.latent_dim < 2:
        raise ValueError(f"--posterior=realnvp needs --latent_dim >= 2; got "
                         f"{flags.latent_dim}.")
    if flags.prior == "realnvp" and flags.latent_dim < 2:
        raise ValueError(f"--prior=realnvp needs --latent_dim >= 2; got {flags.latent_dim}.")
    if flags.prior_training != "joint":
        if flags.prior not in FLOW_PRIORS:
            raise ValueError(
                f"--prior_training={flags.prior_training} first trains the VAE with "
                "p(z) = N(0, I), held by a flow prior at its initialisation; accepted "
                f"--prior values with it: {', '.join(FLOW_PRIORS)} (got --prior="
                f"{flags.prior}).")
        if flags.strategy != "default":
            raise ValueError(f"--prior_training={flags.prior_training} is not supported "
                             f"with --strategy={flags.strategy}; accepted: default.")
        minimum = 2 if flags.prior_training == "posthoc" else 9
        if flags.epochs < minimum:
            raise ValueError(f"--prior_training={flags.prior_training} needs --epochs >= "
                             f"{minimum} (one phase per epoch at least); got "
                             f"{flags.epochs}.")


# ----------------------------------------------------------- prior training
def phase_schedule(strategy, epochs, iterations=ITERATIONS):
    """[(name, num_epochs, train_encoder_decoder, train_prior)] covering `epochs`."""
    if strategy == "joint":
        return [("joint", epochs, True, True)]
    if strategy == "posthoc":
        return [("vae", epochs - epochs // 2, True, False),
                ("prior", epochs // 2, False, True)]
    if strategy != "iterative":
        raise ValueError(f"--prior_training={strategy!r} is not accepted; accepted values: "
                         "joint, posthoc, iterative.")
    m = max(1, epochs // 16)
    phases = [("1a_vae", epochs - 2 * iterations * m, True, False),
              ("1b_prior", 2 * m, False, True)]
    for i in range(2, iterations + 1):
        phases += [(f"{i}a_vae", m, True, False), (f"{i}b_prior", m, False, True)]
    return phases


def phase_of_epoch(phases, epoch):
    start = 0
    for phase in phases:
        start += phase[1]
        if epoch < start:
            return phase
    return phases[-1]


def _keras_callback_base():
    import keras

    return keras.callbacks.Callback


class PriorTrainingPhases(_keras_callback_base()):
    """Per-epoch phases of `--prior_training` within one `fit` (see module docstring).

    Logs `prior_phase` (1 for prior-only epochs, 0 for encoder/decoder epochs).
    """

    def __init__(self, strategy, epochs, verbose=0):
        super().__init__()
        self.phases = phase_schedule(strategy, epochs)
        self.verbose = verbose
        self._current = None

    def on_epoch_begin(self, epoch, logs=None):
        from tfvi.prior_training import set_trainable

        name, _, encoder_decoder, prior = phase_of_epoch(self.phases, epoch)
        if (encoder_decoder, prior) != self._current:
            set_trainable(self.model, encoder_decoder=encoder_decoder, prior=prior)
            # Keras 3 caches the traced step with the old trainable set.
            self.model.make_train_function(force=True)
            self._current = (encoder_decoder, prior)
            if self.verbose:
                print(f"prior training: phase {name} from epoch {epoch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["prior_phase"] = float(not self._current[0])

    def on_train_end(self, logs=None):
        from tfvi.prior_training import set_trainable

        set_trainable(self.model, True, True)
        self.model.make_train_function(force=True)
        self._current = None


def learned_prior_callbacks(model, prepared, flags):
    """KL warm-up and prior-training phases for a VAE-like model (`beta`, `prior`)."""
    cbs = []
    if flags.kl_warmup_epochs:
        from tfvi.training.warmup import KLWarmup

        cbs.append(KLWarmup(flags.kl_warmup_epochs, start=min(0.01, flags.beta),
                            end=flags.beta))
    if flags.prior_training != "joint":
        cbs.append(PriorTrainingPhases(flags.prior_training, flags.epochs,
                                       verbose=int(flags.verbose > 0)))
    return cbs
