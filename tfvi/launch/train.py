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
                      wall time, versions, all flags

Rerunning the same command resumes from the newest checkpoint (also after SIGKILL).

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
import json
import os
import platform
import shutil
import sys
import time

# Quiet TF's C++ logging before TensorFlow is imported (tfvi sets the same default).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfvi.launch import families  # noqa: E402
from tfvi.launch import flags as tfvi_flags  # noqa: E402

FLAGS = flags.FLAGS
PROG = "tfvi-train"


class LaunchError(Exception):
    """A user error: printed as one line, exit status 2."""


def _error(message, status=2):
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(status)


# ---------------------------------------------------------------- workdir
def check_workdir(workdir, wanted, overwrite):
    """Refuses a workdir written with different flags (unless overwrite); returns
    True when it is a workdir of this same run (resume)."""
    flags_path = os.path.join(workdir, "flags.json")
    if not os.path.exists(workdir) or not os.listdir(workdir):
        return False
    if not os.path.exists(flags_path):
        raise LaunchError(f"--workdir={workdir} exists, is not empty and is not a tfvi "
                          "workdir (no flags.json); choose another --workdir.")
    with open(flags_path) as f:
        previous = json.load(f)
    # A flag the stored run did not have and this command leaves at its default (a flag
    # added since, or tfvi-eval's flags when both launchers share one process) changes
    # nothing about the run.
    wanted = {k: v for k, v in wanted.items()
              if k in previous or (k in FLAGS and FLAGS[k].present)}
    if previous == wanted:
        return True
    if overwrite:
        shutil.rmtree(workdir)
        return False
    changed = sorted(set(previous) | set(wanted))
    diffs = [f"--{k}: {previous.get(k)!r} -> {wanted.get(k)!r}" for k in changed
             if previous.get(k) != wanted.get(k)]
    raise LaunchError(f"--workdir={workdir} was written with different flags "
                      f"({'; '.join(diffs[:6])}); use another --workdir or pass --overwrite.")


def versions():
    import keras
    import numpy
    import tensorflow as tf
    import tensorflow_probability as tfp

    import tfvi

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "tensorflow_probability": tfp.__version__, "keras": keras.__version__,
            "numpy": numpy.__version__, "tfvi": tfvi.__version__}


# ---------------------------------------------------------------- evaluation
def evaluate_splits(model, prepared, f):
    """Final metrics per split: the bounds (model.evaluate), IWAE-k NLL, active units."""
    import numpy as np
    import tensorflow as tf

    from tfvi import evaluation

    results = {}
    for split in ("train", "validation", "test"):
        if split not in prepared.eval_splits:
            continue
        x, y, _ = prepared.eval_splits[split]
        n = len(x) if not f.eval_max_examples else min(len(x), f.eval_max_examples)
        x = x[:n]
        y = None if y is None else y[:n]
        ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y)).batch(
            f.batch_size)
        bound_values = model.evaluate(ds, verbose=0, return_dict=True)
        out = {k: float(v) for k, v in bound_values.items()}
        if hasattr(model, "log_weight_terms"):
            ll = evaluation.iwae_log_likelihood(model, x, num_samples=f.eval_iwae_samples,
                                                batch_size=f.batch_size, y=y, seed=f.seed)
            out[f"iwae_{f.eval_iwae_samples}_log_likelihood"] = float(np.mean(ll))
            out["nll"] = -float(np.mean(ll))
        if hasattr(model, "encoder") and len(x) > 1:
            variances = evaluation.posterior_mean_variance(model, x)
            out["active_units"] = int(np.sum(variances > 1e-2))
        out["num_examples"] = int(n)
        results[split] = out
    return results


