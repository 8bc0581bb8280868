"""`--model=vae`: `tfvi.models.VAE` with any registered posterior, prior, likelihood,
and the burn-in and learned-prior features (`--burn_in_epochs`, `--kl_warmup_epochs`,
`--prior_training`)."""

from tfvi import bounds, models
from tfvi.launch.components import build_parts, check_mixture_objective
from tfvi.launch.registry import Flag, ModelFamily, register_model
from tfvi.launch.report import REPRESENTATION_METRICS, evaluate_representation
from tfvi.validation import STRATIFIED_OBJECTIVES


def build_vae(config, prepared):
    encoder, decoder, prior = build_parts(config, prepared)
    return models.VAE(encoder, decoder, prior, objective=config.objective,
                      samples=config.samples, beta=config.beta, stl=config.stl,
                      input_dim=prepared.input_dim, seed=config.seed,
                      qz_regularizer=config.qz_regularizer, name="vae")


def check_vae_flags(config):
    check_mixture_objective(config, STRATIFIED_OBJECTIVES)


register_model(ModelFamily(
    name="vae", build=build_vae, objectives=tuple(bounds.OBJECTIVES),
    help="VAE trained with ELBO / IWAE / SELBO / SIWAE (tfvi.models.VAE)",
    flags=(Flag("qz_regularizer", "float", 0.0, "Weight of Xu et al.'s (B.3) penalty "
                "mean_k Mean[z_k]^2 + (Var[z_k] - 1)^2 on the aggregate posterior (0: off; "
                "Xu et al. uses 1 with Real NVP priors).", minimum=0),),
    features=("burn_in", "learned_priors"),
    check_flags=check_vae_flags,
    evaluate=evaluate_representation, summary_metrics=REPRESENTATION_METRICS,
    defaults={"objective": "siwae"}))
