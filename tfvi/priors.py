"""Priors r(z) under their short name: `tfvi.priors.X` is `tfvi.layers.priors.X` (one
definition, in `tfvi/layers/priors.py`)."""

from tfvi.layers.priors import *  # noqa: F401,F403
from tfvi.layers.priors import __all__  # noqa: F401