def _component_modes_plot(model, prepared, x, target, plot_dir):
    """Seed 000's C.3 / C.7 template figure: the decoded mode (C.3) or mean (C.7, the
    style view) of each mixture component, next to the input image when the encoder
    sees a whole image, else next to the target."""
    import numpy as np

    from tfvi.evaluation import modes

    shape = prepared.bundle.image_shape
    labels = prepared.eval_splits["test"][2]
    rows = np.arange(min(8, len(x)))
    if labels is not None:  # one example per class where possible
        rows = np.argsort(labels, kind="stable")[::max(1, len(labels) // 8)][:8]
    shows_input = x.shape[1] == int(np.prod(shape))
    kind = "mean" if prepared.target == "same_class_random" else "mode"
    path = os.path.join(plot_dir, "component_modes.png")
    fig = modes.plot_component_modes(
        model, x[rows], shape, targets=(x if shows_input else target)[rows], path=path,
        kind=kind, targets_title="input" if shows_input else "target",
        title=f"decoded component {kind}s (seed 000 C.3/C.7)")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_plots(model, prepared, f, history, plot_dir):
    import numpy as np

    from tfvi import plots

    written = []
    bundle = prepared.bundle
    x, y, labels = prepared.eval_splits["test"]
    target = x if y is None else y
    image_target = bundle.image_shape is not None and prepared.target != "label"
    if image_target and hasattr(model, "prior"):
        written.append(plots.sample_grid(model, bundle.image_shape,
                                         os.path.join(plot_dir, "samples.png"), seed=f.seed))
        written.append(plots.reconstruction_grid(model, x, target, bundle.image_shape,
                                                 os.path.join(plot_dir, "reconstructions.png")))
    written.append(plots.latent_scatter(model, x, labels, os.path.join(plot_dir, "latent.png")))
    if image_target and getattr(model.encoder, "num_components", 1) > 1:
        written.append(_component_modes_plot(model, prepared, x, target, plot_dir))
    curves = plots.training_curves(history, os.path.join(plot_dir, "training_curves.png"))
    if curves:
        written.append(curves)
    if model.latent_dim == 2 and hasattr(model, "log_weight_terms") and y is None:
        # The |z| toy's x = (1, ..., 1) has a posterior mode in every orthant.
        x0 = np.ones(x.shape[1], np.float32) if bundle.name == "abs_toy" else x[0]

        def model_log_posterior(z):
            return (model.decoder(z).log_prob(x0) + model.prior().log_prob(z)).numpy()

        written.append(plots.posterior_density(model, x0,
                                               os.path.join(plot_dir, "posterior_density.png"),
                                               true_log_posterior=model_log_posterior))
    return written


def _summary_table(metrics, k):
    rows = []
    header = f"{'split':<11}{'loss':>10}{'elbo':>10}{'recon':>10}{'kl':>9}" \
             f"{'NLL(IWAE-' + str(k) + ')':>16}{'active':>8}"
    rows.append(header)
    for split in ("train", "validation", "test"):
        m = metrics.get(split)
        if not m:
            continue

        def g(name, fmt="{:10.3f}"):
            v = m.get(name)
            return fmt.format(v) if v is not None else f"{'-':>{len(fmt.format(0.0))}}"

        rows.append(f"{split:<11}{g('loss')}{g('elbo')}{g('reconstruction')}"
                    f"{g('kl', '{:9.3f}')}{g('nll', '{:16.3f}')}{g('active_units', '{:8d}')}")
    return "\n".join(rows)


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
            "tensorboard", "plots", "export", "metrics.json"))
    f.workdir = copy


