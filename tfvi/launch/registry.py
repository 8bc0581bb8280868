"""Registries the launcher builds from: model families, posteriors, priors,
likelihoods and distribution strategies, each keyed by its flag value.

A flag's accepted values are the keys of its registry (`--model` from `MODELS`,
`--posterior` from `POSTERIORS`, `--prior` from `PRIORS`, `--likelihood` from
`LIKELIHOODS`, `--strategy` from `STRATEGIES`), so registering a builder is all it
takes to add a value. Builders are plain functions of the run configuration (`tfvi.launch.config.RunConfig`,
read as `config.<flag name>`) and the prepared data:

* posterior: `fn(config, latent_dim, input_dim) -> encoder layer`
* prior: `fn(config, latent_dim, encoder, prepared) -> tfvi.priors.Prior`
* likelihood: `fn(config, target_dim, prepared) -> decoder layer`
* strategy: `fn(config) -> tf.distribute.Strategy` (or None for the default)
* model family: a `ModelFamily`; flags and callbacks that several families share
  (burn-in, KL warm-up, prior-training phases) a `Feature` the families name.

Plugins declare their flags as `Flag` values (no absl here): `tfvi.launch.flags`
defines them, `tfvi.launch.config` validates their bounds, and each plugin's
`check_flags` sees the whole configuration.
"""

import dataclasses
from typing import Any, Callable, Optional

__all__ = [
    "FEATURES",
    "Feature",
    "Flag",
    "LIKELIHOODS",
    "LR_SCHEDULES",
    "MODELS",
    "ModelFamily",
    "POSTERIORS",
    "PRIORS",
    "STRATEGIES",
    "family_defaults",
    "family_features",
    "plugin_flags",
    "register_feature",
    "register_likelihood",
    "register_model",
    "register_posterior",
    "register_prior",
    "register_strategy",
]

# `--lr_schedule` values (built by `tfvi.launch.components`).
LR_SCHEDULES = ("constant", "step", "burda")

MODELS = {}
FEATURES = {}
POSTERIORS = {}
PRIORS = {}
LIKELIHOODS = {}
STRATEGIES = {}


@dataclasses.dataclass(frozen=True)
class Flag:
    """A flag a plugin declares: `kind` is integer, float, string, boolean or enum
    (then `choices`); `minimum` is the smallest accepted number (checked with every
    other flag, before anything is built)."""

    name: str
    kind: str
    default: Any
    help: str
    minimum: Optional[float] = None
    choices: tuple = ()


@dataclasses.dataclass(frozen=True)
class Feature:
    """Flags, checks and callbacks that model families opt into by name
    (`ModelFamily.features`), so no family imports another.

    Attributes:
      name: what a family lists in `features`.
      flags: the `Flag`s it declares.
      check_flags: optional `fn(config)` raising `ValueError` for combinations that
        cannot run (only when the chosen family uses the feature).
      callbacks: optional `fn(model, prepared, config) -> [keras.callbacks.Callback]`.
    """

    name: str
    flags: tuple = ()
    check_flags: Optional[Callable] = None
    callbacks: Optional[Callable] = None


