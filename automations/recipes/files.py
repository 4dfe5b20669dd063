"""Reading a recipe file with bounds: a regular file, at most ``MAX_RECIPE_BYTES``, UTF-8.

A recipe path that is a FIFO would block the reader for ever and one that is a device
(``/dev/zero``) would never end, so the file is opened without blocking and read only if
``fstat`` says it is a regular file, and never more than one byte past the limit. Line endings
are read as ``Path.read_text`` reads them (``\\r\\n`` and ``\\r`` become ``\\n``), so a recipe
version's hash does not depend on which reader read it.

A recipe or test file found by walking a directory must resolve (symlinks followed) inside that
directory (``outside_directory``, ``IO002``): a link committed into the recipes folder must not
make lint print, or the runner run, a file from elsewhere on the machine. The same bounded reader
serves ``--row @file`` (``read_regular_file``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from automations.diagnostics import Diagnostic, Severity
from automations.recipes.yamllimits import MAX_RECIPE_BYTES

__all__ = ["outside_directory", "read_for_snippet", "read_recipe_file", "read_regular_file"]

_KIND = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


def read_regular_file(path: Path, limit: int) -> bytes | str:
    """Up to ``limit + 1`` bytes of the regular file at ``path`` (more than ``limit``: it is too
    large), or why it cannot be read (opened without blocking, so a FIFO never hangs)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        return exc.strerror or exc.__class__.__name__
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _KIND.get(stat.S_IFMT(mode), "not a regular file")
            return f"it is {kind}, not a regular file"
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        return exc.strerror or exc.__class__.__name__
    finally:
        os.close(fd)


def _universal_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def read_recipe_file(path: Path, name: str) -> str | Diagnostic:
    """The text of the recipe file at ``path``, or the diagnostic (reported as file ``name``)
    saying why it cannot be used: unreadable or not a regular file (``IO001``), over
    ``MAX_RECIPE_BYTES`` (``LIM003``), not UTF-8 (``IO001`` at the first bad byte)."""
    data = read_regular_file(path, MAX_RECIPE_BYTES)
    if isinstance(data, str):
        return Diagnostic(name, 1, 1, Severity.ERROR, "IO001", f"cannot read the file: {data}")
    if len(data) > MAX_RECIPE_BYTES:
        return Diagnostic(
            name,
            1,
            1,
            Severity.ERROR,
            "LIM003",
            f"the file is larger than {MAX_RECIPE_BYTES // 1024} KiB, the limit for a recipe; "
            "split it into several recipes",
        )
    try:
        return _universal_newlines(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        start = data.rfind(b"\n", 0, exc.start) + 1
        column = len(data[start : exc.start].decode("utf-8", "replace")) + 1
        return Diagnostic(
            name,
            line,
            column,
            Severity.ERROR,
            "IO001",
            f"byte 0x{data[exc.start]:02x} is not UTF-8; save the file as UTF-8 (an editor's "
            '"encoding" setting), and retype the character here',
        )


def outside_directory(
    path: Path, directory: Path, name: str, what: str, *, real: Path | None = None
) -> Diagnostic | None:
    """``IO002`` (reported as file ``name``) when ``path`` resolves, symlinks followed, outside
    ``directory`` (already resolved); ``real`` is ``path`` resolved, when the caller has it;
    ``what`` says which file it is ("recipe file", "test file")."""
    found = os.path.realpath(path) if real is None else str(real)
    base = str(directory)
    if found == base or found.startswith(base.rstrip(os.sep) + os.sep):
        return None
    return Diagnostic(
        name,
        1,
        1,
        Severity.ERROR,
        "IO002",
        f"{what} {path.name} is not read: it resolves to {found}, outside the recipes "
        "directory; move the file into it (or pass the directory that holds it)",
    )


def read_for_snippet(path: Path) -> str | None:
    """The file's text to show beside a diagnostic (bad bytes shown as U+FFFD), or ``None``."""
    data = read_regular_file(path, MAX_RECIPE_BYTES)
    if isinstance(data, str) or len(data) > MAX_RECIPE_BYTES:
        return None
    return _universal_newlines(data.decode("utf-8", "replace"))
