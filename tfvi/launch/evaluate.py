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

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

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
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(status)


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

    from tfvi.training.workdir import WorkdirError, read_json

    meta_path = os.path.join(export_dir, "tfvi.json")
    if not os.path.exists(meta_path):
        raise ValueError(f"--path={export_dir}: {meta_path} is missing, so this SavedModel "
                         "is not a tfvi export (re-export it with tfvi-train --reevaluate).")
    try:
        meta = read_json(meta_path)
    except WorkdirError as err:
        raise ValueError(f"--path={export_dir}: {err}.") from None
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


def ais_settings(f):
    """The AIS protocol from the flags, or None when AIS is off."""
    temperatures = f.ais_temperatures if f["ais_temperatures"].present else 0
    if not temperatures:
        return None
    if temperatures < 2:
        raise ValueError(f"--ais_temperatures={temperatures} is not accepted; accepted "
                         "values: 0 (off) or integers >= 2.")
    for name in ("ais_chains", "ais_leapfrog_steps"):
        if getattr(f, name) < 1:
            raise ValueError(f"--{name}={getattr(f, name)} is not accepted; accepted "
                             "values: integers >= 1.")
    if f.ais_schedule not in ("linear", "sigmoid"):
        raise ValueError(f"--ais_schedule={f.ais_schedule!r} is not accepted; accepted "
                         "values: linear, sigmoid.")
    if f.jit_compile not in ("auto", "true", "false"):
        raise ValueError(f"--jit_compile={f.jit_compile!r} is not accepted; accepted "
                         "values: auto, true, false.")
    # The flag's default here is 10 (Wu et al.); tfvi-train's aiwae family defines it
    # with its training default, so an absent flag means the protocol's 10.
    leapfrog = f.ais_leapfrog_steps if f["ais_leapfrog_steps"].present else 10
    return dict(num_chains=f.ais_chains, num_temperatures=temperatures,
                num_leapfrog_steps=leapfrog, schedule=f.ais_schedule,
                jit_compile=f.jit_compile != "false")


def restore_model(workdir, prepared, strategy=None):
    """The live Keras model of a workdir: rebuilt from flags.json by its family's
    builder (as `tfvi-train` does when resuming) with the newest checkpoint's weights;
    inside `strategy.scope()` when a strategy is given (mirrored variables)."""
    import contextlib
    import types

    import keras

    from tfvi.training.checkpointing import CheckpointManager
    from tfvi.launch.registry import MODELS

    with open(os.path.join(workdir, "flags.json")) as fh:
        train_flags = types.SimpleNamespace(**json.load(fh))
    family = MODELS.get(train_flags.model)
    if family is None:
        raise ValueError(f"{workdir}/flags.json has --model={train_flags.model}, which is "
                         "not registered here.")
    manager = CheckpointManager(os.path.join(workdir, "checkpoints"), sweep=False)
    if manager.latest() is None:
        raise ValueError(f"AIS needs a checkpoint; {workdir}/checkpoints has none.")
    keras.utils.set_random_seed(train_flags.seed)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = family.build(train_flags, prepared)
        manager.restore(model)
    return model, train_flags


def ais_metrics(workdir, prepared, f, ais, x, y, strategy=None):
    """Ding & Freedman's table (AIS NLL and NVLB on test and train, gaps, active units) for the
    workdir's model, plus the AIS log-likelihood of the evaluated split."""
    import numpy as np

    from tfvi import evaluation

    model, train_flags = restore_model(workdir, prepared, strategy)
    if not all(hasattr(model, name) for name in ("encoder", "decoder", "prior")):
        raise ValueError(f"--ais_temperatures: --model={train_flags.model} has no "
                         "encoder/decoder/prior to anneal between.")
    if y is not None and prepared.target == "label":
        raise ValueError("--ais_temperatures: AIS scores log p(x); this model predicts "
                         "labels (--target=label).")
    max_examples = f.max_examples or None
    x_test = prepared.eval_splits["test"][0]
    x_train = prepared.eval_splits["train"][0]
    seed = int(train_flags.seed)
    table = evaluation.ais_gap_table(model, x_test, x_train, iwae_samples=f.num_samples,
                                     max_examples=max_examples, seed=seed,
                                     verbose=f.verbose, preset="wu", strategy=strategy,
                                     iwae_batch_size=f.batch_size,
                                     batch_size=f.batch_size, **ais)
    if f.split == "test":
        nll = table["nll_test"]
    elif f.split == "train":
        nll = table["nll_train"]
    elif strategy is not None:
        from tfvi import distribute

        nll = -float(np.mean(distribute.distributed_ais_log_likelihood(
            model, x, strategy, preset="wu", seed=seed, verbose=f.verbose,
            batch_size=f.batch_size, **ais).log_likelihood))
    else:
        nll = -float(np.mean(evaluation.ais_log_likelihood(
            model, x, preset="wu", seed=seed, verbose=f.verbose, batch_size=f.batch_size,
            **ais).log_likelihood))
    table["metrics"] = {f"ais_{ais['num_temperatures']}_log_likelihood": -nll,
                        "ais_nll": nll}
    return table


