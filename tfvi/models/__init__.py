"""`keras.Model` subclasses, one custom `train_step` per model family."""

from tfvi.models.vae import VAE
from tfvi.models import baselines
from tfvi.models.vib import VIBClassifier

__all__ = ["VAE"]
__all__ += ["VIBClassifier", "baselines"]
