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

The run, step by step (`run_job`): flags -> one validated `RunConfig`
(`tfvi.launch.config`) -> strategy, precision and XLA (`Runtime`) -> data -> model
(a pure function of the configuration and the data) -> under the workdir lock:
resume or start, fit, then the outputs (`tfvi.training.outputs`).

Extension points (for new model families, priors, posteriors, strategies)
------------------------------------------------------------------------
Accepted flag values come from registries in `tfvi.launch.registry`:
`--model` (MODELS, `ModelFamily` objects), `--posterior` (POSTERIORS), `--prior`
(PRIORS), `--likelihood` (LIKELIHOODS), `--strategy` (STRATEGIES). To plug in, add a
module to `tfvi/launch/families/` (every module there is imported before flags are
parsed) that calls `register_model(ModelFamily(name=..., build=fn(config, prepared)
-> model, objectives=(...), flags=(Flag(...), ...), features=("burn_in", ...),
check_flags=..., evaluate=..., callbacks=...))`, `register_feature(Feature(...))`,
or `@register_prior("vamp") def f(config, latent_dim, encoder, prepared)`, etc.

The launcher then defines its flags, validates, builds inside the strategy scope,
checkpoints, evaluates, plots and exports the new family with no change here.
`prepared` is a `tfvi.data.datasets.Prepared` (input/target sizes, likelihood,
evaluation arrays).
"""

import contextlib
import os
import sys
import time

# Quiet TF's C++ logging before TensorFlow is imported (tfvi sets the same default).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfvi.launch import families  # noqa: E402
from tfvi.launch import flags as tfvi_flags  # noqa: E402
from tfvi.launch.runtime import resolve_runtime, worker_config  # noqa: E402
from tfvi.training import atomic, faults, outputs  # noqa: E402
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
    tfvi_flags.exit_with_error(PROG, message, status)


def _say(message):
    print(f"{PROG}: {message}", file=sys.stderr)


# ---------------------------------------------------------------- steps
def load_data(config):
    """The prepared data of `--dataset`, `--view`, `--target`, `--likelihood`."""
    from tfvi.launch import components

    try:
        return components.prepare_data(config)
    except ValueError as err:
        raise LaunchError(str(err)) from None


def build_model(config, prepared, runtime):
    """`(model, steps_per_epoch)`: the family's model, compiled with Adam and its
    optimizer variables created inside the strategy scope."""
    import keras

    from tfvi import distribute
    from tfvi.launch import components
    from tfvi.launch.registry import MODELS

    keras.utils.set_random_seed(config.seed)
    steps = components.steps_per_epoch(len(prepared.eval_splits["train"][0]),
                                       config.batch_size)
    with runtime.scope():
        try:
            model = MODELS[config.model].build(config, prepared)
        except ValueError as err:
            raise LaunchError(f"--model={config.model}: {err}") from None
        model.compile(optimizer=keras.optimizers.Adam(components.learning_rate(config, steps)),
                      jit_compile=runtime.jit_compile)
        model.optimizer.build(model.trainable_variables)
    distribute.apply_multi_worker_workarounds(model, runtime.strategy)
    return model, steps


def check_workdir(config, wanted):
    """Refuses a workdir written with different flags (unless --overwrite); returns
    True when it is a workdir of this same run (resume). See
    `tfvi.training.workdir.check_workdir`."""
    try:
        return workdir_lib.check_workdir(config.workdir, wanted, config.overwrite,
                                         present=config.given,
                                         defined=lambda name: name in config)
    except workdir_lib.WorkdirError as err:
        raise RunError(str(err)) from None
    except ValueError as err:
        raise LaunchError(str(err)) from None


@contextlib.contextmanager
def locked_workdir(config, wanted):
    """Holds the workdir's lock (after refusing a directory that is not a workdir)."""
    if workdir_lib.entries(config.workdir) and not os.path.exists(
            os.path.join(config.workdir, "flags.json")):
        check_workdir(config, wanted)  # raises: not a tfvi workdir
    os.makedirs(config.workdir, exist_ok=True)
    lock = lock_lib.WorkdirLock(config.workdir)
    try:
        lock.acquire()
    except lock_lib.WorkdirLockedError as err:
        raise RunError(str(err)) from None
    try:
        yield
    finally:
        lock.release()


def finished_metrics(config):
    """The metrics of a finished workdir of this run (left unchanged), else None."""
    path = os.path.join(config.workdir, "metrics.json")
    if config.reevaluate or not os.path.exists(path):
        return None
    try:
        previous = workdir_lib.read_json(path)
    except workdir_lib.WorkdirError as err:
        _say(f"{err}; recomputing it (the checkpoints are intact)")
        return None
    if previous.get("run_complete", True) is False:
        _say("the previous run stopped while writing its outputs; writing them again "
             "from the newest valid checkpoint")
        return None
    _say(f"{config.workdir} is finished ({previous.get('epochs_trained', '?')} epochs, "
         "metrics.json); left unchanged. Pass --reevaluate to recompute and rewrite its "
         "outputs.")
    return previous


