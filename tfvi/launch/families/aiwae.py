"""`--model=aiwae`: `tfvi.models.AIWAE` (Ding & Freedman, Algorithm 1) with any registered
unimodal posterior, likelihood and prior.

    tfvi-train --model=aiwae --samples=5 --ais_temperatures=5 --ais_leapfrog_steps=5
"""

from tfvi import bounds, models
from tfvi.launch.components import build_parts
from tfvi.launch.registry import Flag, ModelFamily, register_model
from tfvi.launch.report import REPRESENTATION_METRICS, evaluate_representation


def build_aiwae(config, prepared):
    encoder, decoder, prior = build_parts(config, prepared)
    return models.AIWAE(encoder, decoder, prior, samples=config.samples,
                        temperatures=config.ais_temperatures,
                        leapfrog_steps=config.ais_leapfrog_steps,
                        initial_step_size=config.ais_initial_step_size,
                        input_dim=prepared.input_dim, seed=config.seed, name="aiwae")


def check_aiwae_flags(config):
    if config.posterior == "mixture" and config.components > 1:
        raise ValueError(
            f"--model=aiwae needs a unimodal posterior; got --components={config.components} "
            "(accepted: --components=1).")


register_model(ModelFamily(
    name="aiwae", build=build_aiwae, objectives=tuple(bounds.OBJECTIVES),
    help="AIWAE: decoder by AIS-weighted gradients, encoder by the ELBO "
         "(tfvi.models.AIWAE; --objective is ignored, IWAE-K is reported)",
    flags=(Flag("ais_temperatures", "integer", 5, "AIWAE: T inverse temperatures evenly "
                "spaced in [0, 1] (T - 1 HMC transitions per step).", minimum=2),
           Flag("ais_leapfrog_steps", "integer", 5, "AIWAE: leapfrog steps L per HMC "
                "transition.", minimum=1),
           Flag("ais_initial_step_size", "float", 0.1, "AIWAE: initial HMC step size of "
                "every temperature (adapted towards acceptance 0.6).")),
    check_flags=check_aiwae_flags, evaluate=evaluate_representation,
    summary_metrics=REPRESENTATION_METRICS,
    # AIWAE anneals from a unimodal q(z|x) and reports IWAE-K.
    defaults={"objective": "iwae", "posterior": "gaussian", "components": 1}))
