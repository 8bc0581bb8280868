"""`tfvi-eval` (= `python -m tfvi.launch.evaluate`): score an export on a data split.

    tfvi-eval --path=/tmp/tfvi-digits            # a workdir (uses its export/)
    tfvi-eval --path=/tmp/tfvi-digits/export --split=train --num_samples=5000

Loads the SavedModel with `tf.saved_model.load` (no tfvi model code is needed to
score it), rebuilds the evaluation split with the data flags recorded in
`export/tfvi.json` (same fixed binarisation, view and target as in training), and
reports the mean ELBO and IWAE-k log-likelihood (NLL = -IWAE-k), printed as a table
and written as JSON (`--output`, default `<workdir>/eval_<split>.json`).

With `--ais_temperatures` the Ding & Freedman table's AIS and IWAE estimates can run sharded
over the replicas of `--strategy=mirrored|multi_worker` (same seeds per chunk, so the
same numbers as on one device; under multi_worker every worker runs the same command
and the chief writes the output).

Extension point: `EVAL_METRICS[name] = fn(loaded, x, y, flags) -> {metric: value}`
adds a metric selectable with `--metrics` (e.g. AIS, registered by its family module).
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfvi.launch import flags as tfvi_flags  # noqa: E402
from tfvi.launch.eval_ais import ais_metrics, ais_settings, restore_model  # noqa: E402,F401

FLAGS = flags.FLAGS
PROG = "tfvi-eval"

EVAL_METRICS = {}


def register_metric(name):
    def wrap(fn):
        EVAL_METRICS[name] = fn
        return fn

    return wrap


def _batches(x, y, batch_size):
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size], None if y is None else y[start:start + batch_size]


def _call(fn, x, y, *extra):
    import tensorflow as tf

    args = [tf.constant(x, tf.float32)]
    if y is not None:
        args.append(tf.constant(y))
    return fn(*args, *[tf.constant(e, tf.int32) for e in extra])


@register_metric("elbo")
def elbo_metric(loaded, x, y, f):
    import numpy as np

    values = np.concatenate([_call(loaded.elbo, xb, yb)["elbo"].numpy()
                             for xb, yb in _batches(x, y, f.batch_size)])
    return {"elbo": float(values.mean())}


@register_metric("iwae")
def iwae_metric(loaded, x, y, f):
    import numpy as np

    values = np.concatenate([
        _call(loaded.log_likelihood, xb, yb, f.num_samples)["log_likelihood"].numpy()
        for xb, yb in _batches(x, y, f.batch_size)])
    mean = float(values.mean())
    return {f"iwae_{f.num_samples}_log_likelihood": mean, "nll": -mean,
            "nll_standard_error": float(values.std(ddof=1) / np.sqrt(len(values)))
            if len(values) > 1 else 0.0}


def _binarization_note(binarization):
    if binarization == "dynamic":
        return "fixed seeded draw (training used dynamic binarisation)"
    return binarization


# tfvi-eval's own flags with their evaluation defaults and help (shown by --help).
EVAL_FLAGS = {}


def _define(kind, name, default, help_text):
    # tfvi-train defines some of the same names (--dataset, --batch_size, ...); when
    # both launchers live in one process (tests), the existing flag is shared.
    EVAL_FLAGS[name] = (default, help_text)
    if name not in FLAGS:
        getattr(flags, f"DEFINE_{kind}")(name, default, help_text)


def use_eval_defaults(flag_values=FLAGS):
    """In the `tfvi-eval` process: every shared flag shows and takes evaluation's
    default and help (--ais_temperatures 0, --ais_leapfrog_steps 10, not the AIWAE
    family's training values 5, 5), and `--help` lists these flags."""
    from tfvi.launch.flags import declare_key_flags

    for name, (default, help_text) in EVAL_FLAGS.items():
        if flag_values[name].default != default:
            flag_values.set_default(name, default)
        flag_values[name].help = help_text
    declare_key_flags(sorted(EVAL_FLAGS), flag_values)


def define_flags():
    _define("string", "path", None, "A tfvi workdir or its export/ directory.")
    _define("string", "split", "test", "Data split: train, validation, test.")
    _define("string", "dataset", None, "Data set (default: the one the model was trained on).")
    _define("string", "data_dir", None, "TFDS data directory (default: the training one).")
    _define("integer", "num_samples", 1000, "k of the IWAE-k log-likelihood estimate.")
    _define("integer", "batch_size", 100, "Examples per call of the serving functions "
            "(and per AIS chunk / IWAE batch of the Ding & Freedman table).")
    _define("integer", "max_examples", 0, "Score only the first N examples (0: all).")
    _define("list", "metrics", ["elbo", "iwae"], "Metrics to compute (registered: "
            "tfvi.launch.evaluate.EVAL_METRICS; built in: elbo, iwae).")
    _define("string", "output", None, "JSON output path (default: "
            "<workdir>/eval_<split>.json).")
    _define("integer", "verbose", 1, "0: quiet, 1: print the table.")
    # AIS (Ding & Freedman): off unless --ais_temperatures is given. tfvi-train's aiwae
    # family defines --ais_temperatures/--ais_leapfrog_steps too (shared here).
    _define("integer", "ais_temperatures", 0, "AIS log-likelihood and Ding & Freedman's table "
            "with this many temperatures (0: off; needs a workdir with checkpoints).")
    _define("integer", "ais_leapfrog_steps", 10, "AIS: leapfrog steps per HMC transition.")
    _define("integer", "ais_chains", 16, "AIS: chains per example.")
    _define("string", "ais_schedule", "linear", "AIS: annealing schedule, linear or sigmoid.")
    _define("boolean", "ais_table", True, "When AIS is on (--ais_temperatures), also "
            "Ding & Freedman's table (AIS and IWAE on the test and train splits); false: "
            "the AIS log-likelihood of --split alone, the same estimate at about half "
            "the cost.")
    # Shared with tfvi-train when both live in one process.
    _define("string", "strategy", "default", "tf.distribute strategy of the AIS "
            "evaluation (Ding & Freedman table): default (one device), mirrored (all local "
            "devices), multi_worker (TF_CONFIG; run the same command on every worker, the "
            "chief writes the output). Chunks are sharded over the replicas with the "
            "single-device seeds, so the numbers do not change.")
    _define("string", "jit_compile", "auto", "XLA for the AIS loop: auto or true (on), "
            "false (graph mode; no compilation, slower per temperature).")
    _define("float", "worker_timeout_seconds", 60.0, "--strategy=multi_worker: seconds a "
            "collective waits for a peer before failing.")


def _error(message, status=2):
    tfvi_flags.exit_with_error(PROG, message, status)


def resolve_export(path):
    """`path` (workdir or export dir) -> (export dir, workdir or None)."""
    if path is None:
        raise ValueError("--path is required: a tfvi workdir or its export/ directory.")
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        parent = os.path.dirname(os.path.abspath(path))
        return path, parent if os.path.exists(os.path.join(parent, "flags.json")) else None
    if os.path.exists(os.path.join(path, "export", "saved_model.pb")):
        return os.path.join(path, "export"), path
    raise ValueError(f"--path={path} is neither a SavedModel directory nor a workdir with "
                     "export/ (train with --export).")


def check_output(output):
    """Refuses an `--output` that cannot be written or lies in a workdir a live
    `tfvi-train` holds (`tfvi.training.lock`); writes nothing."""
    from tfvi.training import lock

    if os.path.isdir(output):
        raise ValueError(f"--output={output} is a directory; accepted values: a file path "
                         "(e.g. eval_test.json).")
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise ValueError(f"--output={output}: the directory {parent} does not exist.")
    owner = lock.holder(parent)
    if owner:
        raise RuntimeError(f"--output={output} lies in a workdir a live tfvi-train run holds "
                           f"(pid {owner.get('pid', '?')} on host {owner.get('host', '?')}); "
                           "wait for it to finish or pass another --output.")


def load_export(export_dir):
    """`(tfvi.json dict, loaded SavedModel)`; one `ValueError` naming the bad file."""
    import tensorflow as tf

    from tfvi.training.workdir import read_defining_json

    meta_path = os.path.join(export_dir, "tfvi.json")
    meta = read_defining_json(
        meta_path,
        missing=f"--path={export_dir}: {meta_path} is missing, so this SavedModel is not a "
                "tfvi export (re-export it with tfvi-train --reevaluate).",
        damaged=f"--path={export_dir} is not a readable tfvi export.")
    for key in ("input_dim", "has_target"):
        if key not in meta:
            raise ValueError(f"--path={export_dir}: {meta_path} has no {key!r}; it is not "
                             "a tfvi export's metadata.")
    try:
        loaded = tf.saved_model.load(export_dir)
    except Exception as err:  # noqa: BLE001 - protobuf/TF raise many types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ValueError(f"--path={export_dir}: saved_model.pb does not load "
                         f"({type(err).__name__}: {first}).") from None
    return meta, loaded


