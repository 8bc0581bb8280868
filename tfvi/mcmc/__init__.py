"""MCMC: annealed importance sampling with TFP's Hamiltonian Monte Carlo."""

from tfvi.mcmc.ais import (
    SCHEDULES,
    AISResult,
    ais_chain,
    ais_log_marginal,
    annealing_schedule,
)

__all__ = ["AISResult", "SCHEDULES", "ais_chain", "ais_log_marginal", "annealing_schedule"]