def restore(config, model, manager, runtime):
    """The newest valid checkpoint's state (its weights loaded into `model`), or None."""
    with runtime.scope():
        state = workdir_lib.restore_newest_valid(manager, model, report=_say)
    if state and config.verbose:
        print(f"{PROG}: resuming {config.workdir} from epoch {min(state['epoch'], config.epochs)} "
              f"(global step {state.get('global_step')})")
    return state


def fit_data(config, prepared, steps, initial_epoch):
    """`(train, validation)` datasets. One seeded stream of batches over all epochs
    (`steps` batches each): a resumed run skips the batches of the finished epochs, so
    it sees exactly the batches (order, dynamic binarisation) an uninterrupted run sees."""
    import tensorflow as tf

    train = prepared.train_dataset(config.batch_size, repeat=True).skip(initial_epoch * steps)
    if "validation" not in prepared.eval_splits:
        return train, None
    vx, vy, _ = prepared.eval_splits["validation"]
    return train, tf.data.Dataset.from_tensor_slices(vx if vy is None else (vx, vy)).batch(
        config.batch_size)


# TensorBoard images at most this often (and for the last epoch): see ImageSummaries.
IMAGE_SUMMARY_SECONDS = 30.0


def fit_callbacks(config, model, prepared, checkpoint, timing):
    """The family's features' and its own callbacks, then the run's: early stopping (from
    the end of the warm-ups; `checkpoint.early_stopping`), NaN guard, timing,
    checkpoint, TensorBoard, fault points (tests), image summaries and the
    multi-worker watchdog. Created only when training runs (TensorBoard writers
    make files)."""
    from tfvi import training
    from tfvi.launch import figures
    from tfvi.launch.registry import MODELS, family_features

    family = MODELS[config.model]
    cbs = []
    for plugin in family_features(family) + [family]:
        if plugin.callbacks is not None:
            cbs += list(plugin.callbacks(model, prepared, config))
    if checkpoint.early_stopping is not None:
        # Counted from the end of the warm-ups: a warm-up epoch's val_loss (beta < 1)
        # is lower than the full bound's and would be restored as the best. Before the
        # checkpoint, which saves its judgement of the same epoch.
        checkpoint.early_stopping.start_from_epoch = training.objective_settled_epoch(cbs)
        cbs.append(checkpoint.early_stopping)
    cbs += [training.NaNGuard(), timing, checkpoint,
            training.TensorBoardScalars(os.path.join(config.workdir, "tensorboard"))]
    if any(os.environ.get(v) for v in (faults.KILL_ENV, faults.RAISE_ENV, faults.WAIT_ENV)):
        cbs.append(training.FaultPoints())
    x_test, y_test, _ = prepared.eval_splits["test"]
    if (prepared.bundle.image_shape is not None and prepared.target != "label"
            and figures.has_mean_images(model)):
        cbs.append(training.ImageSummaries(
            os.path.join(config.workdir, "tensorboard", "images"), x_test,
            x_test if y_test is None else y_test, prepared.bundle.image_shape,
            seed=config.seed, min_seconds=IMAGE_SUMMARY_SECONDS))
    if config.strategy == "multi_worker":
        # A dead peer normally surfaces as UnavailableError (see `fit`); this is the
        # backstop if the collective hangs instead.
        cbs.append(training.PeerWatchdog(config.worker_timeout_seconds + 30.0))
    return cbs


def fit(config, model, train_ds, val_ds, steps, initial_epoch, callbacks):
    """`model.fit` from `initial_epoch`, its failures translated into one-line errors."""
    import tensorflow as tf

    from tfvi import training

    try:
        model.fit(train_ds, epochs=config.epochs, initial_epoch=initial_epoch,
                  steps_per_epoch=steps, validation_data=val_ds, callbacks=callbacks,
                  verbose=config.verbose, shuffle=False)
    except training.NonFiniteLossError as err:
        raise RunError(f"training stopped: {err}") from None
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError, tf.errors.InternalError) as err:
        if config.strategy != "multi_worker":
            raise
        training.PeerWatchdog.cancel()
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise RunError(f"training stopped: a worker of the --strategy=multi_worker "
                       f"cluster failed or stopped responding ({type(err).__name__}: "
                       f"{first}); the last complete checkpoint in {config.workdir}/"
                       "checkpoints is intact: rerun the same command on every worker "
                       "(or with --strategy=default) to resume.") from None


def check_trained_weights(model):
    """A RunError before any output is written when a weight is NaN/inf."""
    bad = workdir_lib.weights_finite(model)
    if bad:
        raise RunError(f"the trained weights are non-finite ({len(bad)} tensors, e.g. "
                       f"{bad[0]}); nothing was written: metrics.json, model.keras and "
                       "export/ are unchanged.")


