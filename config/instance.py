"""One Poolwarden per var/ folder: a lock file held for the life of the process.

`make run` (the `run` command), Celery beat and, on the embedded broker, the Celery worker each
take their own lock under var/ (`run.lock`, `beat.lock`, `worker.lock`). A second one on the
same folder stops at once with one line naming the first (its pid, command and start time),
exit status 2: two beats would send every periodic task twice.

The lock is an `flock` on an open file, so the kernel releases it when the process ends, however
it ends: a stale file left by a killed process never blocks a restart.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import sys
from pathlib import Path

from config.env import ConfigError, writable_dir

_held: dict[str, int] = {}  # role -> file descriptor, kept open for the process's life


class AlreadyRunning(ConfigError):
    """Another process holds this var/ folder's lock for the same role."""


def lock(var_dir: Path, role: str, *, inheritable: bool = False) -> int:
    """Take `var_dir/<role>.lock` for this process (no-op if already held); raise
    `AlreadyRunning` naming the holder when another process has it. With `inheritable`, the
    descriptor survives `exec`, so a program this process becomes keeps the lock."""
    if role in _held:
        return _held[role]
    path = writable_dir(var_dir, why=f"the {role} lock") / f"{role}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown process"
        os.close(fd)
        raise AlreadyRunning(
            f"another Poolwarden {role} is running on {var_dir} ({holder}); stop it first, or "
            "give this one its own POOLWARDEN_VAR_DIR"
        ) from None
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:120]
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}, `{command}`, since {started}\n".encode(), 0)
    os.set_inheritable(fd, inheritable)
    _held[role] = fd
    return fd


def unlock(role: str) -> None:
    """Give the lock back early (tests; a process that ends releases it anyway)."""
    fd = _held.pop(role, None)
    if fd is not None:
        os.close(fd)