def check_flags(f):
    """Every tfvi-eval flag, checked before anything is loaded or written; returns the
    AIS settings (None: AIS off). Raises ValueError (one line naming the flag)."""
    from tfvi.export import MAX_NUM_SAMPLES
    from tfvi.launch.config import check_flag_at_least, check_flag_choice

    for name in f.metrics:
        check_flag_choice("metrics", name, EVAL_METRICS)
    check_flag_choice("split", f.split, ("train", "validation", "test"))
    for name in ("num_samples", "batch_size"):
        check_flag_at_least(name, getattr(f, name), 1)
    check_flag_at_least("max_examples", f.max_examples, 0)
    if f.num_samples > MAX_NUM_SAMPLES:
        raise ValueError(f"--num_samples={f.num_samples} is not accepted; accepted values: "
                         f"integers in [1, {MAX_NUM_SAMPLES}] (the export's cap).")
    ais = ais_settings(f)
    if f.strategy != "default" and not ais:
        raise ValueError(f"--strategy={f.strategy} distributes the AIS evaluation; "
                         "pass --ais_temperatures (the export's ELBO/IWAE run on one "
                         "device).")
    return ais


def load_split(f, meta):
    """`(prepared, x, y, dataset)`: the evaluated split rebuilt with the data flags the
    export records (`--dataset`/`--data_dir` override them), as the export takes it."""
    import tensorflow as tf

    from tfvi.launch.components import prepare_data
    from tfvi.launch.config import from_stored

    stored = {"likelihood": "auto", "view": "full", "target": "input", "seed": 0,
              "validation_fraction": 0.0, "architecture": "mlp", **meta.get("flags", {})}
    for name in ("dataset", "data_dir"):
        if f[name].present:
            stored[name] = getattr(f, name)
    prepared = prepare_data(from_stored(stored))
    if f.split not in prepared.eval_splits:
        raise ValueError(f"--split={f.split} does not exist here; accepted values: "
                         f"{', '.join(sorted(prepared.eval_splits))}.")
    if tf.nest.flatten(prepared.input_dim) != tf.nest.flatten(meta["input_dim"]):
        raise ValueError(f"--dataset={stored['dataset']} has input size "
                         f"{prepared.input_dim} but the model expects {meta['input_dim']}.")
    x, y, _ = prepared.eval_splits[f.split]
    if f.max_examples:
        x = x[:f.max_examples]
        y = None if y is None else y[:f.max_examples]
    if not meta.get("has_target"):
        y = None
    elif meta.get("target_dtype") == "int32":
        y = y.astype("int32")
    return prepared, x, y, stored["dataset"]


