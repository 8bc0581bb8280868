"""`--model=aiwae`: `tfvi.models.AIWAE` (Ding & Freedman, Algorithm 1) with any registered
unimodal posterior, likelihood and prior.

    tfvi-train --model=aiwae --samples=5 --ais_temperatures=5 --ais_leapfrog_steps=5
"""

from absl import flags as absl_flags

from tfvi import bounds, models
from tfvi.launch.families.vae import build_parts
from tfvi.launch.registry import ModelFamily, register_model
from tfvi.launch.report import REPRESENTATION_METRICS, evaluate_representation

absl_flags.DEFINE_integer("ais_temperatures", 5, "AIWAE: T inverse temperatures evenly "
                          "spaced in [0, 1] (T - 1 HMC transitions per step).")
absl_flags.DEFINE_integer("ais_leapfrog_steps", 5, "AIWAE: leapfrog steps L per HMC "
                          "transition.")
absl_flags.DEFINE_float("ais_initial_step_size", 0.1, "AIWAE: initial HMC step size of "
                        "every temperature (adapted towards acceptance 0.6).")


def build_aiwae(flags, prepared):
    encoder, decoder, prior = build_parts(flags, prepared)
    return models.AIWAE(encoder, decoder, prior, samples=flags.samples,
                        temperatures=flags.ais_temperatures,
                        leapfrog_steps=flags.ais_leapfrog_steps,
                        initial_step_size=flags.ais_initial_step_size,
                        input_dim=prepared.input_dim, seed=flags.seed, name="aiwae")


def check_aiwae_flags(flags):
    if flags.posterior == "mixture" and flags.components > 1:
        raise ValueError(
            f"--model=aiwae needs a unimodal posterior; got --components={flags.components} "
            "(accepted: --components=1).")
    if flags.ais_temperatures < 2:
        raise ValueError(
            f"--ais_temperatures={flags.ais_temperatures}: accepted values are >= 2.")
    if flags.ais_leapfrog_steps < 1:
        raise ValueError(
            f"--ais_leapfrog_steps={flags.ais_leapfrog_steps}: accepted values are >= 1.")


register_model(ModelFamily(
    name="aiwae", build=build_aiwae, objectives=tuple(bounds.OBJECTIVES),
    help="AIWAE: decoder by AIS-weighted gradients, encoder by the ELBO "
         "(tfvi.models.AIWAE; --objective is ignored, IWAE-K is reported)",
    check_flags=check_aiwae_flags, evaluate=evaluate_representation,
    summary_metrics=REPRESENTATION_METRICS,
    # AIWAE anneals from a unimodal q(z|x) and reports IWAE-K.
    defaults={"objective": "iwae", "posterior": "gaussian", "components": 1}))