@dataclasses.dataclass
class ModelFamily:
    """How the launcher trains and scores one model family (`--model=<name>`).

    Attributes:
      name: the `--model` value.
      build: `fn(config, prepared) -> keras.Model`, a pure function of the run
        configuration and the data, called inside the strategy scope; every
        variable must exist when it returns. The model must have a
        `compile(optimizer, jit_compile)` and train with `fit`.
      objectives: the accepted `--objective` values.
      flags: the `Flag`s the family declares.
      features: names of the `Feature`s it uses (their flags, checks, callbacks).
      check_flags: optional `fn(config)` raising `ValueError` ("--flag=value ...:
        accepted ...") for combinations the family refuses; runs before anything
        is written.
      evaluate: optional `fn(model, prepared, config) -> {split: {metric: value}}` of
        extra final metrics merged into metrics.json.
      callbacks: optional `fn(model, prepared, config) -> [keras.callbacks.Callback]`
        (the family's own; its features' callbacks run before them).
      exportable: whether `tfvi.export` applies (an encoder/decoder/prior model with
        `log_weight_terms`).
      estimators: optional `fn(config, model) -> {name: description}` replacing
        entries of metrics.json's "estimators" (e.g. "bounds"/"nll" for a family
        whose loss is not a bound with `--samples` and `--beta`).
      plots: optional `fn(model, prepared, config, plot_dir) -> [paths]` of extra
        plots written with `--plots` (e.g. the VIB's reliability diagram).
      defaults: `{flag name: value}` the family brings (e.g. `--model=mim` its
        `objective="mim"`, `--model=vib` its `target="label"` and `beta=0.05`).
        They replace the generic flag defaults only where the user did not set the
        flag (absl `FLAGS[name].present`) and no preset written for this family did;
        the result is validated like any flag value (`tfvi.launch.flags`).
      early_stopping_patience: optional `fn(config, prepared) -> int`, the family's
        own early-stopping patience where `--early_stopping_patience` is 0 (e.g. MIM's
        section 5: the warm-up length, with a validation split); 0 leaves it off.
        Either way the launcher's resumable early stopping runs it.
      summary_metrics: metrics.json keys of the family's own figures, shown as extra
        columns of the final table (e.g. the VIB's "accuracy", "ece"; names known
        to `tfvi.launch.report.COLUMNS` get short headers).
    """

    name: str
    build: Callable
    objectives: tuple
    help: str = ""
    flags: tuple = ()
    features: tuple = ()
    check_flags: Optional[Callable] = None
    evaluate: Optional[Callable] = None
    callbacks: Optional[Callable] = None
    exportable: bool = True
    estimators: Optional[Callable] = None
    plots: Optional[Callable] = None
    defaults: dict = dataclasses.field(default_factory=dict)
    early_stopping_patience: Callable | None = None
    summary_metrics: tuple = ()


def family_defaults(name):
    """`{model family: value}` of the families that set their own default for flag
    `name` (`ModelFamily.defaults`)."""
    return {family.name: family.defaults[name] for family in MODELS.values()
            if name in family.defaults}


def family_features(family):
    """The `Feature`s a family uses, in its `features` order."""
    missing = [name for name in family.features if name not in FEATURES]
    if missing:
        raise ValueError(f"model family {family.name!r} uses unregistered features "
                         f"{missing}; registered: {', '.join(sorted(FEATURES))}.")
    return [FEATURES[name] for name in family.features]


def plugin_flags():
    """Every `Flag` declared by a registered family or feature, by name."""
    out = {}
    for plugin in list(MODELS.values()) + list(FEATURES.values()):
        for flag in plugin.flags:
            out.setdefault(flag.name, flag)
    return out


def _register(table, name):
    def wrap(fn):
        table[name] = fn
        return fn

    return wrap


def register_model(family):
    """Adds a `ModelFamily` (its `name` becomes a `--model` value)."""
    MODELS[family.name] = family
    return family


def register_feature(feature):
    """Adds a `Feature` (families list its `name` in `features`)."""
    FEATURES[feature.name] = feature
    return feature


def register_posterior(name):
    """Decorator for `fn(config, latent_dim, input_dim) -> encoder`."""
    return _register(POSTERIORS, name)


def register_prior(name):
    """Decorator for `fn(config, latent_dim, encoder, prepared) -> prior`."""
    return _register(PRIORS, name)


def register_likelihood(name):
    """Decorator for `fn(config, target_dim, prepared) -> decoder`."""
    return _register(LIKELIHOODS, name)


def register_strategy(name):
    """Decorator for `fn(config) -> tf.distribute.Strategy or None`."""
    return _register(STRATEGIES, name)
