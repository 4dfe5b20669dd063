"""Opening a table file safely: inside the recipes directory, a regular file, of bounded size.

A recipe names its table (``trigger.table.path``); a recipe is code from a pull request, so the
path is not trusted. ``open_table`` refuses, with a ``TableFileError`` that says what to do:

- a path that resolves (symlinks followed) outside the allowed directories: the recipes directory,
  plus any the operator allowed (``--allow-tables-outside DIR``, ``AUTOMATIONS_TABLES_OUTSIDE``);
- anything but a regular file: a FIFO would block the reader for ever, ``/dev/zero`` never ends.
  The file is opened non-blocking and checked with ``fstat`` before a byte is read;
- a file over ``max_bytes`` (``AUTOMATIONS_MAX_TABLE_MB``, default 128 MiB); reads stop there too,
  should the file grow while it is read.

Lint (``recipes/tables.py``) and the trigger (``triggers/table.py``) both open tables through here.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from automations.errors import TableFileError

__all__ = [
    "DEFAULT_MAX_TABLE_BYTES",
    "MAX_TABLE_ENV",
    "OUTSIDE_ENV",
    "TableAccess",
    "open_table",
    "outside_problem",
    "read_bounded",
    "too_large",
]

#: The largest table file read by default.
DEFAULT_MAX_TABLE_BYTES = 128 * 1024 * 1024
#: Environment variable: the largest table file, in MiB.
MAX_TABLE_ENV = "AUTOMATIONS_MAX_TABLE_MB"
#: Environment variable: more directories tables may be in (``os.pathsep``-separated).
OUTSIDE_ENV = "AUTOMATIONS_TABLES_OUTSIDE"

_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)


@dataclass(frozen=True, slots=True)
class TableAccess:
    """Where tables may be and how large: ``roots`` are resolved directories (empty: anywhere)."""

    roots: tuple[Path, ...] = ()
    max_bytes: int = DEFAULT_MAX_TABLE_BYTES

    @classmethod
    def for_recipes(
        cls, directory: Path, env: Mapping[str, str], outside: Iterable[Path] = ()
    ) -> TableAccess:
        """Tables of the recipes in ``directory``: inside it, or inside a directory in
        ``outside`` or ``$AUTOMATIONS_TABLES_OUTSIDE``; at most ``$AUTOMATIONS_MAX_TABLE_MB``."""
        extra = [Path(p) for p in env.get(OUTSIDE_ENV, "").split(os.pathsep) if p.strip()]
        roots = [directory, *outside, *extra]
        resolved = tuple(dict.fromkeys(Path(os.path.realpath(r)) for r in roots))
        return cls(resolved, max_table_bytes(env))


def max_table_bytes(env: Mapping[str, str]) -> int:
    raw = env.get(MAX_TABLE_ENV, "").strip()
    try:
        mib = float(raw) if raw else 0.0
    except ValueError:
        mib = 0.0
    return int(mib * 1024 * 1024) if mib > 0 else DEFAULT_MAX_TABLE_BYTES


def outside_problem(path: Path, roots: tuple[Path, ...]) -> str | None:
    """Why ``path`` may not be read (it resolves outside every root), or ``None``."""
    if not roots:
        return None
    real = os.path.realpath(path)
    for root in roots:
        base = str(root)
        if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
            return None
    return (
        f"{path.name} resolves to {real}, outside the recipes directory; keep tables inside it "
        f"(or allow that folder: --allow-tables-outside DIR or ${OUTSIDE_ENV})"
    )


def open_table(path: Path, access: TableAccess) -> BinaryIO:
    """``path`` opened for reading, checked first (see the module docstring).

    ``FileNotFoundError`` when it does not exist; ``TableFileError`` when it may not be read;
    other ``OSError`` as the system says."""
    problem = outside_problem(path, access.roots)
    if problem is not None:
        raise TableFileError(problem)
    # non-blocking: opening a FIFO for reading would otherwise wait for a writer
    fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC | _BINARY)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise TableFileError(
                f"{path.name} is not a regular file ({_kind(st.st_mode)}); a table must be a "
                "plain .csv or .jsonl file"
            )
        if st.st_size > access.max_bytes:
            raise TableFileError(too_large(path, access.max_bytes))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(handle: BinaryIO, path: Path, max_bytes: int, already: int = 0) -> bytes:
    """The rest of ``handle``; ``TableFileError`` if the file (``already`` bytes read before
    plus this) exceeds ``max_bytes``, as a file growing while it is read may."""
    data = handle.read(max_bytes - already + 1)
    if already + len(data) > max_bytes:
        raise TableFileError(too_large(path, max_bytes))
    return data


def too_large(path: Path, max_bytes: int) -> str:
    """The refusal of a table over ``max_bytes``, with what to do."""
    mib = 1024 * 1024
    size = f"{max_bytes // mib} MiB" if max_bytes >= mib else f"{max_bytes} bytes"
    return (
        f"{path.name} is larger than the {size} a table may be; split it, or raise ${MAX_TABLE_ENV}"
    )


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"
