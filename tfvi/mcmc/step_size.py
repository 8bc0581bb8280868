"""The step-size rule shared by AIS (`tfvi.mcmc.ais`) and AIWAE (`tfvi.models.AIWAE`).

After each transition the log step size moves towards the target acceptance:

    log eps <- clip(log eps + rate * (mean acceptance - target), log eps_min, log eps_max)

a Robbins-Monro step on log eps whose fixed point is the target acceptance (the rule of
`tfp.mcmc.SimpleStepSizeAdaptation`, without its decay, as a pure function).
"""

import math

import tensorflow as tf

__all__ = ["adapt_log_step_size"]


def adapt_log_step_size(log_step_size, acceptance, target_accept_prob, rate, min_step,
                        max_step):
    """The adapted log step size (same shape as `log_step_size` and `acceptance`)."""
    log_step_size = log_step_size + rate * (acceptance - target_accept_prob)
    return tf.clip_by_value(log_step_size, math.log(min_step), math.log(max_step))
