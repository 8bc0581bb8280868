"""Evaluation: log-likelihood estimates, exact log-evidence, diagnostics."""

from tfvi.evaluation.active_units import (active_units, active_units_per_layer,
                                          posterior_mean_variance)
from tfvi.evaluation.calibration import (
    accuracy,
    expected_calibration_error,
    posterior_predictive,
)
from tfvi.evaluation.exact import (
    exact_log_likelihood,
    independent_bernoulli_log_likelihood,
    linear_gaussian_log_marginal,
)
from tfvi.evaluation.likelihood import chunked_iwae, iwae_log_likelihood
from tfvi.evaluation.over_seeds import mean_and_sd

__all__ = ["active_units", "active_units_per_layer", "posterior_mean_variance", "exact_log_likelihood", "independent_bernoulli_log_likelihood", "chunked_iwae", "iwae_log_likelihood", "linear_gaussian_log_marginal", "mean_and_sd"]
__all__ += ["accuracy", "expected_calibration_error",
            "posterior_predictive"]
from tfvi.evaluation.mutual_information import (encoder_mutual_information,
                                                 ksg_mutual_information)
from tfvi.evaluation.representation import (
    cluster_scores,
    knn_accuracy,
    latent_codes,
    reconstruction_rmse,
    reconstructions,
    representation_metrics,
)

__all__ += ["ksg_mutual_information", "encoder_mutual_information", "knn_accuracy", "reconstruction_rmse",
            "cluster_scores", "latent_codes", "reconstructions", "representation_metrics"]
from tfvi.evaluation.ais import AIS_PRESETS, ais_log_likelihood, bdmc

__all__ += ["AIS_PRESETS", "ais_log_likelihood", "bdmc"]
from tfvi.evaluation import gaps
from tfvi.evaluation.gaps import format_ais_gap_table, ais_gap_table

__all__ += ["gaps", "format_ais_gap_table", "ais_gap_table"]
from tfvi.evaluation import modes  # noqa: E402  (decoded component modes, Morningstar et al. C.3)
from tfvi.evaluation import diagnostics  # noqa: E402  (Xu et al. Table 7 row, Fig. 3)
from tfvi.evaluation.diagnostics import (  # noqa: E402
    posterior_stds,
    prior_diagnostics,
)

__all__ += ["diagnostics", "posterior_stds",
            "prior_diagnostics"]
