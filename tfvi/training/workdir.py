"""Workdir checks, checkpoint validation with fallback, and `load_workdir`.

A checkpoint `checkpoints/epoch-NNNNN/` is *valid* when its `state.json` parses into
a dict whose `"epoch"` equals NNNNN and whose `"history"` is a dict, its
`model.weights.h5` loads into the model, and every loaded weight is finite.
`restore_newest_valid` tries them newest first; a checkpoint that fails is moved
aside to `checkpoints/corrupt-epoch-NNNNN[-i]/` (kept, never deleted, and never
replaced by the next save of that epoch) and named in one line with the reason.
"""

import errno
import json
import os
import shutil

import numpy as np

from tfvi.training.atomic import TMP_PREFIX
from tfvi.training.lock import LOCK_NAME

__all__ = ["CheckpointRejected", "WorkdirError", "check_workdir", "check_workdir_path", "data_spec", "entries",
           "load_workdir", "read_json", "restore_newest_valid", "weights_finite"]

MODEL_FILE = "model.keras"
DATA_SPEC_FILE = "data_spec.json"


class WorkdirError(RuntimeError):
    """A workdir that cannot be used as it is; one line naming the file."""


class CheckpointRejected(ValueError):
    """One checkpoint is not valid; the message says why."""


def check_workdir_path(workdir, flag="--workdir"):
    """Raises `ValueError` (one line) when `workdir` can never be written: empty, a
    file, under a file, or under a directory this user cannot write. Writes nothing."""
    if not workdir or not str(workdir).strip():
        raise ValueError(f"{flag}= is empty; accepted values: a directory path.")
    path = os.path.abspath(workdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag}={workdir} is a file, not a directory; accepted values: "
                         "a new or existing directory.")
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"{flag}={workdir} lies under {parent}, which is a file; accepted "
                         "values: a path under a directory.")
    probe = path if os.path.isdir(path) else parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{flag}={workdir}: {probe} is not writable by this user "
                         f"({os.strerror(errno.EACCES)}); choose another directory.")


def entries(workdir):
    """The workdir's entries other than our lock and temporaries (a run killed before
    it wrote flags.json leaves only those)."""
    if not os.path.isdir(workdir):
        return []
    return [n for n in os.listdir(workdir)
            if n != LOCK_NAME and not n.startswith(TMP_PREFIX)]


def check_workdir(workdir, wanted, overwrite, present, defined):
    """Refuses a workdir written with different flags (`ValueError`, one line) unless
    `overwrite` (then empties it, keeping the lock file); returns True when it is a
    workdir of this same run (resume). `present(name)`: the flag was given on the
    command line; `defined(name)`: this process defines it. A damaged flags.json is
    a `WorkdirError`."""
    flags_path = os.path.join(workdir, "flags.json")
    if not entries(workdir):
        return False
    previous = read_defining_json(
        flags_path,
        missing=f"--workdir={workdir} exists, is not empty and is not a tfvi workdir (no "
                "flags.json); choose another --workdir.",
        damaged="the workdir's defining file is damaged; restore it, or pass --overwrite "
                "to start this workdir afresh.", damaged_type=WorkdirError)
    # A flag the stored run did not have and this command leaves at its default (a flag
    # added since, or tfvi-eval's flags when both launchers share one process) changes
    # nothing about the run.
    wanted = {k: v for k, v in wanted.items()
              if k in previous or present(k)}
    # Likewise a stored flag this process does not define (tfvi-eval's, stored by a
    # run in a process that had both launchers; a flag removed since).
    previous = {k: v for k, v in previous.items() if k in wanted or defined(k)}
    if previous == wanted:
        return True
    if overwrite:  # everything but the lock this process holds
        for name in os.listdir(workdir):
            if name != LOCK_NAME:
                path = os.path.join(workdir, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)
        return False
    changed = sorted(set(previous) | set(wanted))
    diffs = [f"--{k}: {previous.get(k)!r} -> {wanted.get(k)!r}" for k in changed
             if previous.get(k) != wanted.get(k)]
    raise ValueError(f"--workdir={workdir} was written with different flags "
                      f"({'; '.join(diffs[:6])}); use another --workdir or pass --overwrite.")


def read_defining_json(path, missing, damaged, damaged_type=ValueError):
    """`read_json(path)` of a file that says what a directory is: `ValueError(missing)`
    when it does not exist, `damaged_type("<why>: <damaged>")` when it is not a JSON
    object."""
    if not os.path.exists(path):
        raise ValueError(missing)
    try:
        return read_json(path)
    except WorkdirError as err:
        raise damaged_type(f"{err}: {damaged}") from None


def read_json(path, kind=dict):
    """Parses `path` as JSON of type `kind`; `WorkdirError` naming the file otherwise."""
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, ValueError) as err:
        reason = getattr(err, "msg", None) or type(err).__name__
        raise WorkdirError(f"{path} is not readable JSON ({reason})") from None
    if not isinstance(value, kind):
        raise WorkdirError(f"{path} holds a JSON {type(value).__name__}; expected a "
                           f"{kind.__name__}")
    return value


def weights_finite(model):
    """Names of the model's float variables holding NaN/inf (empty when all finite)."""
    bad = []
    for v in model.weights:
        value = np.asarray(v.numpy() if hasattr(v, "numpy") else v)
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            bad.append(v.path if hasattr(v, "path") else v.name)
    return bad


