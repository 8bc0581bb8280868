"""Priors r(z), also importable as `tfvi.layers.X` (see `tfvi/layers/priors.py`)."""

from tfvi.layers.priors import MixtureOfGaussians, Prior, StandardNormal

__all__ = ["MixtureOfGaussians", "Prior", "StandardNormal"]
