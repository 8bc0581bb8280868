"""The run configuration of `tfvi-train`: flags resolved and validated once.

`resolve(values, explicit)` takes the values of every launcher flag (a plain dict, as
`tfvi.launch.flags.read_flags` reads them from absl) and the names given explicitly,
fills in the preset and the model family's defaults, validates everything in one
place and returns a frozen `RunConfig`. Nothing after it sees absl: model families
build from `(config, prepared data)`, and `config.to_dict()` is what `flags.json`
stores. Where a value comes from, strongest first: the command line (or a
`--flagfile`), the `--preset`, the model family's default, the flag's default.
"""

import dataclasses
import math
import types
from typing import Any, Mapping

from tfvi import networks, precision
from tfvi.data.datasets import DATASETS, TARGETS, VIEWS
from tfvi.launch import presets
from tfvi.launch.registry import (
    LIKELIHOODS,
    LR_SCHEDULES,
    MODELS,
    POSTERIORS,
    PRIORS,
    STRATEGIES,
    family_features,
)
from tfvi.training import workdir as workdir_lib
from tfvi.training.outputs import EVAL_SPLITS

__all__ = ["EVAL_SPLITS", "FlagError", "RUN_CONTROL_FLAGS", "RunConfig", "TWO_LEVEL_ACCEPTS", "check_flag_at_least",
           "check_flag_choice", "fill_defaults", "from_stored", "resolve", "validate"]

# Flags that control how a run is executed or reported, not what it computes: a
# workdir may be resumed with different values of these.
RUN_CONTROL_FLAGS = ("workdir", "overwrite", "verbose", "flagfile", "export", "plots",
                     "eval_iwae_samples", "ksg_points", "eval_max_examples", "eval_splits",
                     "checkpoint_keep",
                     "checkpoint_every_seconds",
                     "jit_compile", "precision", "data_dir", "strategy",
                     "worker_timeout_seconds", "reevaluate")
_POSITIVE = ("components", "samples", "latent_dim", "batch_size", "epochs",
             "eval_iwae_samples", "prior_components", "lr_decay_steps", "ksg_points",
             "checkpoint_keep")
_NON_NEGATIVE = ("eval_max_examples", "early_stopping_patience")


