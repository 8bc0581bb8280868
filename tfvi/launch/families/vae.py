"""`--model=vae`: `tfvi.models.VAE` with any registered posterior, prior, likelihood."""

from tfvi import bounds, models
from tfvi.launch.registry import LIKELIHOODS, POSTERIORS, PRIORS, ModelFamily, register_model


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
                      input_dim=prepared.input_dim, seed=flags.seed, name="vae")


def check_vae_flags(flags):
    if flags.posterior == "mixture" and flags.components > 1 and \
            flags.objective in ("elbo", "iwae"):
        raise ValueError(
            f"--objective={flags.objective} is not supported with a {flags.components}-"
            "component mixture posterior; accepted values: selbo, siwae (or --components=1).")


register_model(ModelFamily(
    name="vae", build=build_vae, objectives=tuple(bounds.OBJECTIVES),
    help="VAE trained with ELBO / IWAE / SELBO / SIWAE (tfvi.models.VAE)",
    check_flags=check_vae_flags))
