"""absl flags of `tfvi-train`: defined here, read once into a `RunConfig`.

Flags whose accepted values come from a registry (`--model`, `--posterior`,
`--prior`, `--likelihood`, `--strategy`) are plain strings checked against the
registry by `tfvi.launch.config.validate`, so families registered by modules in
`tfvi.launch.families` add values without touching this file; the flags those
families and features declare (`tfvi.launch.registry.Flag`) are defined here too.

`read_config(FLAGS)` is the one way from absl to the run: it reads every tfvi flag
and the names given explicitly, and `tfvi.launch.config.resolve` fills in the preset
and family defaults and validates (`FlagError`: one line naming the flag and the
accepted values). `--helpfull` shows the per-family defaults in each flag's help,
and `--help` lists tfvi's own flags (`declare_key_flags`).
"""

import sys

from absl import flags

from tfvi import precision
from tfvi.launch import config as run_config
from tfvi.launch import presets
from tfvi.launch.config import RUN_CONTROL_FLAGS, FlagError  # noqa: F401  (public here too)
from tfvi.launch.registry import MODELS, family_defaults, plugin_flags

FLAGS = flags.FLAGS

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
                        "bernoulli, pixelcnn (a PixelCNN over binary images conditioned on "
                        "the decoder network; with --architecture=resnet_vae Xu et al.'s "
                        "PixelVAE), gaussian, logit_normal, categorical, known.")
    flags.DEFINE_boolean("skip", False, "Decoder skip connection: one affine layer from z to "
                         "the output (Morningstar et al., B.2).")
    flags.DEFINE_float("beta", 1.0, "Weight of log r(z) - log q(z|x) in the log-weights.")
    flags.DEFINE_boolean("stl", False, "Sticking the landing: drop the score term of log q.")
    # Data.
    flags.DEFINE_string("dataset", "digits", "Data set name (offline: digits, abs_toy, "
                        "linear_gaussian, gmm2d; TFDS: mnist, binarized_mnist, fashion_mnist, "
                        "omniglot, cifar10).")
    flags.DEFINE_string("data_dir", None, "TFDS data directory (nothing is downloaded).")
    flags.DEFINE_string("view", "full", "Encoder input: full, single_column (centre column), "
                        "pca20 (any data set: the first 20 principal components, fitted on "
                        "the training split only and refitted identically by tfvi-eval; "
                        "input and target are the 20-D codes, scored by a Gaussian "
                        "likelihood with a learned per-dimension variance, so NLLs are in "
                        "nats of the codes, not of the pixels; --architecture=mlp).")
    flags.DEFINE_string("target", "input", "Likelihood target: input, label, "
                        "same_class_random.")
    flags.DEFINE_float("validation_fraction", 0.0,
                       "Fraction of the training split held out for validation, in [0, 1).")
    flags.DEFINE_integer("early_stopping_patience", 0, "Stop when the validation loss has not "
                         "improved for this many epochs, counted from the end of any "
                         "warm-up (--prior_training=posthoc|iterative: from its last "
                         "phase), and restore the best weights (0: off; needs "
                         "--validation_fraction > 0).")
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
    flags.DEFINE_string("jit_compile", "auto", "XLA for the train step: auto "
                        "(tfvi.precision.default_jit_compile: on for dense networks, off for "
                        "convolutional ones and under a --strategy), true, false.")
    flags.DEFINE_string("precision", "auto", "Numeric precision of the networks: "
                        + ", ".join(precision.PRECISIONS) + " (auto: tfvi.precision decides "
                        "per --architecture; heads, densities and bounds stay float32). The "
                        "resolved policy is recorded in metrics.json (\"runtime\").")
    # Run control.
    flags.DEFINE_string("workdir", "runs/tfvi", "Output directory: metrics.json, checkpoints/, "
                        "tensorboard/, plots/, export/. Rerunning resumes from it.")
    flags.DEFINE_boolean("overwrite", False, "Delete a workdir written with different flags "
                         "instead of refusing it.")
    flags.DEFINE_integer("eval_iwae_samples", 1000, "k of the final IWAE-k NLL estimate.")
    flags.DEFINE_integer("eval_max_examples", 1000, "Examples per split for the final "
                         "evaluation (the first ones; 0: all).")
    flags.DEFINE_list("eval_splits", list(run_config.EVAL_SPLITS), "Splits of the final "
                      "evaluation in metrics.json (bounds, IWAE-k NLL, active units, "
                      "representation metrics), of train, validation, test; one the data "
                      "lacks is skipped. k-NN accuracy fits on the train codes either way.")
    flags.DEFINE_integer("ksg_points", 3000, "At most this many (x, z ~ q(z|x)) pairs per "
                         "split for the KSG mutual information every latent-variable "
                         "family reports (with k-NN accuracy and reconstruction RMSE).")
    flags.DEFINE_integer("checkpoint_keep", 2, "Checkpoints kept in checkpoints/.")
    flags.DEFINE_float("checkpoint_every_seconds", 30.0, "Checkpoint at the end of the "
                       "first epoch that ends this many seconds after the previous "
                       "checkpoint (or the start), and always after the last epoch; 0: "
                       "every epoch (always under --strategy=multi_worker, whose saves are "
                       "collective). A killed run resumes from its newest checkpoint, so "
                       "it retrains at most this much (plus one epoch).")
    flags.DEFINE_boolean("export", True, "Write the SavedModel to workdir/export.")
    flags.DEFINE_boolean("plots", True, "Write plots/*.png.")
    flags.DEFINE_boolean("reevaluate", False, "Recompute and rewrite the outputs "
                         "(metrics.json, model.keras, plots/, export/) of a finished "
                         "workdir from its newest valid checkpoint; without it a finished "
                         "workdir is reported and left unchanged.")
    flags.DEFINE_integer("verbose", 1, "0: quiet, 1: Keras progress bar, 2: one line per epoch.")
    flags.DEFINE_string("architecture", "mlp", "Networks under the encoder/decoder heads "
                        "(image data sets; flat inputs and label targets keep the MLP): mlp "
                        "(--encoder_hidden/--decoder_hidden), dense_vae, conv_vae, resnet_vae "
                        "(Xu et al., B.2, for 28x28 images), conv (Morningstar et al.'s "
                        "TFP-example networks), conv_hvae / conv_hvae_pixelcnn (Livne et al.'s "
                        "two-level convHVAE / PixelHVAE after Tomczak & Welling, "
                        "tfvi.layers.conv_hvae: its own encoder, decoder and prior; image data, "
                        "--posterior=gaussian, --prior=normal|vamp on z2, --latent_dim split "
                        "into z1 and z2, --model=vae|mim|amim).")
    flags.DEFINE_float("hvae_width", 0.5, "--architecture=conv_hvae*: multiplier of every "
                       "channel count and dense width (1.0: the paper's 32/64 channels and "
                       "300 units).")
    flags.DEFINE_float("min_scale", 0.0, "Floor on the standard deviations of the Gaussian "
                       "or mixture posterior (q(z2|x) of conv_hvae*): 0 (none) or > 0; 0.05 "
                       "is Livne et al.'s log-variance clamp at -6.")
    flags.DEFINE_string("preset", None, "Named preset of flag values (explicit flags win): "
                        + ", ".join(sorted(presets.PRESETS)) + ". " + presets.PAPER_SCALE_NOTE)
    define_plugin_flags()
    annotate_family_defaults()


