"""What lint can learn from a table file without running anything: its column names."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from automations.triggers.table_files import TableAccess, open_table

__all__ = ["read_columns"]

_Columns = tuple[list[str] | None, str]

#: ``read_columns`` answers by path, valid while the file's stat signature is unchanged: a
#: directory of recipes usually shares one table, whose header is then read once per lint run.
_ANSWERS: dict[str, tuple[tuple[int, ...], _Columns]] = {}
_MAX_ANSWERS = 256
#: The most bytes read to find the header (or the first JSONL record).
_HEAD_BYTES = 1 << 20


_ANYWHERE = TableAccess()


def read_columns(path: Path, access: TableAccess = _ANYWHERE) -> tuple[list[str] | None, str]:
    """The table's column names and where they came from (``"header"``, ``"first record"``).

    Returns ``(None, reason)`` when the file cannot tell (missing, empty, unreadable); raises
    ``TableFileError`` when it may not be read at all (outside ``access``, a FIFO, a device).
    """
    key = str(path)
    try:
        st = os.stat(key)
    except FileNotFoundError:
        return None, "the file does not exist yet"
    except OSError:
        return _read_columns(path, access)  # let opening it say what is wrong
    signature = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev, st.st_mode)
    cached = _ANSWERS.get(key)
    if cached is None or cached[0] != signature:
        if len(_ANSWERS) >= _MAX_ANSWERS:
            _ANSWERS.clear()
        cached = _ANSWERS[key] = (signature, _read_columns(path, access))
    names, how = cached[1]
    return (None if names is None else list(names)), how


def _read_columns(path: Path, access: TableAccess) -> _Columns:
    try:
        with open_table(path, access) as raw:
            head = raw.read(_HEAD_BYTES)
    except FileNotFoundError:
        return None, "the file does not exist yet"
    except OSError as exc:
        return None, f"it cannot be read ({exc.__class__.__name__})"
    if len(head) == _HEAD_BYTES:  # cut at a line end, not inside a character
        head = head[: head.rfind(b"\n") + 1] or head
    try:
        fh = io.StringIO(head.decode("utf-8-sig"), newline="")
        if Path(os.path.realpath(path)).suffix.lower() == ".csv":
            header = next(csv.reader(fh), None)
            if not header:
                return None, "the file is empty"
            return [h.strip() for h in header], "header"
        for line in fh:
            if line.strip():
                record = json.loads(line)
                if not isinstance(record, dict):
                    return None, "its first line is not a JSON object"
                return list(record), "first record"
        return None, "the file is empty"
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        return None, f"it cannot be read ({exc.__class__.__name__})"
