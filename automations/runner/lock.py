"""One runner per SQLite file: an exclusive lock on ``<database>.lock`` (a PostgreSQL database
takes none: several runners share it through claims with leases, ``stores/leases.py``).

Two runners on one SQLite file would both scan the same tables and both execute the same pending
runs. ``RunnerLock`` takes an exclusive, non-blocking advisory lock (``flock``; ``msvcrt.locking``
on Windows) on a file beside the database and writes its pid there for the message a second
runner shows. The operating system releases the lock when the process ends in any way, ``SIGKILL``
included, so a crashed runner never blocks the next start; the file itself is left in place
(deleting it would let two processes lock two different files of the same name).

Only ``automations run`` takes it: ``runs``, ``show``, ``approve`` and the other commands read
and write the database while a runner runs, as SQLite allows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType

from automations.errors import StartupError

__all__ = ["RunnerLock", "lock_path"]


def lock_path(db: Path) -> Path:
    """The lock file of the database ``db`` (by its real path: a link or a relative name for the
    same file shares the lock)."""
    return Path(os.path.realpath(db) + ".lock")


class RunnerLock:
    """``with RunnerLock(db): ...`` holds the lock; ``StartupError`` when another process has it."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.path = lock_path(db)
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise StartupError(f"cannot create the lock file {self.path}: {exc.strerror}") from exc
        if not _try_lock(fd):
            holder = _read_pid(fd)
            os.close(fd)
            who = f"another runner (pid {holder})" if holder else "another runner"
            raise StartupError(
                f"{who} is using the run database {self.db}; stop it first, or give this "
                "one its own --db"
            )
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __enter__(self) -> RunnerLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except (OSError, AttributeError):
        return ""
    return text if text.isdigit() else ""
