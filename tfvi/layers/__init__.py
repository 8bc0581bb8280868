"""Keras 3 layers whose `call()` returns a `tfd.Distribution`."""

from tfvi.layers.decoders import (
    BernoulliDecoder,
    CategoricalDecoder,
    GaussianDecoder,
    KnownLikelihood,
    LogitNormalDecoder,
)
from tfvi.layers.encoders import GaussianEncoder, MixtureEncoder
from tfvi.layers.mlp import MLP
from tfvi.layers.priors import MixtureOfGaussians, Prior, StandardNormal

__all__ = [
    "BernoulliDecoder",
    "CategoricalDecoder",
    "GaussianDecoder",
    "GaussianEncoder",
    "KnownLikelihood",
    "LogitNormalDecoder",
    "MLP",
    "MixtureEncoder",
    "MixtureOfGaussians",
    "Prior",
    "StandardNormal",
]