def _state(path, epoch):
    try:
        state = read_json(os.path.join(path, "state.json"))
    except WorkdirError as err:
        raise CheckpointRejected(f"state.json does not parse: {err}") from None
    if state.get("epoch") != epoch:
        raise CheckpointRejected(f"state.json has epoch {state.get('epoch')!r}, the "
                                 f"directory name says {epoch}")
    if not isinstance(state.get("history"), dict):
        raise CheckpointRejected("state.json has no history dict")
    return state


def _move_aside(path):
    parent, name = os.path.split(path)
    target = os.path.join(parent, f"corrupt-{name}")
    i = 1
    while os.path.exists(target):
        target = os.path.join(parent, f"corrupt-{name}-{i}")
        i += 1
    os.rename(path, target)
    return target


def _snapshot(model):
    variables = list(model.weights)
    if getattr(model, "optimizer", None) is not None:
        variables += list(model.optimizer.variables)
    return [(v, np.array(v.numpy())) for v in variables]


def restore_newest_valid(manager, model, report=print, move_aside=True):
    """Loads the newest valid checkpoint of `manager` into `model`; returns its state
    or None (then `model` keeps its initial values). Invalid ones are reported through
    `report(line)` and, with `move_aside` (writers holding the workdir lock), renamed to
    `corrupt-epoch-NNNNN`."""
    initial = None
    for epoch, path in reversed(manager.checkpoints()):
        if initial is None:
            initial = _snapshot(model)
        try:
            state = _state(path, epoch)
            try:
                state["arrays"] = manager.restore(model, path)["arrays"]
            except Exception as err:  # h5py/Keras/numpy raise many types for a bad file
                first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                raise CheckpointRejected(f"model.weights.h5 or an .npz does not load "
                                         f"({type(err).__name__}: {first})") from None
            bad = weights_finite(model)
            bad += [f"{name}[{i}]" for name, values in state["arrays"].items()
                    for i, v in enumerate(values) if not np.all(np.isfinite(v))]
            if bad:
                raise CheckpointRejected(f"{len(bad)} weight tensors are non-finite "
                                         f"({', '.join(bad[:3])})")
            return state
        except CheckpointRejected as err:
            kept = _move_aside(path) if move_aside else path
            report(f"skipped checkpoint {os.path.basename(path)}: {err}; kept it as "
                   f"{os.path.relpath(kept, os.path.dirname(manager.directory))}")
    if initial is not None:  # a partial load may have changed some variables
        for variable, value in initial:
            variable.assign(value)
    return None


def _json_shape(dim):
    """An int for flat data, a list `[H, W, C]` for images."""
    if isinstance(dim, (tuple, list)):
        return [int(d) for d in dim]
    return int(dim)


def data_spec(prepared):
    """What a workdir's model expects: a JSON-able dict of the data it was trained on."""
    bundle = prepared.bundle
    return {"dataset": bundle.name, "likelihood": prepared.likelihood,
            "view": prepared.view, "target": prepared.target, "seed": int(prepared.seed),
            "input_dim": _json_shape(prepared.input_dim),
            "target_dim": _json_shape(prepared.target_dim),
            "binarization": prepared.binarization,
            "image_shape": None if bundle.image_shape is None else list(bundle.image_shape),
            "num_classes": getattr(bundle, "num_classes", None)}


def load_workdir(path):
    """The trained model of a `tfvi-train` workdir and the spec of its data.

    Loads `path/model.keras` (written when training finished) with Keras' safe mode;
    for a workdir without it (older runs, or one killed before the end) the model is
    rebuilt from `flags.json` by its family and the newest valid checkpoint is loaded.

    Args:
      path: the workdir (`--workdir` of `tfvi-train`).

    Returns:
      `(model, spec)`: a compiled Keras model (`model.encoder(x)` is q(z|x) for
      `x` of shape `[batch, spec["input_dim"]]`, or `[batch, *spec["input_dim"]]`
      for images), and `spec`, a dict with `dataset`,
      `likelihood`, `view`, `target`, `seed`, `input_dim`, `target_dim`,
      `binarization`, `image_shape`, `num_classes`.

    Raises:
      WorkdirError: `path` is not a finished or resumable tfvi workdir.
    """
    import keras

    import tfvi  # noqa: F401  (registers every layer and model for .keras loading)

    flags_path = os.path.join(path, "flags.json")
    if not os.path.isfile(flags_path):
        raise WorkdirError(f"{path} is not a tfvi workdir (no flags.json)")
    spec_path = os.path.join(path, DATA_SPEC_FILE)
    model_path = os.path.join(path, MODEL_FILE)
    if os.path.isfile(model_path) and os.path.isfile(spec_path):
        return keras.saving.load_model(model_path), read_json(spec_path)
    from tfvi.training.checkpointing import CheckpointManager
    from tfvi.launch import families
    from tfvi.launch.components import prepare_data
    from tfvi.launch.config import from_stored
    from tfvi.launch.registry import MODELS

    families.import_all()
    f = from_stored(read_json(flags_path))
    family = MODELS.get(f.model)
    if family is None:
        raise WorkdirError(f"{flags_path} has --model={f.model}, not registered here")
    prepared = prepare_data(f)
    keras.utils.set_random_seed(f.seed)
    model = family.build(f, prepared)
    model.compile(optimizer=keras.optimizers.Adam(f.learning_rate), jit_compile=False)
    model.optimizer.build(model.trainable_variables)
    manager = CheckpointManager(os.path.join(path, "checkpoints"), sweep=False)
    if restore_newest_valid(manager, model, report=lambda line: None,
                            move_aside=False) is None:
        raise WorkdirError(f"{path} has neither {MODEL_FILE} nor a valid checkpoint")
    return model, data_spec(prepared)

