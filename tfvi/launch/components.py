"""Built-in launcher components: posteriors, priors, likelihoods, strategies and the
learning-rate schedules, registered under their flag values (see `registry`), and
what every encoder/decoder family builds from them (`build_parts`,
`check_mixture_objective`). Builders read the run configuration
(`tfvi.launch.config.RunConfig`) as `config.<flag>`."""

import math

import keras
import numpy as np
import tensorflow as tf

from tfvi import layers, networks, priors
from tfvi.data.synthetic import abs_toy_likelihood
from tfvi.launch.config import FlagError
from tfvi.launch.registry import (
    LIKELIHOODS,
    POSTERIORS,
    PRIORS,
    register_likelihood,
    register_posterior,
    register_prior,
    register_strategy,
)
from tfvi.validation import check_objective_for_components


def build_parts(config, prepared):
    """(encoder, decoder, prior) of `--posterior`, the likelihood and `--prior`, for
    any encoder/decoder model family; for a two-level `--architecture` the three
    parts of `two_level_parts`."""
    if _architecture(config) in networks.TWO_LEVEL_ARCHITECTURES:
        return two_level_parts(config, prepared)
    encoder = POSTERIORS[config.posterior](config, config.latent_dim, prepared.input_dim)
    decoder = LIKELIHOODS[prepared.likelihood](config, prepared.target_dim, prepared)
    prior = PRIORS[config.prior](config, config.latent_dim, encoder, prepared)
    return encoder, decoder, prior


def two_level_parts(config, prepared):
    """`tfvi.layers.conv_hvae`'s (encoder, decoder, prior) for `--architecture=conv_hvae`
    (Bernoulli p(x|z1, z2)) or `conv_hvae_pixelcnn` (PixelCNN p(x|z1, z2)): z1 and z2
    of `--latent_dim` // 2 and the rest, `--hvae_width`, p(z2) a VampPrior over q(z2|x)
    with `--pseudo_inputs` initialised from training images (`--prior=vamp`) or N(0, I)
    (`--prior=normal`), and `--min_scale` on q(z2|x). `tfvi.launch.config` has
    already refused the flags these parts cannot take."""
    lower_dim = config.latent_dim // 2
    return layers.conv_hvae(
        image_shape=prepared.input_dim, lower_dim=lower_dim,
        upper_dim=config.latent_dim - lower_dim, width=config.hvae_width,
        prior="vampprior" if config.prior == "vamp" else "standard",
        num_pseudo_inputs=config.pseudo_inputs,
        init_from_data=(prepared.eval_splits["train"][0] if config.prior == "vamp"
                        else None),
        likelihood=networks.TWO_LEVEL_ARCHITECTURES[config.architecture], seed=config.seed,
        min_scale=min_scale(config))


def min_scale(config):
    """`--min_scale` as the encoders take it (None for 0, or a workdir predating it)."""
    return getattr(config, "min_scale", 0.0) or None


def prepare_data(config):
    """The `tfvi.data.datasets.Prepared` data of a run configuration (`--dataset`,
    `--data_dir`, `--validation_fraction`, `--likelihood`, `--view`, `--target`; image
    shapes for `--architecture` other than mlp)."""
    from tfvi.data import datasets

    bundle = datasets.load(config.dataset, data_dir=getattr(config, "data_dir", None),
                           seed=config.seed, validation_fraction=config.validation_fraction)
    return datasets.prepare(bundle, None if config.likelihood == "auto" else config.likelihood,
                            config.view, config.target, seed=config.seed,
                            images=getattr(config, "architecture", "mlp") != "mlp")


def check_mixture_objective(config, allowed):
    """`ValueError` naming `--objective` when a K > 1 mixture posterior cannot train with
    it (`tfvi.validation.check_objective_for_components`)."""
    components = config.components if config.posterior == "mixture" else 1
    try:
        check_objective_for_components(config.objective, components, allowed=allowed)
    except ValueError:
        raise ValueError(f"--objective={config.objective} is not supported with a "
                         f"{components}-component mixture posterior; accepted values: "
                         f"{', '.join(allowed)} (or --components=1).") from None


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
                                  min_scale=min_scale(flags), name="encoder")


@register_posterior("mixture")
def mixture_posterior(flags, latent_dim, input_dim):
    return layers.MixtureEncoder(latent_dim, components=flags.components,
                                 hidden=hidden_sizes(flags.encoder_hidden),
                                 activation=flags.activation, covariance=flags.covariance,
                                 network=encoder_network(flags, latent_dim, input_dim),
                                 min_scale=min_scale(flags), name="encoder")


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
        raise FlagError(f"--strategy=multi_worker: {err}") from None


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