def print_results(out, ais, f):
    print(f"{PROG}: {out['export']} on {out['dataset']}/{out['split']} "
          f"({out['num_examples']} examples)")
    print(f"{'metric':<32}{'value':>12}")
    for name, value in out["metrics"].items():
        print(f"{name:<32}{value:>12.4f}")
    if "ais_gap_table" in out:
        from tfvi.evaluation import format_ais_gap_table

        print(f"{PROG}: Ding & Freedman table (AIS {ais['num_chains']} chains x "
              f"{ais['num_temperatures']} {ais['schedule']} temperatures x "
              f"{ais['num_leapfrog_steps']} leapfrog steps; NVLB = -IWAE-"
              f"{f.num_samples})")
        print(format_ais_gap_table({"model": out["ais_gap_table"]}))
    print(f"{PROG}: wrote {out['output']}")


def result_record(export_dir, dataset, f, num_examples, results, meta, prepared):
    """The result JSON: the metrics and the estimator settings they were computed with."""
    return {
        "export": os.path.abspath(export_dir),
        "dataset": dataset, "split": f.split, "num_examples": int(num_examples),
        "metrics": results,
        "settings": {"iwae_num_samples": f.num_samples, "iwae_stratified": True,
                     "elbo_samples_per_component": meta.get("elbo_samples"),
                     "seeds": "fixed stateless seeds inside the export",
                     "binarization": _binarization_note(prepared.binarization),
                     "view": prepared.view,
                     "target": prepared.target},
    }


