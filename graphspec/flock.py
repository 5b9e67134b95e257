"""Locks the kernel releases when their process dies, for a study that must survive `kill -9`.

Optuna's journal file locks are files that exist while held: a worker killed while holding one
leaves it, and every other worker then waits 30 s for it to be declared stale. An `flock` lock
is gone the moment its process is, so a killed tune is resumed at once. The same lock held for a
worker's whole life tells other workers whether it is still running (`worker_alive`).

POSIX only (Linux and macOS; Linux NFS clients emulate flock with NFS locks): where `fcntl` is
missing, callers fall back to Optuna's own lock.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

AVAILABLE = fcntl is not None


class FileLock:
    """An exclusive lock on `path` (created if missing), with Optuna's `acquire`/`release`."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class WorkerLock:
    """Held by a running worker on `folder/<worker>.lock` until `release` or its death."""

    def __init__(self, folder: Path, worker: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{worker}.lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


def worker_alive(folder: Path, worker: str) -> bool | None:
    """Whether the worker that locked `folder/<worker>.lock` still runs; None when it left no
    lock file there (it ran from another folder, or ended and removed it)."""
    path = folder / f"{worker}.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def live_workers(folder: Path) -> list[str]:
    """The workers whose locks in `folder` are held now."""
    if not folder.is_dir():
        return []
    return [p.stem for p in folder.glob("*.lock") if worker_alive(folder, p.stem)]
