"""absl flags of `tfvi-train` and their validation.

Flags whose accepted values come from a registry (`--model`, `--posterior`,
`--prior`, `--likelihood`, `--strategy`) are plain strings checked against the
registry after parsing, so families registered by modules in `tfvi.launch.families`
add values without touching this file. `validate(FLAGS)` raises `FlagError` with one
line naming the flag and the accepted values.

Where a flag's value comes from, strongest first: the command line (or a
`--flagfile`), the `--preset`, the model family's own default (`ModelFamily.defaults`:
`--model=mim` brings `--objective=mim`, `--model=vib` `--target=label --beta=0.05`),
the flag's generic default. `--helpfull` shows the per-family defaults in each flag's
help, and `--help` lists tfvi's own flags (`declare_key_flags`).
"""

import sys


from absl import flags

from tfvi import networks
from tfvi.data.datasets import DATASETS, TARGETS, VIEWS
from tfvi.launch import presets
from tfvi.launch.registry import (
    LIKELIHOODS,
    family_defaults,
    LR_SCHEDULES,
    MODELS,
    POSTERIORS,
    PRIORS,
    STRATEGIES,
)

FLAGS = flags.FLAGS

# Flags that control how a run is executed or reported, not what it computes: a
# workdir may be resumed with different values of these.
RUN_CONTROL_FLAGS = ("workdir", "overwrite", "verbose", "flagfile", "export", "plots",
                     "eval_iwae_samples", "ksg_points", "eval_max_examples", "checkpoint_keep",
                     "jit_compile", "data_dir", "strategy", "worker_timeout_seconds")


class FlagError(ValueError):
    """A bad flag value; the message is one line naming the flag."""


_DEFINED = []