def _stopped_early_before(config):
    """Whether the workdir's finished metrics.json records fewer epochs than --epochs."""
    try:
        previous = workdir_lib.read_json(os.path.join(config.workdir, "metrics.json"))
    except workdir_lib.WorkdirError:
        return False
    return bool(previous.get("run_complete")) and \
        previous.get("epochs_trained", config.epochs) < config.epochs


def resumed_early_stopping(config, prepared, model, state):
    """The early-stopping callback (None when off) with the state of the checkpoint
    resumed from: the best epoch, the epochs waited, whether it had stopped, and the
    best weights (the checkpoint's own, or the copy saved with it). Its patience is
    `--early_stopping_patience`, else the family's own (`ModelFamily.
    early_stopping_patience`, e.g. MIM's)."""
    from tfvi import training
    from tfvi.launch.registry import MODELS
    from tfvi.training.checkpointing import EARLY_STOPPING_BEST

    family_patience = MODELS[config.model].early_stopping_patience
    patience = config.early_stopping_patience or (
        family_patience(config, prepared) if family_patience is not None else 0)
    if not patience:
        return None
    early_stopping = training.ResumableEarlyStopping(patience)
    saved = state.get("early_stopping")
    if not saved and state and config.reevaluate and _stopped_early_before(config):
        raise RunError(
            f"--reevaluate: {config.workdir} stopped early before its checkpoints held "
            "early stopping's state, so its best epoch's weights are only in model.keras; "
            f"evaluate that with `tfvi-eval --path={config.workdir}` (nothing was changed).")
    if saved:
        best = (model.get_weights() if saved["best_is_current"]
                else state.get("arrays", {}).get(EARLY_STOPPING_BEST))
        early_stopping.set_state(saved, best if saved["has_best_weights"] else None)
    return early_stopping


def train_in_workdir(config, model, prepared, runtime, steps, start):
    """Under the workdir lock: resume or start, fit, write the outputs."""
    from tfvi import training
    from tfvi.launch import figures
    from tfvi.launch.registry import MODELS

    wanted = config.to_dict()
    resuming = check_workdir(config, wanted)
    previous = finished_metrics(config) if resuming else None
    if previous:
        return previous
    atomic.sweep(config.workdir)
    atomic.write_json(os.path.join(config.workdir, "flags.json"), wanted, "flags")
    manager = training.CheckpointManager(os.path.join(config.workdir, "checkpoints"),
                                               keep=config.checkpoint_keep)
    state = restore(config, model, manager, runtime) if resuming else None
    state = state or {}
    initial_epoch = min(state.get("epoch", 0), config.epochs)
    # Multi-worker saves are collective: every worker must save at the same epochs,
    # which their own clocks would not agree on.
    every = 0.0 if config.strategy == "multi_worker" else config.checkpoint_every_seconds
    early_stopping = resumed_early_stopping(config, prepared, model, state)
    checkpoint = training.CheckpointCallback(manager, state.get("history", {}),
                                             min_seconds=every, early_stopping=early_stopping)
    timing = training.TrainTiming(checkpoint.extra_state, state.get("train_seconds", 0.0))
    stopped = early_stopping is not None and early_stopping.stopped
    if initial_epoch < config.epochs and not stopped:
        train_ds, val_ds = fit_data(config, prepared, steps, initial_epoch)
        fit(config, model, train_ds, val_ds, steps, initial_epoch,
            fit_callbacks(config, model, prepared, checkpoint, timing))
    if early_stopping is not None:
        early_stopping.restore_best(model)
    check_trained_weights(model)
    train_seconds = checkpoint.extra_state.get("train_seconds", timing.previous_seconds)
    return outputs.write_outputs(config, model, prepared, MODELS[config.model],
                                 checkpoint.history, train_seconds, start,
                                 figures.write_plots, PROG, runtime=runtime.as_dict())


def run_job(config):
    """Runs the whole job for a validated `RunConfig`; returns the metrics dict."""
    import keras

    from tfvi.launch.registry import STRATEGIES

    start = time.time()
    strategy = STRATEGIES[config.strategy](config)
    previous_policy = keras.config.dtype_policy()
    try:
        with worker_config(config, strategy) as config:
            runtime = resolve_runtime(config, strategy)
            prepared = load_data(config)
            model, steps = build_model(config, prepared, runtime)
            # Everything above only reads; from here on the workdir is written, locked.
            with locked_workdir(config, config.to_dict()):
                return train_in_workdir(config, model, prepared, runtime, steps, start)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def train(flag_values):
    """Runs the whole job for parsed absl flags; returns the metrics dict."""
    return run_job(tfvi_flags.read_config(flag_values))


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


parse_flags = tfvi_flags.flags_parser(PROG)


def setup():
    families.import_all()
    tfvi_flags.define_flags()


def run():
    setup()
    tfvi_flags.declare_key_flags()  # --help lists tfvi's flags
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
