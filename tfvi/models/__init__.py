"""`keras.Model` subclasses, one custom `train_step` per model family, sharing the core
of `tfvi.models.core` (parts, log-weight terms, seeding, replica loss scaling)."""

from tfvi.models.core import LatentVariableModel, unpack_batch
from tfvi.models.vae import VAE
from tfvi.models import baselines
from tfvi.models.vib import VIBClassifier
from tfvi.models.mim import MIM, DecoderWeightWarmup, mim_callbacks

__all__ = ["LatentVariableModel", "unpack_batch"]
__all__ += ["VAE", "MIM", "DecoderWeightWarmup", "mim_callbacks"]
__all__ += ["VIBClassifier", "baselines"]
from tfvi.models.aiwae import AIWAE

__all__ += ["AIWAE"]