def evaluate(f):
    """Runs the evaluation for parsed flags; returns the result dict."""
    from tfvi import distribute

    ais = check_flags(f)
    export_dir, workdir = resolve_export(f.path)
    output = f.output or os.path.join(workdir or export_dir, f"eval_{f.split}.json")
    check_output(output)
    if ais and workdir is None:
        raise ValueError(f"--ais_temperatures={ais['num_temperatures']}: AIS needs the live "
                         "model (decoder gradients), rebuilt from a training workdir "
                         f"(flags.json + checkpoints/); --path={f.path} is a bare export. "
                         "Pass the workdir instead.")
    strategy = None
    if f.strategy != "default":
        # Before any other TensorFlow op (multi_worker configures the runtime).
        strategy = distribute.create_strategy(f.strategy,
                                              timeout_seconds=f.worker_timeout_seconds)
    meta, loaded = load_export(export_dir)
    prepared, x, y, dataset = load_split(f, meta)
    start = time.time()
    results = {}
    for name in f.metrics:
        results.update(EVAL_METRICS[name](loaded, x, y, f))
    ais_table = None
    if ais:
        ais_table = ais_metrics(workdir, prepared, f, ais, x, y, strategy)
        results.update(ais_table.pop("metrics"))
    out = result_record(export_dir, dataset, f, len(x), results, meta, prepared)
    out["seconds"] = time.time() - start
    if ais_table:
        out["ais_gap_table"] = ais_table
    if strategy is not None:
        out["settings"]["strategy"] = f.strategy
        out["settings"]["num_replicas"] = int(strategy.num_replicas_in_sync)
    if not distribute.is_chief(strategy):  # every worker computed it; the chief writes
        out["output"] = None
        return out
    check_output(output)  # a run may have taken the workdir meanwhile
    from tfvi.training import atomic

    atomic.write_json(output, out, "eval")
    out["output"] = output
    if f.verbose:
        print_results(out, ais, f)
    return out


def main(argv):
    if len(argv) > 1:
        _error(f"unexpected arguments {argv[1:]}; every option is a --flag (see --help).")
    from absl import logging

    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    from tfvi.training.atomic import DiskFullError

    try:
        evaluate(FLAGS)
    except DiskFullError as err:
        _error(str(err), status=1)
    except ValueError as err:
        _error(str(err))
    except RuntimeError as err:  # a live run holds the workdir, a damaged file
        _error(str(err), status=1)
    except KeyboardInterrupt:
        _error("interrupted; nothing was written.", status=130)


parse_flags = tfvi_flags.flags_parser(PROG)


def run():
    from tfvi.launch import families

    families.import_all()  # families may register metrics (e.g. AIS)
    define_flags()
    use_eval_defaults()
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
