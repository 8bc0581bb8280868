"""Keras 3 layers whose `call()` returns a `tfd.Distribution`."""

from tfvi.layers.decoders import (
    BernoulliDecoder,
    CategoricalDecoder,
    GaussianDecoder,
    KnownLikelihood,
    LogitNormalDecoder,
)
from tfvi.layers.encoders import GaussianEncoder, MixtureEncoder
from tfvi.layers.hierarchical import (
    ConditionalGaussian,
    HierarchicalEncoder,
    HierarchicalPrior,
    conv_hvae,
)
from tfvi.layers.mlp import MLP
from tfvi.layers.pixelcnn import PixelCNN, PixelCNNDecoder
from tfvi.layers.flow_posterior import RealNVPPosterior
from tfvi.layers.flows import (
    MADE,
    ActNorm,
    AffineCoupling,
    InvertibleDense,
    MAFFlow,
    MaskedDense,
    RealNVPFlow,
)
from tfvi.layers.priors import (
    MAFPrior,
    MixtureOfGaussians,
    Prior,
    RealNVPPrior,
    StandardNormal,
    VampPrior,
)

__all__ = [
    "BernoulliDecoder",
    "CategoricalDecoder",
    "GaussianDecoder",
    "GaussianEncoder",
    "KnownLikelihood",
    "LogitNormalDecoder",
    "ConditionalGaussian",
    "HierarchicalEncoder",
    "HierarchicalPrior",
    "conv_hvae",
    "MLP",
    "PixelCNN",
    "PixelCNNDecoder",
    "MixtureEncoder",
    "MixtureOfGaussians",
    "Prior",
    "StandardNormal",
]
__all__ += ["ActNorm", "AffineCoupling", "InvertibleDense", "MADE", "MAFFlow", "MAFPrior",
            "MaskedDense", "RealNVPFlow", "RealNVPPosterior", "RealNVPPrior", "VampPrior"]
