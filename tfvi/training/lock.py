"""An advisory workdir lock: `<workdir>/.lock`, an `fcntl.flock` plus its owner.

`tfvi-train` holds `WorkdirLock(workdir)` from before it reads the workdir's state
until it exits, so two runs (or `--overwrite` of a live run) cannot write one workdir.
The file holds `{"pid", "host", "started"}` of the holder so the refusal names them.

Staleness: the kernel releases an `flock` when its process dies (SIGKILL included),
so a lock file whose lock can be taken is stale whatever it says; on file systems
without `flock` (some network mounts) a lock is also stale when its host is this host
and its pid is not alive. A stale lock is simply taken over.
"""

import fcntl
import json
import os
import socket
import time

__all__ = ["LOCK_NAME", "WorkdirLock", "WorkdirLockedError", "holder"]

LOCK_NAME = ".lock"


class WorkdirLockedError(RuntimeError):
    """The workdir is held by a live process; the message names it."""


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError):
        return True
    return True


def _read_owner(path):
    try:
        with open(path) as f:
            owner = json.load(f)
        return owner if isinstance(owner, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(workdir, owner):
    started = owner.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if isinstance(
        started, (int, float)) else "an unknown time"
    return (f"--workdir={workdir} is in use by a live run (pid {owner.get('pid', '?')} on "
            f"host {owner.get('host', '?')}, started {when}); wait for it to finish, stop "
            "it, or choose another --workdir.")


def holder(workdir):
    """The owner dict of a live lock on `workdir`, or None (no lock or a stale one).

    Does not create anything: readers such as `tfvi-eval` call it before writing."""
    path = os.path.join(workdir, LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_owner(path) or {"pid": "?", "host": "?"}
        except OSError:  # no flock here: fall back to pid liveness on this host
            owner = _read_owner(path)
            if owner.get("host") == socket.gethostname() and not _pid_alive(owner.get("pid")):
                return None
            return owner or None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class WorkdirLock:
    """Exclusive advisory lock of a workdir (a context manager).

    Args:
      workdir: an existing directory.

    Raises:
      WorkdirLockedError: from `acquire` when a live process holds it.
    """

    def __init__(self, workdir):
        self.workdir = workdir
        self.path = os.path.join(workdir, LOCK_NAME)
        self._fd = None

    def acquire(self):
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise WorkdirLockedError(_describe(self.workdir, _read_owner(self.path)))
            except OSError:  # no flock on this file system: pid liveness only
                owner = _read_owner(self.path)
                if owner and (owner.get("host") != socket.gethostname() or
                              (_pid_alive(owner.get("pid")) and
                               owner.get("pid") != os.getpid())):
                    os.close(fd)
                    raise WorkdirLockedError(_describe(self.workdir, owner)) from None
            # The file may have been unlinked by the previous holder's release between
            # our open and flock: then we hold a lock nobody else can see; retry.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.time()}).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self):
        if self._fd is None:
            return
        try:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
