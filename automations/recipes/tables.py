"""What lint can learn from a table file without running anything: its column names."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

__all__ = ["read_columns"]

_Columns = tuple[list[str] | None, str]

#: ``read_columns`` answers by path, valid while the file's stat signature is unchanged: a
#: directory of recipes usually shares one table, whose header is then read once per lint run.
_ANSWERS: dict[str, tuple[tuple[int, ...], _Columns]] = {}
_MAX_ANSWERS = 256


def read_columns(path: Path) -> tuple[list[str] | None, str]:
    """The table's column names and where they came from (``"header"``, ``"first record"``).

    Returns ``(None, reason)`` when the file cannot tell (missing, empty, unreadable).
    """
    key = str(path)
    try:
        st = os.stat(key)
    except FileNotFoundError:
        return None, "the file does not exist yet"
    except OSError:
        return _read_columns(path)  # let opening it say what is wrong
    signature = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev)
    cached = _ANSWERS.get(key)
    if cached is None or cached[0] != signature:
        if len(_ANSWERS) >= _MAX_ANSWERS:
            _ANSWERS.clear()
        cached = _ANSWERS[key] = (signature, _read_columns(path))
    names, how = cached[1]
    return (None if names is None else list(names)), how


def _read_columns(path: Path) -> _Columns:
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            if path.suffix == ".csv":
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
    except FileNotFoundError:
        return None, "the file does not exist yet"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        return None, f"it cannot be read ({exc.__class__.__name__})"
