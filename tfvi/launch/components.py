"""Built-in launcher components: posteriors, priors, likelihoods, strategies and the
learning-rate schedules, registered under their flag values (see `registry`)."""

import math

import keras
import numpy as np
import tensorflow as tf

from tfvi import layers, networks, priors
from tfvi.data.synthetic import abs_toy_likelihood
from tfvi.launch import flags as tfvi_flags
from tfvi.launch.registry import (
    register_likelihood,
    register_posterior,
    register_prior,
    register_strategy,
)


def hidden_sizes(values):
    return tuple(int(v) for v in values if str(v).strip())


def _architecture(flags):
    return getattr(flags, "architecture", "mlp")


def encoder_network(flags, latent_dim, input_dim):
    """`--architecture`'s encoder network for image inputs (`input_dim` a shape); None
    (the MLP of --encoder_hidden) for flat inputs such as the single-column view."""
    if not isinstance(input_dim, tuple):
        return None
    return networks.encoder_network(_architecture(flags), latent_dim)


def decoder_network(flags, target_dim):
    """`--architecture`'s decoder network for image targets; None for flat ones."""
    if not isinstance(target_dim, tuple):
        return None
    return networks.decoder_network(_architecture(flags), target_dim)


# ------------------------------------------------------------------ posteriors
@register_posterior("gaussian")
def gaussian_posterior(flags, latent_dim, input_dim):
    return layers.GaussianEncoder(latent_dim, hidden=hidden_sizes(flags.encoder_hidden),
                                  activation=flags.activation, covariance=flags.covariance,
                                  network=encoder_network(flags, latent_dim, input_dim),
                                  name="encoder")


@register_posterior("mixture")
def mixture_posterior(flags, latent_dim, input_dim):
    return layers.MixtureEncoder(latent_dim, components=flags.components,
                                 hidden=hidden_sizes(flags.encoder_hidden),
                                 activation=flags.activation, covariance=flags.covariance,
                                 network=encoder_network(flags, latent_dim, input_dim),
                                 name="encoder")


# ---------------------------------------------------------------------- priors
@register_prior("normal")
def normal_prior(flags, latent_dim, encoder, prepared):
    return priors.StandardNormal(latent_dim, name="prior")


@register_prior("mog")
def mog_prior(flags, latent_dim, encoder, prepared):
    return priors.MixtureOfGaussians(latent_dim, components=flags.prior_components,
                                     covariance=flags.covariance, seed=flags.seed,
                                     name="prior")


# ----------------------------------------------------------------- likelihoods
def _decoder_kwargs(flags, target_dim):
    return dict(hidden=hidden_sizes(flags.decoder_hidden), activation=flags.activation,
                skip=flags.skip, network=decoder_network(flags, target_dim), name="decoder")


@register_likelihood("bernoulli")
def bernoulli_likelihood(flags, target_dim, prepared):
    return layers.BernoulliDecoder(target_dim, **_decoder_kwargs(flags, target_dim))


@register_likelihood("gaussian")
def gaussian_likelihood(flags, target_dim, prepared):
    return layers.GaussianDecoder(target_dim, scale="per_dimension",
                                  **_decoder_kwargs(flags, target_dim))


@register_likelihood("logit_normal")
def logit_normal_likelihood(flags, target_dim, prepared):
    return layers.LogitNormalDecoder(target_dim, **_decoder_kwargs(flags, target_dim))


@register_likelihood("categorical")
def categorical_likelihood(flags, target_dim, prepared):
    # Morningstar et al.'s VIB: an affine map from z to the class logits.
    return layers.CategoricalDecoder(target_dim, hidden=(), activation=flags.activation,
                                     name="decoder")


@register_likelihood("known")
def known_likelihood(flags, target_dim, prepared):
    return abs_toy_likelihood(prepared.bundle.truth["sigma"])


# ------------------------------------------------------------------ strategies
@register_strategy("default")
def default_strategy(flags):
    return None


@register_strategy("mirrored")
def mirrored_strategy(flags):
    return tf.distribute.MirroredStrategy()


@register_strategy("multi_worker")
def multi_worker_strategy(flags):
    from tfvi import distribute

    try:
        return distribute.create_strategy("multi_worker",
                                          timeout_seconds=flags.worker_timeout_seconds)
    except ValueError as err:
        raise tfvi_flags.FlagError(f"--strategy=multi_worker: {err}") from None


# --------------------------------------------------------------- LR schedules
def burda_boundaries(lr):
    """Burda et al.'s schedule (used by Ding & Freedman): 3^i passes at lr * 10^(-i/7),
    i = 0..7. Returns epoch boundaries and the values."""
    boundaries = list(np.cumsum([3**i for i in range(8)])[:-1])
    values = [lr * 10 ** (-i / 7) for i in range(8)]
    return boundaries, values


def learning_rate(flags, steps_per_epoch):
    """The optimizer's learning rate (a float or a Keras schedule over steps)."""
    lr = flags.learning_rate
    if flags.lr_schedule == "constant":
        return lr
    if flags.lr_schedule == "step":
        # Morningstar et al. B.1: decayed by 0.5 every 15000 training steps.
        return keras.optimizers.schedules.ExponentialDecay(
            lr, decay_steps=flags.lr_decay_steps, decay_rate=flags.lr_decay_rate,
            staircase=True)
    boundaries, values = burda_boundaries(lr)
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        [int(b * steps_per_epoch) for b in boundaries], values)


def steps_per_epoch(num_examples, batch_size):
    return max(1, math.ceil(num_examples / batch_size))
