"""What lint can learn from a table file without running anything: its column names."""

from __future__ import annotations

import csv
import json
from pathlib import Path

__all__ = ["read_columns"]


def read_columns(path: Path) -> tuple[list[str] | None, str]:
    """The table's column names and where they came from (``"header"``, ``"first record"``).

    Returns ``(None, reason)`` when the file cannot tell (missing, empty, unreadable).
    """
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