_DEFINE = {"integer": flags.DEFINE_integer, "float": flags.DEFINE_float,
           "string": flags.DEFINE_string, "boolean": flags.DEFINE_boolean}


def define_plugin_flags(flag_values=FLAGS):
    """Defines the `Flag`s registered families and features declare (a name already
    defined, e.g. by tfvi-eval in the same process, is shared)."""
    for name, spec in sorted(plugin_flags().items()):
        if name in flag_values:
            continue
        if spec.kind == "enum":
            flags.DEFINE_enum(name, spec.default, list(spec.choices), spec.help,
                              flag_values=flag_values)
        else:
            _DEFINE[spec.kind](name, spec.default, spec.help, flag_values=flag_values)


def annotate_family_defaults(flag_values=FLAGS):
    """Appends "default per family: ..." to the help of every flag that some
    registered model family sets (so `--helpfull` shows it)."""
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


def read_flags(flag_values=FLAGS):
    """`(values, explicit)`: every tfvi flag's value and the names given explicitly."""
    values = {}
    for name in flag_values:
        if name in ("help", "helpfull", "helpshort", "helpxml", "flagfile", "undefok"):
            continue
        if not (flag_values.find_module_defining_flag(name, None) or "").startswith("tfvi"):
            continue
        value = flag_values[name].value
        values[name] = list(value) if isinstance(value, (list, tuple)) else value
    return values, {name for name in values if flag_values[name].present}


def read_config(flag_values=FLAGS):
    """The validated `RunConfig` of the parsed flags (see the module docstring)."""
    return run_config.resolve(*read_flags(flag_values))


def apply_preset(flag_values=FLAGS):
    """Writes the preset's and the family's defaults into the absl flags not given
    explicitly (for code that reads absl flags directly); returns `{flag: "preset" |
    "family"}`. The launcher itself uses `read_config`."""
    values, explicit = read_flags(flag_values)
    filled, sources = run_config.fill_defaults(values, explicit)
    for name in sources:
        setattr(flag_values, name, filled[name])
    return sources


def validate(flag_values=FLAGS):
    """Raises `FlagError` for a bad flag (`tfvi.launch.config.validate`)."""
    values, explicit = read_flags(flag_values)
    run_config.validate(run_config.RunConfig(values, explicit))


def flag_dict(flag_values=FLAGS, include_run_control=False):
    """The values of every tfvi flag as a JSON-able dict (flags.json without the
    run-control flags)."""
    values, explicit = read_flags(flag_values)
    return run_config.RunConfig(values, explicit).to_dict(include_run_control)


def exit_with_error(prog, message, status=2):
    """One line `<prog>: error: <message>` on stderr, then exit with `status` (2: bad
    usage, 1: the run failed, 130: interrupted)."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(status)


def flags_parser(prog):
    """An absl `flags_parser` for `app.run` that reports a bad flag in one line
    (exit status 2) instead of absl's usage dump."""

    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as err:
            exit_with_error(prog, str(err).splitlines()[0])

    return parse
