"""Atomic, umask-respecting, strict writes of files and directories.

Every output goes to a temporary sibling named `.tmp-*` first and is renamed into
place with `os.replace` / `os.rename` (atomic on POSIX within one file system), so a
reader or a process killed at any instant sees the old complete file or the new
complete one. Temporaries are removed in `finally` blocks; a SIGKILL (which no
`finally` survives) leaves at most one `.tmp-*`, removed by `sweep` at the next start
of a run holding the workdir lock.

`mkstemp`/`mkdtemp` create 0600/0700 entries; `write_*` and `directory` set the mode
an ordinary `open`/`mkdir` would get under the current umask (0644/0755 under umask
022), so a serving account can read an export.

JSON is strict: `json_safe` replaces NaN and +-inf by null and records, per replaced
value, its dotted key and the reason under the top-level key `"null_reasons"`, so
strict parsers (`json.loads(..., parse_constant=...)`, JavaScript, jq) accept it.
"""

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile

import numpy as np

from tfvi.training import faults

__all__ = ["DiskFullError", "TMP_PREFIX", "directory", "json_safe", "sweep", "umask_mode",
           "write_bytes", "write_json", "write_with"]

TMP_PREFIX = ".tmp-"


class DiskFullError(OSError):
    """ENOSPC while writing `path`; the message names the path and the bytes."""

    def __init__(self, path, needed):
        self.path, self.needed = path, int(needed)
        try:
            free = shutil.disk_usage(os.path.dirname(os.path.abspath(path)) or ".").free
        except OSError:
            free = -1
        super().__init__(errno.ENOSPC, f"no space left on the device writing {path}: it "
                         f"needs at least {self.needed} bytes and {free} bytes are free; "
                         "nothing was half-written (the temporary copy was removed)")

    def __str__(self):
        return self.strerror


def umask_mode(is_dir):
    """The mode `open`/`mkdir` would give a new file (0o666) / directory (0o777)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if is_dir else 0o666) & ~mask


def _is_disk_full(err):
    return getattr(err, "errno", None) == errno.ENOSPC or (
        os.strerror(errno.ENOSPC) in str(err))


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tree_size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def write_bytes(path, data, fault_name="file", epoch=None):
    """Writes `data` (bytes) to `path` atomically; raises `DiskFullError` on ENOSPC."""

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    write_with(path, write, fault_name, epoch=epoch, size=len(data))


def write_with(path, writer, fault_name="file", epoch=None, size=None):
    """Atomic write through a callable: `writer(tmp_path)` writes a temporary sibling
    with `path`'s suffix (Keras' `model.save` needs `.keras`), then it is renamed.
    ENOSPC becomes `DiskFullError(path, size)` (`size`: the bytes to write, else the
    bytes written so far)."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=TMP_PREFIX,
                               suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        try:
            writer(tmp)
            os.chmod(tmp, umask_mode(False))
            faults.point(f"{fault_name}.before_rename", epoch, path)
        except Exception as err:  # Keras/zipfile/h5py may wrap ENOSPC
            if _is_disk_full(err):
                raise DiskFullError(path, _tree_size(tmp) if size is None else size) from None
            raise
        os.replace(tmp, path)
        _fsync_dir(parent)
    finally:
        _remove(tmp)


def json_safe(obj, reasons=None, key=""):
    """`obj` with numpy/tensor scalars as Python numbers and NaN/inf as None.

    `reasons` (a dict) receives `{dotted key: "non-finite value nan"}` per replacement.
    """
    reasons = {} if reasons is None else reasons
    if isinstance(obj, dict):
        return {k: json_safe(v, reasons, f"{key}.{k}" if key else str(k))
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v, reasons, f"{key}[{i}]") for i, v in enumerate(obj)]
    if hasattr(obj, "numpy"):
        obj = obj.numpy()
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist(), reasons, key)
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        reasons[key] = f"non-finite value {obj}"
        return None
    return obj


def write_json(path, obj, fault_name="json", epoch=None):
    """Strict JSON (see module docstring) written atomically to `path`."""
    reasons = {}
    clean = json_safe(obj, reasons)
    if reasons and isinstance(clean, dict):
        clean["null_reasons"] = reasons
    text = json.dumps(clean, indent=2, sort_keys=True, allow_nan=False)
    write_bytes(path, (text + "\n").encode("utf-8"), fault_name, epoch)


def _make_readable(path):
    """Directories 0o777 & ~umask, files 0o666 & ~umask (below `path`, inclusive)."""
    os.chmod(path, umask_mode(True))
    for root, dirs, files in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(root, d), umask_mode(True))
        for f in files:
            os.chmod(os.path.join(root, f), umask_mode(False))


@contextlib.contextmanager
def directory(path, fault_name="directory", epoch=None):
    """Yields a temporary directory that replaces `path` when the block succeeds.

    An existing `path` is swapped out only after the new tree is complete; on any
    exception (KeyboardInterrupt included) the temporary tree is removed and `path`
    is untouched. ENOSPC becomes `DiskFullError(path, bytes written so far)`.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=TMP_PREFIX)
    stale = None
    try:
        try:
            yield tmp
            _make_readable(tmp)
            faults.point(f"{fault_name}.before_rename", epoch, path)
        except Exception as err:  # TensorFlow reports ENOSPC as its own error types
            if _is_disk_full(err):
                raise DiskFullError(path, _tree_size(tmp)) from None
            raise
        if os.path.exists(path):
            stale = tempfile.mkdtemp(dir=parent, prefix=TMP_PREFIX)
            os.rename(path, os.path.join(stale, "old"))
        os.rename(tmp, path)
        _fsync_dir(parent)
    finally:
        _remove(tmp)
        if stale is not None:
            _remove(stale)


def sweep(path):
    """Removes the `.tmp-*` leftovers of killed runs directly in `path`; returns them.

    Call it only while holding the workdir lock (no live writer owns them then)."""
    removed = []
    if not os.path.isdir(path):
        return removed
    for name in sorted(os.listdir(path)):
        if name.startswith(TMP_PREFIX):
            _remove(os.path.join(path, name))
            removed.append(name)
    return removed
