"""tfvi: variational inference for latent-variable models with Keras 3 and TFP.

Layers return TFP distributions (`tfvi.layers`, `tfvi.priors`), bounds are pure
functions of log-weights (`tfvi.bounds`), models train with `fit` (`tfvi.models`) and
`tfvi.evaluation` scores them. Importing `tfvi` registers every layer and model for
`.keras` loading.
"""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfvi import bounds, distributions, layers, models, priors  # noqa: E402
from tfvi import data, evaluation  # noqa: E402
from tfvi import mcmc  # noqa: E402
from tfvi import prior_training, regularizers  # noqa: E402  (Xu et al.)

from tfvi.version import __version__  # noqa: E402

__all__ = ["__version__", "bounds", "data", "distributions", "evaluation", "layers", "models",
           "priors"]
__all__ += ["mcmc"]
from tfvi import estimators, training  # noqa: E402  (gradient estimators; callbacks, burn-in, workdirs)
from tfvi.training.workdir import load_workdir  # noqa: E402  (a tfvi-train workdir's model)

__all__ += ["load_workdir"]
from tfvi import networks  # noqa: E402  (the papers' networks; registers ResidualBlock)
