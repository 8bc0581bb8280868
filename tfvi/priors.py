"""Priors r(z), also importable as `tfvi.layers.X` (see `tfvi/layers/priors.py`)."""

from tfvi.layers.priors import (
    MAFPrior,
    MixtureOfGaussians,
    Prior,
    RealNVPPrior,
    StandardNormal,
    VampPrior,
)

__all__ = ["MAFPrior", "MixtureOfGaussians", "Prior", "RealNVPPrior", "StandardNormal",
           "VampPrior"]