def define_flags():
    """Defines the issue-3 flags once (idempotent)."""
    if _DEFINED:
        return
    _DEFINED.append(True)
    # What to train.
    flags.DEFINE_string("model", "vae", "Model family: one of the registered families "
                        "(tfvi.launch.registry.MODELS: "
                        + ", ".join(sorted(MODELS) or ["vae"]) + "); each brings its "
                        "own defaults for the flags you do not set (see 'default per "
                        "family' below).")
    flags.DEFINE_string("objective", "siwae", "Training bound: elbo, iwae, selbo, siwae "
                        "(mixture posteriors with K > 1 need selbo or siwae).")
    flags.DEFINE_string("posterior", "mixture", "Posterior family q(z|x): gaussian, mixture "
                        "(or a registered one).")
    flags.DEFINE_integer("components", 5, "K, mixture components of the posterior.")
    flags.DEFINE_integer("samples", 10, "T, samples per mixture component in the bound.")
    flags.DEFINE_string("covariance", "diag", "Covariance of Gaussian components: diag, full.")
    flags.DEFINE_string("prior", "normal", "Prior r(z): normal, mog (or a registered one).")
    flags.DEFINE_integer("prior_components", 10, "Components of the --prior=mog mixture.")
    flags.DEFINE_integer("latent_dim", 8, "Size of the latent variable z.")
    flags.DEFINE_list("encoder_hidden", ["200", "200"],
                      "Hidden layer widths of the encoder MLP (comma separated; empty: none).")
    flags.DEFINE_list("decoder_hidden", ["200", "200"],
                      "Hidden layer widths of the decoder MLP (comma separated; empty: none).")
    flags.DEFINE_string("activation", "tanh", "Activation of the MLPs (any Keras name).")
    flags.DEFINE_string("likelihood", "auto", "Likelihood p(x|z): auto (the data set's own), "
                        "bernoulli, gaussian, logit_normal, categorical, known.")
    flags.DEFINE_boolean("skip", False, "Decoder skip connection: one affine layer from z to "
                         "the output (Morningstar et al., B.2).")
    flags.DEFINE_float("beta", 1.0, "Weight of log r(z) - log q(z|x) in the log-weights.")
    flags.DEFINE_boolean("stl", False, "Sticking the landing: drop the score term of log q.")
    # Data.
    flags.DEFINE_string("dataset", "digits", "Data set name (offline: digits, abs_toy, "
                        "linear_gaussian, gmm2d; TFDS: mnist, binarized_mnist, fashion_mnist, "
                        "omniglot, cifar10).")
    flags.DEFINE_string("data_dir", None, "TFDS data directory (nothing is downloaded).")
    flags.DEFINE_string("view", "full", "Encoder input: full, single_column (centre column).")
    flags.DEFINE_string("target", "input", "Likelihood target: input, label, "
                        "same_class_random.")
    flags.DEFINE_float("validation_fraction", 0.0,
                       "Fraction of the training split held out for validation, in [0, 1).")
    flags.DEFINE_integer("early_stopping_patience", 0, "Stop when the validation loss has not "
                         "improved for this many epochs and restore the best weights "
                         "(0: off; needs --validation_fraction > 0).")
    # Optimisation.
    flags.DEFINE_integer("batch_size", 100, "Global batch size.")
    flags.DEFINE_integer("epochs", 40, "Training epochs (passes over the training split).")
    flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (initial value).")
    flags.DEFINE_string("lr_schedule", "constant", "Learning-rate schedule: constant; step "
                        "(x lr_decay_rate every lr_decay_steps, Morningstar et al. B.1); burda (3^i "
                        "epochs at lr*10^(-i/7), i = 0..7, Burda et al. / Ding & Freedman).")
    flags.DEFINE_integer("lr_decay_steps", 15000, "Steps between decays of --lr_schedule=step.")
    flags.DEFINE_float("lr_decay_rate", 0.5, "Decay factor of --lr_schedule=step.")
    flags.DEFINE_integer("seed", 0, "Seed of initialisation, data order and sampling noise.")
    flags.DEFINE_string("strategy", "default", "tf.distribute strategy: default (one device), "
                        "mirrored (all local devices, no XLA), multi_worker "
                        "(MultiWorkerMirroredStrategy from TF_CONFIG; the chief writes the "
                        "workdir, other workers a temporary copy that is deleted).")
    flags.DEFINE_float("worker_timeout_seconds", 60.0, "--strategy=multi_worker: seconds a "
                       "collective waits for a peer; with no progress for 30 s more the "
                       "process exits (a dead worker).")
    flags.DEFINE_string("jit_compile", "auto", "XLA for the train step: auto (on without a "
                        "strategy), true, false.")
    # Run control.
    flags.DEFINE_string("workdir", "runs/tfvi", "Output directory: metrics.json, checkpoints/, "
                        "tensorboard/, plots/, export/. Rerunning resumes from it.")
    flags.DEFINE_boolean("overwrite", False, "Delete a workdir written with different flags "
                         "instead of refusing it.")
    flags.DEFINE_integer("eval_iwae_samples", 1000, "k of the final IWAE-k NLL estimate.")
    flags.DEFINE_integer("eval_max_examples", 1000, "Examples per split for the final "
                         "evaluation (the first ones; 0: all).")
    flags.DEFINE_integer("ksg_points", 3000, "At most this many (x, z ~ q(z|x)) pairs per "
                         "split for the KSG mutual information every latent-variable "
                         "family reports (with k-NN accuracy and reconstruction RMSE).")
    flags.DEFINE_integer("checkpoint_keep", 2, "Checkpoints kept in checkpoints/.")
    flags.DEFINE_boolean("export", True, "Write the SavedModel to workdir/export.")
    flags.DEFINE_boolean("plots", True, "Write plots/*.png.")
    flags.DEFINE_integer("verbose", 1, "0: quiet, 1: Keras progress bar, 2: one line per epoch.")
    flags.DEFINE_string("architecture", "mlp", "Networks under the encoder/decoder heads "
                        "(image data sets; flat inputs and label targets keep the MLP): mlp "
                        "(--encoder_hidden/--decoder_hidden), dense_vae, conv_vae, resnet_vae "
                        "(Xu et al., B.2, for 28x28 images), conv (Morningstar et al.'s "
                        "TFP-example networks).")
    flags.DEFINE_string("preset", None, "Named preset of flag values (explicit flags win): "
                        + ", ".join(sorted(presets.PRESETS)) + ".")
    annotate_family_defaults()


def annotate_family_defaults(flag_values=FLAGS):
    """Appends "default per family: ..." to the help of every flag that some
    registered model family sets (so `--helpfull` shows it)."""
    from tfvi.launch.registry import MODELS

    names = {name for family in MODELS.values() for name in family.defaults}
    for name in sorted(names):
        if name not in flag_values or "default per family" in flag_values[name].help:
            continue
        flag = flag_values[name]
        per_family = family_defaults(name)
        shown = []
        for model in sorted(MODELS):
            value = per_family.get(model, flag.default)
            shown.append(f"{model}={','.join(value) if isinstance(value, list) else value}")
        flag.help += f" (default per family: {', '.join(shown)}; an explicit flag wins)"


def declare_key_flags(names=None, flag_values=FLAGS):
    """Makes tfvi's flags (or `names`) key flags of the main program, so `--help`
    lists them (absl shows the key flags of `sys.argv[0]`'s module; a console-script
    entry point has no flags of its own, hence the explicit registration)."""
    if names is None:
        names = [name for name in flag_values
                 if (flag_values.find_module_defining_flag(name, None) or "").startswith(
                     "tfvi")]
    main_module = sys.argv[0]
    for name in names:
        flag_values.register_key_flag_for_module(main_module, flag_values[name])


def _choice(name, value, accepted):
    if value not in accepted:
        raise FlagError(f"--{name}={value!r} is not accepted; accepted values: "
                        f"{', '.join(sorted(accepted))}.")


