"""Evaluation: log-likelihood estimates, exact log-evidence, diagnostics."""

from tfvi.evaluation.exact import exact_log_likelihood, linear_gaussian_log_marginal
from tfvi.evaluation.likelihood import iwae_log_likelihood

__all__ = ["exact_log_likelihood", "iwae_log_likelihood", "linear_gaussian_log_marginal"]
