"""`keras.Model` subclasses, one custom `train_step` per model family."""

from tfvi.models.vae import VAE

__all__ = ["VAE"]
