"""Registries the launcher builds from: model families, posteriors, priors,
likelihoods and distribution strategies, each keyed by its flag value.

A flag's accepted values are the keys of its registry (`--model` from `MODELS`,
`--posterior` from `POSTERIORS`, `--prior` from `PRIORS`, `--likelihood` from
`LIKELIHOODS`, `--strategy` from `STRATEGIES`), so registering a builder is all it
takes to add a value. Builders are plain functions of the parsed flags:

* posterior: `fn(flags, latent_dim, input_dim) -> encoder layer`
* prior: `fn(flags, latent_dim, encoder, prepared) -> tfvi.priors.Prior`
* likelihood: `fn(flags, target_dim, prepared) -> decoder layer`
* strategy: `fn(flags) -> tf.distribute.Strategy` (or None for the default)
* model family: a `ModelFamily` (see its docstring).
"""

import dataclasses
from typing import Callable, Optional

__all__ = [
    "LIKELIHOODS",
    "LR_SCHEDULES",
    "MODELS",
    "ModelFamily",
    "POSTERIORS",
    "PRIORS",
    "STRATEGIES",
    "family_defaults",
    "register_likelihood",
    "register_model",
    "register_posterior",
    "register_prior",
    "register_strategy",
]

# `--lr_schedule` values (built by `tfvi.launch.components`).
LR_SCHEDULES = ("constant", "step", "burda")

MODELS = {}
POSTERIORS = {}
PRIORS = {}
LIKELIHOODS = {}
STRATEGIES = {}


@dataclasses.dataclass
class ModelFamily:
    """How the launcher trains and scores one model family (`--model=<name>`).

    Attributes:
      name: the `--model` value.
      build: `fn(flags, prepared) -> keras.Model`, called inside the strategy scope;
        every variable must exist when it returns. The model must have a
        `compile(optimizer, jit_compile)` and train with `fit`.
      objectives: the accepted `--objective` values.
      check_flags: optional `fn(flags)` raising `ValueError` ("--flag=value ...:
        accepted ...") for combinations the family refuses; runs before anything
        is written.
      evaluate: optional `fn(model, prepared, flags) -> {split: {metric: value}}` of
        extra final metrics merged into metrics.json.
      callbacks: optional `fn(model, prepared, flags) -> [keras.callbacks.Callback]`
        (warm-ups, burn-in, ...).
      exportable: whether `tfvi.export` applies (an encoder/decoder/prior model with
        `log_weight_terms`).
      estimators: optional `fn(flags, model) -> {name: description}` replacing
        entries of metrics.json's "estimators" (e.g. "bounds"/"nll" for a family
        whose loss is not a bound with `--samples` and `--beta`).
      plots: optional `fn(model, prepared, flags, plot_dir) -> [paths]` of extra
        plots written with `--plots` (e.g. the VIB's reliability diagram).
      defaults: `{flag name: value}` the family brings (e.g. `--model=mim` its
        `objective="mim"`, `--model=vib` its `target="label"` and `beta=0.05`).
        They replace the generic flag defaults only where the user did not set the
        flag (absl `FLAGS[name].present`) and no preset written for this family did;
        the result is validated like any flag value (`tfvi.launch.flags`).
      summary_metrics: metrics.json keys of the family's own figures, shown as extra
        columns of the final table (e.g. the VIB's "accuracy", "ece"; names known
        to `tfvi.launch.report.COLUMNS` get short headers).
    """

    name: str
    build: Callable
    objectives: tuple
    help: str = ""
    check_flags: Optional[Callable] = None
    evaluate: Optional[Callable] = None
    callbacks: Optional[Callable] = None
    exportable: bool = True
    estimators: Optional[Callable] = None
    plots: Optional[Callable] = None
    defaults: dict = dataclasses.field(default_factory=dict)
    summary_metrics: tuple = ()


def family_defaults(name):
    """`{model family: value}` of the families that set their own default for flag
    `name` (`ModelFamily.defaults`)."""
    return {family.name: family.defaults[name] for family in MODELS.values()
            if name in family.defaults}


def _register(table, name):
    def wrap(fn):
        table[name] = fn
        return fn

    return wrap


def register_model(family):
    """Adds a `ModelFamily` (its `name` becomes a `--model` value)."""
    MODELS[family.name] = family
    return family


def register_posterior(name):
    """Decorator for `fn(flags, latent_dim, input_dim) -> encoder`."""
    return _register(POSTERIORS, name)


def register_prior(name):
    """Decorator for `fn(flags, latent_dim, encoder, prepared) -> prior`."""
    return _register(PRIORS, name)


def register_likelihood(name):
    """Decorator for `fn(flags, target_dim, prepared) -> decoder`."""
    return _register(LIKELIHOODS, name)


def register_strategy(name):
    """Decorator for `fn(flags) -> tf.distribute.Strategy or None`."""
    return _register(STRATEGIES, name)
