"""`tfvi-train` (= `python -m tfvi.launch.train`): train a model from flags into a workdir.

With no flags it runs the main job: a SIWAE mixture-posterior VAE on the bundled
digits (`--preset=digits_siwae`). A run writes into `--workdir`:

    flags.json        the flags that define the run (a rerun must match, or --overwrite)
    checkpoints/      epoch-NNNNN/{model.weights.h5, state.json}, written atomically
    tensorboard/      per-epoch scalars (train/, validation/) and images/ (samples,
                      reconstructions)
    plots/*.png       samples, reconstructions, latent scatter, training curves,
                      q(z|x) density for 2-D latents, decoded mixture components,
                      the VIB's reliability diagram
    export/           SavedModel (see tfvi.export) + tfvi.json
    metrics.json      final train/validation/test metrics with their estimator settings,
                      wall time, versions, all flags (strict JSON: NaN/inf -> null)
    model.keras       the trained model (`tfvi.load_workdir(workdir)` loads it)
    data_spec.json    the data the model expects (dataset, likelihood, shapes)
    .lock             held while a run writes (pid and host of the holder)

Rerunning the same command resumes from the newest valid checkpoint (also after
SIGKILL); a finished workdir is left unchanged unless --reevaluate is given. Order:
metrics.json, model.keras and data_spec.json first, then the optional plots/ and
export/; a failing optional step prints one warning line and the run exits 0 with
the metrics kept. Exit status: 0 done, 1 runtime failure, 2 bad flags, 130 Ctrl-C.
See docs/reliability.md.

Extension points (for new model families, priors, posteriors, strategies)
------------------------------------------------------------------------
Accepted flag values come from registries in `tfvi.launch.registry`:
`--model` (MODELS, `ModelFamily` objects), `--posterior` (POSTERIORS), `--prior`
(PRIORS), `--likelihood` (LIKELIHOODS), `--strategy` (STRATEGIES). To plug in, add a
module to `tfvi/launch/families/` (every module there is imported before flags are
parsed) that

1. defines its own absl flags (`flags.DEFINE_integer("ais_temperatures", ...)`),
2. calls `register_model(ModelFamily(name=..., build=fn(flags, prepared) -> model,
   objectives=(...), check_flags=..., evaluate=..., callbacks=...))`, or
   `@register_prior("vamp") def f(flags, latent_dim, encoder, prepared)`, etc.

The launcher then validates, builds inside the strategy scope, checkpoints,
evaluates, plots and exports the new family with no change here. `prepared` is a
`tfvi.data.datasets.Prepared` (input/target sizes, likelihood, evaluation arrays).
"""

import contextlib
import os
import shutil
import sys
import time

# Quiet TF's C++ logging before TensorFlow is imported (tfvi sets the same default).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfvi.launch import families  # noqa: E402
from tfvi.launch import flags as tfvi_flags  # noqa: E402
from tfvi.training import atomic, faults, outputs  # noqa: E402
from tfvi.training.outputs import evaluate_splits, versions  # noqa: E402,F401
from tfvi.training import lock as lock_lib  # noqa: E402
from tfvi.training import workdir as workdir_lib  # noqa: E402

FLAGS = flags.FLAGS
PROG = "tfvi-train"


class LaunchError(Exception):
    """A user error: printed as one line, exit status 2."""


class RunError(Exception):
    """A runtime failure (locked or corrupt workdir, bad data, divergence): one line,
    exit status 1."""


def _error(message, status=2):
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(status)


# ---------------------------------------------------------------- workdir
def check_workdir(workdir, wanted, overwrite):
    """Refuses a workdir written with different flags (unless overwrite); returns
    True when it is a workdir of this same run (resume). See
    `tfvi.training.workdir.check_workdir`."""
    try:
        return workdir_lib.check_workdir(
            workdir, wanted, overwrite, present=lambda k: k in FLAGS and FLAGS[k].present,
            defined=lambda k: k in FLAGS)
    except workdir_lib.WorkdirError as err:
        raise RunError(str(err)) from None
    except ValueError as err:
        raise LaunchError(str(err)) from None