def _at_least(name, value, low):
    if value is None or value < low:
        raise FlagError(f"--{name}={value} is not accepted; accepted values: integers >= {low}.")


def apply_preset(flag_values):
    """Sets the preset's values, then the model family's defaults, on the flags not
    given explicitly; returns `{flag: "preset" | "family"}` for the flags it set.

    A preset value wins over the family default unless the preset was written for
    another family (`--preset=digits_siwae --model=mim` trains MIM with its own
    `--objective=mim`, not the preset's siwae)."""
    source = {}
    preset = {}
    if flag_values.preset:
        _choice("preset", flag_values.preset, presets.PRESETS)
        preset = presets.PRESETS[flag_values.preset]
        for name, value in preset.items():
            if not flag_values[name].present:
                setattr(flag_values, name, value)
                source[name] = "preset"
    from tfvi.launch.registry import MODELS

    family = MODELS.get(flag_values.model)
    if family is None:  # validate() names the bad --model
        return source
    preset_is_for_family = preset.get("model", flag_values.model) == flag_values.model
    for name, value in family.defaults.items():
        if flag_values[name].present or (name in source and preset_is_for_family):
            continue
        setattr(flag_values, name, value)
        source[name] = "family"
    return source


def validate(f):
    """Checks every issue-3 flag (and the chosen family's `check_flags`)."""
    _choice("model", f.model, MODELS)
    family = MODELS[f.model]
    _choice("objective", f.objective, family.objectives)
    _choice("posterior", f.posterior, POSTERIORS)
    _choice("prior", f.prior, PRIORS)
    _choice("covariance", f.covariance, ("diag", "full"))
    _choice("likelihood", f.likelihood, ("auto",) + tuple(LIKELIHOODS))
    _choice("dataset", f.dataset, DATASETS)
    _choice("view", f.view, VIEWS)
    _choice("target", f.target, TARGETS)
    _choice("lr_schedule", f.lr_schedule, LR_SCHEDULES)
    _choice("strategy", f.strategy, STRATEGIES)
    _choice("jit_compile", f.jit_compile, ("auto", "true", "false"))
    _choice("architecture", f.architecture, networks.ARCHITECTURE_NAMES)
    for name in ("components", "samples", "latent_dim", "batch_size", "epochs",
                 "eval_iwae_samples", "prior_components", "lr_decay_steps", "ksg_points",
                 "checkpoint_keep"):
        _at_least(name, getattr(f, name), 1)
    for name in ("eval_max_examples", "early_stopping_patience"):
        _at_least(name, getattr(f, name), 0)
    if f.verbose not in (0, 1, 2):
        raise FlagError(f"--verbose={f.verbose} is not accepted; accepted values: 0, 1, 2.")
    if not f.learning_rate > 0:
        raise FlagError(f"--learning_rate={f.learning_rate} is not accepted; accepted values: "
                        "positive numbers.")
    if not 0 < f.lr_decay_rate <= 1:
        raise FlagError(f"--lr_decay_rate={f.lr_decay_rate} is not accepted; accepted values: "
                        "(0, 1].")
    if not f.beta >= 0:
        raise FlagError(f"--beta={f.beta} is not accepted; accepted values: numbers >= 0.")
    if not 0 <= f.validation_fraction < 1:
        raise FlagError(f"--validation_fraction={f.validation_fraction} is not accepted; "
                        "accepted values: [0, 1).")
    if f.early_stopping_patience and not f.validation_fraction > 0:
        raise FlagError("--early_stopping_patience needs a validation split; accepted: "
                        "--validation_fraction in (0, 1).")
    if f.posterior == "gaussian" and f.components != 1 and f["components"].present:
        raise FlagError(f"--components={f.components} needs --posterior=mixture; accepted "
                        "with --posterior=gaussian: 1.")
    for name in ("encoder_hidden", "decoder_hidden"):
        for width in getattr(f, name):
            if not str(width).strip().isdigit() or int(width) <= 0:
                raise FlagError(f"--{name}={','.join(getattr(f, name))} is not accepted; "
                                "accepted values: comma-separated positive integers.")
    if family.check_flags is not None:
        try:
            family.check_flags(f)
        except ValueError as err:
            raise FlagError(str(err)) from None


def flag_dict(f, include_run_control=False):
    """The values of every defined flag as a JSON-able dict."""
    out = {}
    for name in sorted(f):
        if name in ("help", "helpfull", "helpshort", "helpxml", "flagfile", "undefok"):
            continue
        module = f.find_module_defining_flag(name, None) or ""
        if not module.startswith("tfvi"):
            continue
        if not include_run_control and name in RUN_CONTROL_FLAGS:
            continue
        value = f[name].value
        out[name] = list(value) if isinstance(value, (list, tuple)) else value
    return out
