"""`--model=vae`: `tfvi.models.VAE` with any registered posterior, prior, likelihood."""

from tfvi import bounds, models
from tfvi.launch.families.burn_in_flags import burn_in_callbacks
from tfvi.launch.families.learned_priors import (
    check_learned_prior_flags,
    learned_prior_callbacks,
)
from tfvi.launch.registry import LIKELIHOODS, POSTERIORS, PRIORS, ModelFamily, register_model
from tfvi.launch.report import REPRESENTATION_METRICS, evaluate_representation


def build_parts(flags, prepared):
    """(encoder, decoder, prior) from the flags, for any encoder/decoder model."""
    encoder = POSTERIORS[flags.posterior](flags, flags.latent_dim, prepared.input_dim)
    decoder = LIKELIHOODS[prepared.likelihood](flags, prepared.target_dim, prepared)
    prior = PRIORS[flags.prior](flags, flags.latent_dim, encoder, prepared)
    return encoder, decoder, prior


def build_vae(flags, prepared):
    encoder, decoder, prior = build_parts(flags, prepared)
    return models.VAE(encoder, decoder, prior, objective=flags.objective,
                      samples=flags.samples, beta=flags.beta, stl=flags.stl,
                      input_dim=prepared.input_dim, seed=flags.seed,
                      qz_regularizer=flags.qz_regularizer, name="vae")


def check_vae_flags(flags):
    if flags.posterior == "mixture" and flags.components > 1 and \
            flags.objective in ("elbo", "iwae"):
        raise ValueError(
            f"--objective={flags.objective} is not supported with a {flags.components}-"
            "component mixture posterior; accepted values: selbo, siwae (or --components=1).")
    check_learned_prior_flags(flags)
    if flags.burn_in_epochs < 0:
        raise ValueError(f"--burn_in_epochs={flags.burn_in_epochs} is not accepted; "
                         "accepted values: integers >= 0.")


def vae_callbacks(model, prepared, flags):
    """Burn-in (Morningstar et al. B.3), then KL warm-up / prior-training phases (Xu et al.)."""
    return (burn_in_callbacks(model, prepared, flags)
            + learned_prior_callbacks(model, prepared, flags))


register_model(ModelFamily(
    name="vae", build=build_vae, objectives=tuple(bounds.OBJECTIVES),
    help="VAE trained with ELBO / IWAE / SELBO / SIWAE (tfvi.models.VAE)",
    check_flags=check_vae_flags, callbacks=vae_callbacks,
    evaluate=evaluate_representation, summary_metrics=REPRESENTATION_METRICS,
    defaults={"objective": "siwae"}))