def evaluate(f):
    """Runs the evaluation for parsed flags; returns the result dict."""
    for name in f.metrics:
        if name not in EVAL_METRICS:
            raise ValueError(f"--metrics={name!r} is not accepted; accepted values: "
                             f"{', '.join(sorted(EVAL_METRICS))}.")
    if f.split not in ("train", "validation", "test"):
        raise ValueError(f"--split={f.split!r} is not accepted; accepted values: train, "
                         "validation, test.")
    for name in ("num_samples", "batch_size"):
        if getattr(f, name) < 1:
            raise ValueError(f"--{name}={getattr(f, name)} is not accepted; accepted values: "
                             "integers >= 1.")
    if f.max_examples < 0:
        raise ValueError(f"--max_examples={f.max_examples} is not accepted; accepted "
                         "values: 0 (all) or positive integers.")
    from tfvi.export import MAX_NUM_SAMPLES

    if f.num_samples > MAX_NUM_SAMPLES:
        raise ValueError(f"--num_samples={f.num_samples} is not accepted; accepted values: "
                         f"integers in [1, {MAX_NUM_SAMPLES}] (the export's cap).")
    export_dir, workdir = resolve_export(f.path)
    output = f.output or os.path.join(workdir or export_dir, f"eval_{f.split}.json")
    check_output(output)
    ais = ais_settings(f)
    if ais and workdir is None:
        raise ValueError(f"--ais_temperatures={ais['num_temperatures']}: AIS needs the live "
                         "model (decoder gradients), rebuilt from a training workdir "
                         f"(flags.json + checkpoints/); --path={f.path} is a bare export. "
                         "Pass the workdir instead.")
    strategy = None
    if f.strategy != "default":
        if not ais:
            raise ValueError(f"--strategy={f.strategy} distributes the AIS evaluation; "
                             "pass --ais_temperatures (the export's ELBO/IWAE run on one "
                             "device).")
        from tfvi import distribute

        # Before any other TensorFlow op (multi_worker configures the runtime).
        strategy = distribute.create_strategy(f.strategy,
                                              timeout_seconds=f.worker_timeout_seconds)
    meta, loaded = load_export(export_dir)
    train_flags = meta.get("flags", {})

    import tensorflow as tf

    from tfvi.data import datasets

    dataset = f.dataset if f["dataset"].present else train_flags.get("dataset")
    data_dir = f.data_dir if f["data_dir"].present else train_flags.get("data_dir")
    bundle = datasets.load(dataset, data_dir=data_dir,
                           seed=train_flags.get("seed", 0),
                           validation_fraction=train_flags.get("validation_fraction", 0.0))
    likelihood = train_flags.get("likelihood", "auto")
    prepared = datasets.prepare(bundle, None if likelihood == "auto" else likelihood,
                                train_flags.get("view", "full"),
                                train_flags.get("target", "input"),
                                seed=train_flags.get("seed", 0),
                                images=train_flags.get("architecture", "mlp") != "mlp")
    if f.split not in prepared.eval_splits:
        raise ValueError(f"--split={f.split} does not exist here; accepted values: "
                         f"{', '.join(sorted(prepared.eval_splits))}.")
    if tf.nest.flatten(prepared.input_dim) != tf.nest.flatten(meta["input_dim"]):
        raise ValueError(f"--dataset={dataset} has input size {prepared.input_dim} but the "
                         f"model expects {meta['input_dim']}.")
    x, y, _ = prepared.eval_splits[f.split]
    if f.max_examples:
        x = x[:f.max_examples]
        y = None if y is None else y[:f.max_examples]
    if not meta.get("has_target"):
        y = None
    elif meta.get("target_dtype") == "int32":
        y = y.astype("int32")
    start = time.time()
    results = {}
    for name in f.metrics:
        results.update(EVAL_METRICS[name](loaded, x, y, f))
    ais_table = None
    if ais:
        ais_table = ais_metrics(workdir, prepared, f, ais, x, y, strategy)
        results.update(ais_table.pop("metrics"))
    out = {
        "export": os.path.abspath(export_dir),
        "dataset": dataset, "split": f.split, "num_examples": int(len(x)),
        "metrics": results,
        "settings": {"iwae_num_samples": f.num_samples, "iwae_stratified": True,
                     "elbo_samples_per_component": meta.get("elbo_samples"),
                     "seeds": "fixed stateless seeds inside the export",
                     "binarization": _binarization_note(prepared.binarization),
                     "view": prepared.view,
                     "target": prepared.target},
        "seconds": time.time() - start,
    }
    if ais_table is not None:
        out["ais_gap_table"] = ais_table
    if strategy is not None:
        out["settings"]["strategy"] = f.strategy
        out["settings"]["num_replicas"] = int(strategy.num_replicas_in_sync)
    from tfvi import distribute

    if not distribute.is_chief(strategy):  # every worker computed it; the chief writes
        out["output"] = None
        return out
    check_output(output)  # a run may have taken the workdir meanwhile
    from tfvi.training import atomic

    atomic.write_json(output, out, "eval")
    out["output"] = output
    if f.verbose:
        print(f"{PROG}: {out['export']} on {dataset}/{f.split} ({len(x)} examples)")
        print(f"{'metric':<32}{'value':>12}")
        for name, value in results.items():
            print(f"{name:<32}{value:>12.4f}")
        if ais_table is not None:
            from tfvi.evaluation import format_ais_gap_table

            print(f"{PROG}: Ding & Freedman table (AIS {ais['num_chains']} chains x "
                  f"{ais['num_temperatures']} {ais['schedule']} temperatures x "
                  f"{ais['num_leapfrog_steps']} leapfrog steps; NVLB = -IWAE-"
                  f"{f.num_samples})")
            print(format_ais_gap_table({"model": ais_table}))
        print(f"{PROG}: wrote {output}")
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


def parse_flags(argv):
    try:
        return FLAGS(argv)
    except flags.Error as err:
        _error(str(err).splitlines()[0])


def run():
    from tfvi.launch import families

    families.import_all()  # families may register metrics (e.g. AIS)
    define_flags()
    use_eval_defaults()
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