# ---------------------------------------------------------------- main
def train(f):
    """Runs the whole job for parsed flags `f`; returns the metrics dict."""
    start = time.time()
    tfvi_flags.apply_preset(f)
    tfvi_flags.validate(f)

    import keras
    import tensorflow as tf

    from tfvi import callbacks as tfvi_callbacks
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

    # Everything above only reads; from here on the workdir is written.
    wanted = tfvi_flags.flag_dict(f)
    resuming = check_workdir(f.workdir, wanted, f.overwrite)
    os.makedirs(f.workdir, exist_ok=True)
    tfvi_callbacks.write_json_atomic(os.path.join(f.workdir, "flags.json"), wanted)
    manager = tfvi_callbacks.CheckpointManager(os.path.join(f.workdir, "checkpoints"),
                                               keep=f.checkpoint_keep)
    state = None
    if resuming:
        with scope:
            state = manager.restore(model)
    initial_epoch = state["epoch"] if state else 0
    history = state["history"] if state else {}
    previous_train_seconds = state.get("train_seconds", 0.0) if state else 0.0
    if state and f.verbose:
        print(f"{PROG}: resuming {f.workdir} from epoch {initial_epoch} "
              f"(global step {state['global_step']})")

    train_ds = prepared.train_dataset(f.batch_size)
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
    cbs = [tfvi_callbacks.NaNGuard(), _Timing(), ckpt,
           tfvi_callbacks.TensorBoardScalars(os.path.join(f.workdir, "tensorboard"))]
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
    if initial_epoch < f.epochs:
        try:
            model.fit(train_ds, epochs=f.epochs, initial_epoch=initial_epoch,
                      validation_data=val_ds, callbacks=cbs, verbose=f.verbose,
                      shuffle=False)
        except tfvi_callbacks.NonFiniteLossError as err:
            _error(f"training stopped: {err}", status=1)
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                tf.errors.CancelledError, tf.errors.InternalError) as err:
            if f.strategy != "multi_worker":
                raise
            from tfvi.distribute import PeerWatchdog

            PeerWatchdog.cancel()
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            _error(f"training stopped: a worker of the --strategy=multi_worker cluster "
                   f"failed or stopped responding ({type(err).__name__}: {first}); the "
                   f"last complete checkpoint in {f.workdir}/checkpoints is intact: "
                   "rerun the same command on every worker (or with --strategy=default) "
                   "to resume.", status=1)
    train_seconds = ckpt.extra_state.get("train_seconds", previous_train_seconds)

    eval_start = time.time()
    metrics = evaluate_splits(model, prepared, f)
    if family.evaluate is not None:
        for split, extra in family.evaluate(model, prepared, f).items():
            metrics.setdefault(split, {}).update(extra)
    metrics["estimators"] = {
        "bounds": {"objective": f.objective, "samples_per_component": f.samples,
                   "components": int(getattr(model, "num_components", 1)),
                   "beta": f.beta, "note": "model.evaluate: mean over examples, one "
                   "draw of the training bound's samples"},
        "nll": {"estimator": "iwae", "num_samples": f.eval_iwae_samples,
                "stratified": True, "seed": f.seed, "log_mean_exp": "float64"},
        "active_units": {"threshold": 1e-2, "statistic": "Var_x E_q[z_u]"},
        "data": {"dataset": f.dataset,
                 "binarization": "dynamic in training, fixed seeded draw for evaluation"
                 if prepared.binarization == "dynamic" else prepared.binarization,
                 "view": prepared.view, "target": prepared.target,
                 "likelihood": prepared.likelihood,
                 "eval_max_examples": f.eval_max_examples},
    }
    if family.estimators is not None:
        metrics["estimators"].update(family.estimators(f, model))
    metrics["history"] = ckpt.history
    metrics["epochs_trained"] = len(next(iter(ckpt.history.values()), []))
    metrics["num_parameters"] = int(sum(int(v.numpy().size) for v in model.trainable_variables))
    plot_files = []
    if f.plots:
        plot_dir = os.path.join(f.workdir, "plots")
        plot_files = write_plots(model, prepared, f, ckpt.history, plot_dir)
        if family.plots is not None:
            plot_files += list(family.plots(model, prepared, f, plot_dir))
    if f.export and family.exportable:
        from tfvi.export import export_model

        target_spec = None
        if y_test is not None:
            target_spec = (tf.TensorSpec([None], tf.int32) if prepared.target == "label"
                           else tf.TensorSpec([None, *tf.nest.flatten(prepared.target_dim)],
                                              tf.float32))
        export_model(model, os.path.join(f.workdir, "export"), target_spec,
                     metadata={"flags": tfvi_flags.flag_dict(f, include_run_control=True)})
    metrics["wall_time_seconds"] = {"train": train_seconds,
                                    "evaluation_plots_export": time.time() - eval_start,
                                    "this_invocation": time.time() - start}
    metrics["versions"] = versions()
    metrics["flags"] = tfvi_flags.flag_dict(f, include_run_control=True)
    metrics["plots"] = [os.path.relpath(p, f.workdir) for p in plot_files]
    tfvi_callbacks.write_json_atomic(os.path.join(f.workdir, "metrics.json"), metrics)
    if f.verbose:
        print(_summary_table(metrics, f.eval_iwae_samples))
        print(f"{PROG}: wrote {f.workdir} (metrics.json, checkpoints/, tensorboard/, "
              f"plots/, export/) in {time.time() - start:.0f} s")
    return metrics


def main(argv):
    from absl import logging

    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines are noise here
    if len(argv) > 1:
        _error(f"unexpected arguments {argv[1:]}; every option is a --flag (see --help).")
    try:
        train(FLAGS)
    except (tfvi_flags.FlagError, LaunchError) as err:
        _error(str(err))


def parse_flags(argv):
    """absl parsing that reports a bad flag in one line (exit status 2)."""
    try:
        return FLAGS(argv)
    except flags.Error as err:
        _error(str(err).splitlines()[0])


def setup():
    families.import_all()
    tfvi_flags.define_flags()


def run():
    setup()
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