# ---------------------------------------------------------------- evaluation
def _component_modes_plot(model, prepared, x, target, plot_dir, run=None):
    """Morningstar et al.'s C.3 / C.7 template figure: the decoded mode (C.3) or mean (C.7, the
    style view) of each mixture component, next to the input image when the encoder
    sees a whole image, else next to the target."""
    import numpy as np

    from tfvi import plots

    shape = prepared.bundle.image_shape
    labels = prepared.eval_splits["test"][2]
    rows = np.arange(min(8, len(x)))
    if labels is not None:  # one example per class where possible
        rows = np.argsort(labels, kind="stable")[::max(1, len(labels) // 8)][:8]
    shows_input = x.shape[1] == int(np.prod(shape))
    kind = "mean" if prepared.target == "same_class_random" else "mode"
    path = os.path.join(plot_dir, "component_modes.png")
    fig = plots.plot_component_modes(
        model, x[rows], shape, targets=(x if shows_input else target)[rows], path=path,
        kind=kind, targets_title="input" if shows_input else "target",
        title=f"{run + ': ' if run else ''}decoded component {kind}s (Morningstar et al., "
              "ADVI with mixtures, C.3/C.7)")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_plots(model, prepared, f, history, plot_dir):
    import numpy as np

    from tfvi import plots

    written = []
    run = plots.run_name(f)
    bundle = prepared.bundle
    x, y, labels = prepared.eval_splits["test"]
    target = x if y is None else y
    image_target = bundle.image_shape is not None and prepared.target != "label"
    if image_target and hasattr(model, "prior"):
        written.append(plots.sample_grid(model, bundle.image_shape,
                                         os.path.join(plot_dir, "samples.png"), seed=f.seed,
                                         run=run))
        written.append(plots.reconstruction_grid(model, x, target, bundle.image_shape,
                                                 os.path.join(plot_dir, "reconstructions.png"),
                                                 run=run))
    written.append(plots.latent_scatter(model, x, labels, os.path.join(plot_dir, "latent.png"),
                                        run=run))
    if image_target and getattr(model.encoder, "num_components", 1) > 1:
        written.append(_component_modes_plot(model, prepared, x, target, plot_dir, run))
    curves = plots.training_curves(history, os.path.join(plot_dir, "training_curves.png"),
                                   run=run)
    if curves:
        written.append(curves)
    if model.latent_dim == 2 and hasattr(model, "log_weight_terms") and y is None:
        # The |z| toy's x = (1, ..., 1) has a posterior mode in every orthant.
        x0 = np.ones(x.shape[1], np.float32) if bundle.name == "abs_toy" else x[0]
        x_name = ("x = (1, ..., 1)" if bundle.name == "abs_toy" else "test example 0"
                  + ("" if labels is None else f" (label {int(labels[0])})"))

        def model_log_posterior(z):
            return model.log_joint(z, x0).numpy()

        written.append(plots.posterior_density(model, x0,
                                               os.path.join(plot_dir, "posterior_density.png"),
                                               true_log_posterior=model_log_posterior,
                                               x_name=x_name, run=run))
    return written


def _use_worker_workdir(f, strategy):
    """Multi-worker runs: every worker runs the same code (saving uses collectives),
    but only the chief writes `--workdir`; another worker writes a temporary copy
    (seeded with the chief's checkpoints when visible, so a resume starts every worker
    from the same epoch) that is deleted when the process exits."""
    import atexit
    import tempfile

    from tfvi import distribute

    if distribute.is_chief(strategy):
        return
    tmp = tempfile.mkdtemp(prefix="tfvi-worker-")
    atexit.register(shutil.rmtree, tmp, True)
    copy = os.path.join(tmp, "workdir")
    if os.path.exists(os.path.join(f.workdir, "flags.json")):
        shutil.copytree(f.workdir, copy, ignore=shutil.ignore_patterns(
            "tensorboard", "plots", "export", "metrics.json", lock_lib.LOCK_NAME))
    f.workdir = copy


# ---------------------------------------------------------------- main
def train(f):
    """Runs the whole job for parsed flags `f`; returns the metrics dict."""
    start = time.time()
    tfvi_flags.apply_preset(f)
    tfvi_flags.validate(f)
    _check_run_flags(f)

    import keras

    from tfvi.data import datasets
    from tfvi.launch import components
    from tfvi.launch.registry import MODELS, STRATEGIES

    family = MODELS[f.model]
    strategy = STRATEGIES[f.strategy](f)
    _use_worker_workdir(f, strategy)
    jit = {"auto": None, "true": True, "false": False}[f.jit_compile]
    if strategy is not None and jit:
        raise tfvi_flags.FlagError(f"--jit_compile=true is not supported with --strategy="
                                   f"{f.strategy} (XLA fails on distributed variables); "
                                   "accepted: auto, false.")
    try:
        bundle = datasets.load(f.dataset, data_dir=f.data_dir, seed=f.seed,
                               validation_fraction=f.validation_fraction)
        prepared = datasets.prepare(bundle, None if f.likelihood == "auto" else f.likelihood,
                                    f.view, f.target, seed=f.seed,
                                    images=f.architecture != "mlp")
    except ValueError as err:
        raise LaunchError(str(err)) from None
    keras.utils.set_random_seed(f.seed)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    num_train = len(prepared.eval_splits["train"][0])
    steps = components.steps_per_epoch(num_train, f.batch_size)
    with scope:
        try:
            model = family.build(f, prepared)
        except ValueError as err:
            raise LaunchError(f"--model={f.model}: {err}") from None
        optimizer = keras.optimizers.Adam(components.learning_rate(f, steps))
        model.compile(optimizer=optimizer,
                      jit_compile=False if strategy is not None else jit)
        model.optimizer.build(model.trainable_variables)
    from tfvi import distribute

    distribute.apply_multi_worker_workarounds(model, strategy)

    # Everything above only reads; from here on the workdir is written, under its lock.
    wanted = tfvi_flags.flag_dict(f)
    wanted.pop("reevaluate", None)  # run control (defined here, not in flags.py)
    if workdir_lib.entries(f.workdir) and not os.path.exists(
            os.path.join(f.workdir, "flags.json")):
        check_workdir(f.workdir, wanted, f.overwrite)  # raises: not a tfvi workdir
    os.makedirs(f.workdir, exist_ok=True)
    lock = lock_lib.WorkdirLock(f.workdir)
    try:
        lock.acquire()
    except lock_lib.WorkdirLockedError as err:
        raise RunError(str(err)) from None
    try:
        return _train_locked(f, wanted, start, model, prepared, family, scope, steps)
    finally:
        lock.release()


def _check_run_flags(f):
    try:
        workdir_lib.check_workdir_path(f.workdir)
    except ValueError as err:
        raise LaunchError(str(err)) from None
    import math

    for name in ("learning_rate", "beta"):
        if not math.isfinite(getattr(f, name)):
            raise LaunchError(f"--{name}={getattr(f, name)} is not accepted; accepted "
                              "values: finite numbers.")


def _say(message):
    print(f"{PROG}: {message}", file=sys.stderr)


def _train_locked(f, wanted, start, model, prepared, family, scope, steps):
    import keras
    import tensorflow as tf

    from tfvi import training as tfvi_callbacks

    resuming = check_workdir(f.workdir, wanted, f.overwrite)
    metrics_path = os.path.join(f.workdir, "metrics.json")
    if resuming and os.path.exists(metrics_path) and not f.reevaluate:
        try:
            previous = workdir_lib.read_json(metrics_path)
        except workdir_lib.WorkdirError as err:
            _say(f"{err}; recomputing it (the checkpoints are intact)")
            previous = {}
        if previous.get("run_complete", True) is False:
            _say("the previous run stopped while writing its outputs; writing them again "
                 "from the newest valid checkpoint")
        elif previous:
            _say(f"{f.workdir} is finished ({previous.get('epochs_trained', '?')} epochs, "
                 "metrics.json); left unchanged. Pass --reevaluate to recompute and "
                 "rewrite its outputs.")
            return previous
    atomic.sweep(f.workdir)
    atomic.write_json(os.path.join(f.workdir, "flags.json"), wanted, "flags")
    manager = tfvi_callbacks.CheckpointManager(os.path.join(f.workdir, "checkpoints"),
                                               keep=f.checkpoint_keep)
    state = None
    if resuming:
        with scope:
            state = workdir_lib.restore_newest_valid(manager, model, report=_say)
    initial_epoch = min(state["epoch"], f.epochs) if state else 0
    history = state["history"] if state else {}
    previous_train_seconds = state.get("train_seconds", 0.0) if state else 0.0
    if state and f.verbose:
        print(f"{PROG}: resuming {f.workdir} from epoch {initial_epoch} "
              f"(global step {state.get('global_step')})")

    # One seeded stream of batches over all epochs (steps_per_epoch batches each):
    # a resumed run skips the batches of the finished epochs, so it sees exactly the
    # batches (order, dynamic binarisation) an uninterrupted run sees.
    train_ds = prepared.train_dataset(f.batch_size, repeat=True).skip(initial_epoch * steps)
    val_ds = None
    if "validation" in prepared.eval_splits:
        vx, vy, _ = prepared.eval_splits["validation"]
        val_ds = tf.data.Dataset.from_tensor_slices(vx if vy is None else (vx, vy)).batch(
            f.batch_size)
    fit_start = time.time()

    class _Timing(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ckpt.extra_state["train_seconds"] = previous_train_seconds + time.time() - fit_start

    ckpt = tfvi_callbacks.CheckpointCallback(manager, history)

    def fit_callbacks():  # created only when training runs: TensorBoard writers make files
        cbs = [tfvi_callbacks.NaNGuard(), _Timing(), ckpt,
               tfvi_callbacks.TensorBoardScalars(os.path.join(f.workdir, "tensorboard"))]
        if any(os.environ.get(v) for v in (faults.KILL_ENV, faults.RAISE_ENV, faults.WAIT_ENV)):
            cbs.append(tfvi_callbacks.FaultPoints())
        bundle = prepared.bundle
        x_test, y_test, _ = prepared.eval_splits["test"]
        if bundle.image_shape is not None and prepared.target != "label":
            cbs.append(tfvi_callbacks.ImageSummaries(
                os.path.join(f.workdir, "tensorboard", "images"), x_test,
                x_test if y_test is None else y_test, bundle.image_shape, seed=f.seed))
        if f.early_stopping_patience:
            cbs.append(keras.callbacks.EarlyStopping(patience=f.early_stopping_patience,
                                                     restore_best_weights=True))
        if family.callbacks is not None:
            cbs = list(family.callbacks(model, prepared, f)) + cbs
        if f.strategy == "multi_worker":
            from tfvi.distribute import PeerWatchdog

            # A dead peer normally surfaces as UnavailableError (caught below); this is
            # the backstop if the collective hangs instead.
            cbs.append(PeerWatchdog(f.worker_timeout_seconds + 30.0))
        return cbs

    if initial_epoch < f.epochs:
        try:
            model.fit(train_ds, epochs=f.epochs, initial_epoch=initial_epoch,
                      steps_per_epoch=steps, validation_data=val_ds,
                      callbacks=fit_callbacks(),
                      verbose=f.verbose, shuffle=False)
        except tfvi_callbacks.NonFiniteLossError as err:
            raise RunError(f"training stopped: {err}") from None
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                tf.errors.CancelledError, tf.errors.InternalError) as err:
            if f.strategy != "multi_worker":
                raise
            from tfvi.distribute import PeerWatchdog

            PeerWatchdog.cancel()
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise RunError(f"training stopped: a worker of the --strategy=multi_worker "
                           f"cluster failed or stopped responding ({type(err).__name__}: "
                           f"{first}); the last complete checkpoint in {f.workdir}/"
                           "checkpoints is intact: rerun the same command on every worker "
                           "(or with --strategy=default) to resume.") from None
    bad = workdir_lib.weights_finite(model)
    if bad:
        raise RunError(f"the trained weights are non-finite ({len(bad)} tensors, e.g. "
                       f"{bad[0]}); nothing was written: metrics.json, model.keras and "
                       "export/ are unchanged.")
    train_seconds = ckpt.extra_state.get("train_seconds", previous_train_seconds)
    return outputs.write_outputs(f, model, prepared, family, ckpt.history, train_seconds,
                                 start, write_plots, PROG)


def main(argv):
    from absl import logging

    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines are noise here
    if len(argv) > 1:
        _error(f"unexpected arguments {argv[1:]}; every option is a --flag (see --help).")
    from tfvi.data.validation import DataError

    try:
        train(FLAGS)
    except (tfvi_flags.FlagError, LaunchError) as err:
        _error(str(err))
    except (RunError, workdir_lib.WorkdirError, DataError) as err:
        _error(str(err), status=1)
    except atomic.DiskFullError as err:
        _error(str(err), status=1)
    except KeyboardInterrupt:
        _error(f"interrupted; the complete checkpoints in {FLAGS.workdir}/checkpoints and "
               "every finished output are kept, no temporary file is left; rerun the same "
               "command to resume.", status=130)


def parse_flags(argv):
    """absl parsing that reports a bad flag in one line (exit status 2)."""
    try:
        return FLAGS(argv)
    except flags.Error as err:
        _error(str(err).splitlines()[0])


def setup():
    families.import_all()
    tfvi_flags.define_flags()
    if "reevaluate" not in FLAGS:
        flags.DEFINE_boolean("reevaluate", False, "Recompute and rewrite the outputs "
                             "(metrics.json, model.keras, plots/, export/) of a finished "
                             "workdir from its newest valid checkpoint; without it a "
                             "finished workdir is reported and left unchanged.")


def run():
    setup()
    tfvi_flags.declare_key_flags()  # --help lists tfvi's flags
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