class FlagError(ValueError):
    """A bad flag value; the message is one line naming the flag."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every flag value of one run, read as attributes (`config.latent_dim`).

    Attributes:
      values: `{flag name: value}` (lists as tuples).
      explicit: the flags given on the command line (they win over presets and
        family defaults, and a workdir compares them even when the stored run
        predates them).
      sources: `{flag name: "preset" | "family" | "architecture"}` for the values
        filled in (a two-level `--architecture` brings `--posterior=gaussian`).
    """

    values: Mapping[str, Any]
    explicit: frozenset = frozenset()
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        frozen = {k: tuple(v) if isinstance(v, list) else v for k, v in self.values.items()}
        object.__setattr__(self, "values", types.MappingProxyType(frozen))
        object.__setattr__(self, "explicit", frozenset(self.explicit))
        object.__setattr__(self, "sources", types.MappingProxyType(dict(self.sources)))

    def __getattr__(self, name):
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"the run configuration has no flag {name!r}")

    def __contains__(self, name):
        return name in self.values

    def given(self, name):
        """True when `--name` was given explicitly."""
        return name in self.explicit

    def replace(self, **changes):
        return dataclasses.replace(self, values={**self.values, **changes})

    def to_dict(self, include_run_control=False):
        """The JSON-able flag values (`flags.json` without the run-control flags)."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in sorted(self.values.items())
                if include_run_control or name not in RUN_CONTROL_FLAGS}


def from_stored(stored):
    """The configuration of a workdir's `flags.json` (every stored value counts as
    given), for rebuilding its model; not validated again."""
    return RunConfig(values=dict(stored), explicit=frozenset(stored))


def fill_defaults(values, explicit):
    """`(values, sources)`: `values` with the preset's values, then the model family's
    defaults, on the flags not in `explicit`.

    A preset value wins over the family default unless the preset was written for
    another family (`--preset=digits_siwae --model=mim` trains MIM with its own
    `--objective=mim`, not the preset's siwae)."""
    values, sources, preset = dict(values), {}, {}
    if values.get("preset"):
        check_flag_choice("preset", values["preset"], presets.PRESETS)
        preset = presets.PRESETS[values["preset"]]
        for name, value in preset.items():
            if name not in explicit:
                values[name] = value
                sources[name] = "preset"
    family = MODELS.get(values.get("model"))
    if family is None:  # validate() names the bad --model
        return values, sources
    preset_is_for_family = preset.get("model", values["model"]) == values["model"]
    for name, value in family.defaults.items():
        if name in explicit or (name in sources and preset_is_for_family):
            continue
        values[name] = value
        sources[name] = "family"
    if values.get("architecture") in networks.TWO_LEVEL_ARCHITECTURES:
        # Its q(z2|x) is Gaussian: the generic --posterior default does not apply.
        for name, value in (("posterior", "gaussian"), ("components", 1)):
            if name not in explicit and sources.get(name) != "preset":
                values[name] = value
                sources[name] = "architecture"
    return values, sources


def resolve(values, explicit=()):
    """The validated `RunConfig` of flag `values` (see the module docstring)."""
    filled, sources = fill_defaults(values, explicit)
    config = RunConfig(values=filled, explicit=frozenset(explicit), sources=sources)
    validate(config)
    return config


def check_flag_choice(name, value, accepted):
    """`FlagError` (one line) unless `--name`'s `value` is one of `accepted`."""
    if value not in accepted:
        raise FlagError(f"--{name}={value!r} is not accepted; accepted values: "
                        f"{', '.join(sorted(accepted))}.")


def check_flag_at_least(name, value, low, kind="integers"):
    """`FlagError` (one line) unless `--name`'s `value` is at least `low`."""
    if value is None or value < low:
        raise FlagError(f"--{name}={value} is not accepted; accepted values: {kind} >= {low}.")


def _check_choices(c, family):
    for name, accepted in (
            ("model", MODELS), ("objective", family.objectives), ("posterior", POSTERIORS),
            ("prior", PRIORS), ("covariance", ("diag", "full")),
            ("likelihood", ("auto",) + tuple(LIKELIHOODS)), ("dataset", DATASETS),
            ("view", VIEWS), ("target", TARGETS), ("lr_schedule", LR_SCHEDULES),
            ("strategy", STRATEGIES), ("jit_compile", ("auto", "true", "false")),
            ("precision", precision.PRECISIONS),
            ("architecture", networks.ARCHITECTURE_NAMES)):
        check_flag_choice(name, getattr(c, name), accepted)
    if c.verbose not in (0, 1, 2):
        raise FlagError(f"--verbose={c.verbose} is not accepted; accepted values: 0, 1, 2.")


def _check_numbers(c, declared):
    """Core ranges, then the bounds on the `Flag`s in `declared`."""
    for name in _POSITIVE:
        check_flag_at_least(name, getattr(c, name), 1)
    for name in _NON_NEGATIVE:
        check_flag_at_least(name, getattr(c, name), 0)
    for flag in declared.values():
        if flag.minimum is not None and flag.name in c:
            check_flag_at_least(flag.name, getattr(c, flag.name), flag.minimum,
                      "integers" if flag.kind == "integer" else "numbers")
        if flag.choices and flag.name in c:
            check_flag_choice(flag.name, getattr(c, flag.name), flag.choices)
    check_flag_at_least("checkpoint_every_seconds", c.checkpoint_every_seconds, 0, "numbers")
    for name in ("learning_rate", "beta", "checkpoint_every_seconds"):
        if not math.isfinite(getattr(c, name)):
            raise FlagError(f"--{name}={getattr(c, name)} is not accepted; accepted "
                            "values: finite numbers.")
    if not c.learning_rate > 0:
        raise FlagError(f"--learning_rate={c.learning_rate} is not accepted; accepted values: "
                        "positive numbers.")
    if not 0 < c.lr_decay_rate <= 1:
        raise FlagError(f"--lr_decay_rate={c.lr_decay_rate} is not accepted; accepted values: "
                        "(0, 1].")
    check_flag_at_least("beta", c.beta, 0, "numbers")
    if not 0 <= c.validation_fraction < 1:
        raise FlagError(f"--validation_fraction={c.validation_fraction} is not accepted; "
                        "accepted values: [0, 1).")
    splits = tuple(c.eval_splits)
    if not splits or len(set(splits)) != len(splits) or not set(splits) <= set(EVAL_SPLITS):
        raise FlagError(f"--eval_splits={','.join(splits)} is not accepted; accepted values: "
                        f"distinct names of {', '.join(EVAL_SPLITS)}, comma-separated.")
    for name in ("encoder_hidden", "decoder_hidden"):
        for width in getattr(c, name):
            if not str(width).strip().isdigit() or int(width) <= 0:
                raise FlagError(f"--{name}={','.join(getattr(c, name))} is not accepted; "
                                "accepted values: comma-separated positive integers.")


def _check_combinations(c, family):
    if c.early_stopping_patience and not c.validation_fraction > 0:
        raise FlagError("--early_stopping_patience needs a validation split; accepted: "
                        "--validation_fraction in (0, 1).")
    if c.posterior == "gaussian" and c.components != 1 and c.given("components"):
        raise FlagError(f"--components={c.components} needs --posterior=mixture; accepted "
                        "with --posterior=gaussian: 1.")
    if c.strategy != "default" and c.jit_compile == "true":
        raise FlagError(f"--jit_compile=true is not supported with --strategy={c.strategy} "
                        "(XLA fails on distributed variables); accepted: auto, false.")
    if not (math.isfinite(c.min_scale) and c.min_scale >= 0):
        raise FlagError(f"--min_scale={c.min_scale} is not accepted; accepted values: 0 (no "
                        "floor) or a positive finite number (e.g. 0.05).")
    if c.architecture in networks.TWO_LEVEL_ARCHITECTURES:
        _check_two_level(c)
    if c.likelihood == "pixelcnn" and c.architecture in ("mlp",) + tuple(
            networks.TWO_LEVEL_ARCHITECTURES):
        raise FlagError(f"--likelihood=pixelcnn needs a one-level convolutional "
                        f"--architecture (resnet_vae: Xu et al.'s PixelVAE); got "
                        f"{c.architecture}.")
    if c.view == "pca20" and c.architecture != "mlp":
        raise FlagError(f"--view=pca20 gives flat 20-D codes, not images; accepted with it: "
                        f"--architecture=mlp (got {c.architecture}).")
    if c.view == "pca20" and c.likelihood not in ("auto", "gaussian") and c.target != "label":
        raise FlagError(f"--likelihood={c.likelihood} is not supported with --view=pca20 "
                        "(real-valued codes); accepted: auto, gaussian.")
    try:
        workdir_lib.check_workdir_path(c.workdir)
    except ValueError as err:
        raise FlagError(str(err)) from None


# What a two-level --architecture accepts (it builds its own encoder, decoder and prior).
TWO_LEVEL_ACCEPTS = {"model": ("vae", "mim", "amim"), "posterior": ("gaussian",),
                     "prior": ("normal", "vamp"), "likelihood": ("auto", "bernoulli"),
                     "covariance": ("diag",), "view": ("full",), "target": ("input",),
                     "prior_training": ("joint",)}


def _check_two_level(c):
    for name, accepted in TWO_LEVEL_ACCEPTS.items():
        value = getattr(c, name, accepted[0])
        if value not in accepted:
            raise FlagError(f"--{name}={value} is not supported with --architecture="
                            f"{c.architecture} (a two-level model with its own encoder, "
                            f"decoder and prior); accepted: {', '.join(accepted)}.")
    if c.latent_dim < 2:
        raise FlagError(f"--latent_dim={c.latent_dim} is not accepted with --architecture="
                        f"{c.architecture}: it is split into z1 and z2; accepted values: "
                        "integers >= 2.")
    if c.skip:
        raise FlagError(f"--skip is not supported with --architecture={c.architecture}; "
                        "accepted: --noskip.")
    if not (math.isfinite(c.hvae_width) and c.hvae_width > 0):
        raise FlagError(f"--hvae_width={c.hvae_width} is not accepted; accepted values: "
                        "positive numbers.")


def validate(config):
    """Checks every flag of `config`: choices, numbers (with the bounds the chosen family
    and its features declare on their `Flag`s), combinations, then the family's
    features' and its own `check_flags`. Raises `FlagError` (one line naming the flag)."""
    check_flag_choice("model", config.model, MODELS)
    family = MODELS[config.model]
    _check_choices(config, family)
    declared = {flag.name: flag for plugin in [family] + family_features(family)
                for flag in plugin.flags}
    _check_numbers(config, declared)
    _check_combinations(config, family)
    for check in [f.check_flags for f in family_features(family)] + [family.check_flags]:
        if check is None:
            continue
        try:
            check(config)
        except ValueError as err:
            raise FlagError(str(err)) from None
