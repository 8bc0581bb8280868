"""The end of a `tfvi-train` run: final metrics, then the outputs in a fixed order.

`write_outputs` evaluates the trained model (`evaluate_splits`) and writes, each
atomically (`tfvi.training.atomic`): `metrics.json` (strict JSON), `model.keras`,
`data_spec.json`; then the optional `plots/` and `export/` directories. A failing
optional step prints one warning line naming what was not written and what was kept;
the run still exits 0 because metrics.json is complete (a full disk and Ctrl-C are
not swallowed). `metrics.json` is rewritten at the end with the plot list and the
wall time of the optional steps.
"""

import os
import platform
import sys
import time

from tfvi.training import atomic
from tfvi.training import workdir as workdir_lib

__all__ = ["EVAL_SPLITS", "evaluate_splits", "final_splits", "versions", "write_outputs"]

# The splits a final evaluation can score, in the order it scores them.
EVAL_SPLITS = ("train", "validation", "test")


def versions():
    import keras
    import numpy
    import tensorflow as tf
    import tensorflow_probability as tfp

    import tfvi

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "tensorflow_probability": tfp.__version__, "keras": keras.__version__,
            "numpy": numpy.__version__, "tfvi": tfvi.__version__}


def final_splits(prepared, f):
    """`[(split, (x, y, labels))]` of the final evaluation: the `--eval_splits` the
    data has, in train, validation, test order (all three for a configuration that
    predates the flag)."""
    wanted = getattr(f, "eval_splits", None) or EVAL_SPLITS
    return [(split, prepared.eval_splits[split]) for split in EVAL_SPLITS
            if split in wanted and split in prepared.eval_splits]


def evaluate_splits(model, prepared, f):
    """Final metrics per split (`final_splits`): the bounds (model.evaluate), IWAE-k
    NLL, active units."""
    import numpy as np
    import tensorflow as tf

    from tfvi import evaluation

    # Each split's bounds start from the same sampling state, so a split's figures do
    # not depend on which splits were evaluated before it (--eval_splits).
    generator = getattr(model, "seed_generator", None)
    start_state = None if generator is None else generator.state.numpy()
    results = {}
    for split, (x, y, _) in final_splits(prepared, f):
        if generator is not None:
            generator.state.assign(start_state)
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


def write_outputs(f, model, prepared, family, history, train_seconds, start, write_plots,
                  prog, runtime=None):
    """metrics.json, model.keras and data_spec.json, then the optional plots/ and
    export/ (each failure: one warning line, the rest kept), then the run's HParams in
    tensorboard/. `f` is the run configuration (`tfvi.launch.config.RunConfig`);
    `write_plots(model, prepared, f, history, plot_dir)` comes from the launcher;
    `runtime` (the resolved precision, XLA, replicas) is recorded as metrics.json's
    "runtime". Prints the family's summary table and a closing line naming only what
    was written. Returns the metrics dict."""
    import tensorflow as tf

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
    metrics["history"] = history
    metrics["epochs_trained"] = len(next(iter(history.values()), []))
    metrics["num_parameters"] = int(sum(int(v.numpy().size) for v in model.trainable_variables))
    metrics["versions"] = versions()
    metrics["flags"] = f.to_dict(include_run_control=True)
    metrics["runtime"] = dict(runtime or {})
    metrics["plots"] = []
    metrics["run_complete"] = False  # True once every output below is written
    metrics["wall_time_seconds"] = {"train": train_seconds,
                                    "evaluation": time.time() - eval_start,
                                    "this_invocation": time.time() - start}
    metrics_path = os.path.join(f.workdir, "metrics.json")
    atomic.write_json(metrics_path, metrics, "metrics")
    atomic.write_with(os.path.join(f.workdir, workdir_lib.MODEL_FILE), model.save, "model")
    atomic.write_json(os.path.join(f.workdir, workdir_lib.DATA_SPEC_FILE),
                      workdir_lib.data_spec(prepared), "data_spec")
    written = ["metrics.json", "model.keras", "checkpoints/", "tensorboard/"]
    optional_start = time.time()
    if f.plots:
        def plots(tmp):
            files = write_plots(model, prepared, f, history, tmp)
            if family.plots is not None:
                files += list(family.plots(model, prepared, f, tmp))
            metrics["plots"] = [f"plots/{os.path.relpath(p, tmp)}" for p in files]

        if _optional("plots", f, prog, lambda: _in_directory("plots", f, plots)):
            written.append("plots/")
    if f.export and family.exportable:
        from tfvi.export import export_model

        target_spec = None
        y_test = prepared.eval_splits["test"][1]
        if y_test is not None:
            target_spec = (tf.TensorSpec([None], tf.int32) if prepared.target == "label"
                           else tf.TensorSpec([None, *tf.nest.flatten(prepared.target_dim)],
                                              tf.float32))
        if _optional("export", f, prog, lambda: export_model(
                model, os.path.join(f.workdir, "export"), target_spec,
                metadata={"flags": f.to_dict(include_run_control=True)})):
            written.append("export/")
    metrics["wall_time_seconds"].update(optional_steps=time.time() - optional_start,
                                        this_invocation=time.time() - start)
    metrics["run_complete"] = True
    atomic.write_json(metrics_path, metrics, "metrics")
    from tfvi.training.tensorboard import write_hparams

    if not _optional("tensorboard hparams", f, prog, lambda: write_hparams(
            os.path.join(f.workdir, "tensorboard"), metrics)):
        written.remove("tensorboard/")
    if f.verbose:
        from tfvi.launch import report

        print(report.summary_table(metrics, f.eval_iwae_samples, family.summary_metrics))
        print(report.closing_line(prog, f.workdir, written, time.time() - start))
    return metrics


def _in_directory(name, f, fill):
    with atomic.directory(os.path.join(f.workdir, name), name) as tmp:
        fill(tmp)
    return True


def _optional(name, f, prog, step):
    """Runs an optional output step; a failure (not Ctrl-C, not a full disk) is one
    warning line and the run goes on (exit 0: metrics.json is complete)."""
    try:
        step()
        return True
    except (KeyboardInterrupt, atomic.DiskFullError):
        raise
    except Exception as err:  # noqa: BLE001 - any failure of an optional step
        first = (str(err).strip().splitlines() or [""])[0][:200]
        print(f"{prog}: warning: {name}/ was not written ({type(err).__name__}: {first}); kept "
             f"metrics.json, model.keras and checkpoints/ in {f.workdir}.",
              file=sys.stderr)
        return False
