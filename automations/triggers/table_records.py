"""Complete records out of a table file's bytes: CSV (header row) and JSONL.

A table may be read while it is being written, so only *complete* records count: a record ends
at a newline (for CSV, a newline outside a quoted field, judged by the ``csv`` module itself so
stray quotes in unquoted fields behave as ``csv`` reads them). What follows the last complete
record is left for the next read, and ``consumed`` says how many bytes were used, so the caller
can resume exactly there.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["ChunkRecords", "RawRecord", "TableProblem", "parse_chunk", "table_format"]

TableFormat = Literal["csv", "jsonl"]

_BOM = b"\xef\xbb\xbf"
_FORMATS: dict[str, TableFormat] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True, slots=True)
class TableProblem:
    """A record that was skipped (or a file that could not be read), at a 1-based ``line``
    (0 when it concerns the whole file)."""

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A complete record: its first physical line and its values (CSV: strings)."""

    line: int
    values: dict[str, Any]


@dataclass(slots=True)
class ChunkRecords:
    """What one read of a chunk yielded."""

    records: list[RawRecord] = field(default_factory=list)
    problems: list[TableProblem] = field(default_factory=list)
    #: Bytes of the chunk that held complete records (resume reading here).
    consumed: int = 0
    #: Physical lines in those bytes.
    lines: int = 0
    #: The CSV header in force after this chunk (``None`` until one was read; JSONL: ``None``).
    header: tuple[str, ...] | None = None
    #: With ``settled``: the unterminated final record, read but not ``consumed``.
    tail: RawRecord | None = None


def table_format(path: Path) -> TableFormat:
    """``csv`` for ``.csv``, ``jsonl`` for ``.jsonl`` / ``.ndjson``; ``ValueError`` otherwise."""
    try:
        return _FORMATS[path.suffix.lower()]
    except KeyError:
        raise ValueError(
            f"unsupported table file {path.name!r}: use .csv (with a header row) or .jsonl"
        ) from None


def parse_chunk(
    fmt: TableFormat,
    data: bytes,
    *,
    at_start: bool,
    first_line: int,
    header: tuple[str, ...] | None,
    settled: bool = False,
) -> ChunkRecords:
    """Read the complete records of ``data``, which starts at a record boundary.

    ``at_start``: ``data`` starts at byte 0 (a UTF-8 BOM is skipped); ``first_line``: the 1-based
    line number of ``data``'s first line; ``header``: the CSV header read earlier (``None`` at
    the start). With ``settled`` the writer is known to be done, so a final record without its
    newline is returned as ``tail`` (never ``consumed``: if more is written, it is read again).
    """
    skip = len(_BOM) if at_start and data.startswith(_BOM) else 0
    end = data.rfind(b"\n") + 1
    complete = data[skip:end] if end > skip else b""
    rest = data[max(end, skip) :]
    lines = complete.split(b"\n")[:-1]
    tail = rest if settled and rest.strip() else None
    if fmt == "csv":
        result = _parse_csv(lines, tail, first_line, header)
    else:
        result = _parse_jsonl(lines, tail, first_line)
    result.consumed += skip
    return result


def _decode(raw: bytes, line: int, problems: list[TableProblem]) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(TableProblem(line, "not valid UTF-8; invalid bytes replaced"))
        return raw.decode("utf-8", errors="replace")


class _LineFeed:
    """Feeds lines to ``csv.reader`` and notices when it asks for one beyond the end: a record
    yielded after that ran past the last newline (an open quoted field) and is incomplete."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.fed = 0
        self.exhausted = False

    def __iter__(self) -> Iterator[str]:
        for text in self.lines:
            self.fed += 1
            yield text
        self.exhausted = True


def _parse_csv(
    lines: list[bytes], tail: bytes | None, first_line: int, header: tuple[str, ...] | None
) -> ChunkRecords:
    out = ChunkRecords(header=header)
    texts = _decode_lines(lines, first_line, out.problems)
    if tail is not None:
        texts.append(_decode(tail, first_line + len(lines), out.problems))
    feed = _LineFeed(texts)
    reader = csv.reader(feed)
    done = 0  # lines holding complete records (or skipped faulty ones)
    while True:
        start = feed.fed
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if feed.exhausted:
                break
            # The reader starts afresh at the next line; the faulty record is skipped.
            out.problems.append(TableProblem(first_line + start, f"unreadable CSV: {exc}"))
            done = min(feed.fed, len(lines))
            continue
        if feed.exhausted:
            break  # an open quoted field: the rest of the record is not written yet
        is_tail = feed.fed > len(lines)
        if not is_tail:
            done = feed.fed
        if not values:
            continue  # a blank line
        if out.header is None:
            if is_tail:
                break  # a header without its newline: wait for it
            out.header = tuple(name.strip() for name in values)
            continue
        record = _csv_record(out.header, values, first_line + start, out.problems)
        if record is None:
            pass
        elif is_tail:
            out.tail = record
        else:
            out.records.append(record)
    out.lines = done
    out.consumed = sum(len(raw) + 1 for raw in lines[:done])
    return out


def _decode_lines(lines: list[bytes], first_line: int, problems: list[TableProblem]) -> list[str]:
    """Each line as text with its newline; invalid UTF-8 is replaced, line by line, and reported."""
    if not lines:
        return []
    try:
        # One decode for the whole chunk: a UTF-8 newline byte is always a newline, so the text
        # splits into the same lines as the bytes.
        texts = b"\n".join(lines).decode("utf-8").split("\n")
    except UnicodeDecodeError:
        texts = [_decode(raw, first_line + index, problems) for index, raw in enumerate(lines)]
    return [text + "\n" for text in texts]


def _csv_record(
    header: tuple[str, ...], values: list[str], line: int, problems: list[TableProblem]
) -> RawRecord | None:
    if len(values) != len(header):
        extra = values[len(header) :]
        if any(value.strip() for value in extra):
            message = f"{len(values)} values but the header has {len(header)} columns"
            problems.append(TableProblem(line, message))
            return None
        # Missing trailing values are empty; extra empty ones (a trailing comma) are dropped.
        values = values[: len(header)] + [""] * (len(header) - len(values))
    return RawRecord(line, dict(zip(header, values, strict=True)))


def _parse_jsonl(lines: list[bytes], tail: bytes | None, first_line: int) -> ChunkRecords:
    out = ChunkRecords(consumed=sum(len(raw) + 1 for raw in lines), lines=len(lines))
    for index, raw in enumerate(lines):
        if raw.strip():
            record = _jsonl_record(raw, first_line + index, out.problems)
            if record is not None:
                out.records.append(record)
    if tail is not None:
        # A final line without its newline may still be half-written: only a line that parses
        # is taken, and silently nothing otherwise.
        out.tail = _jsonl_record(tail, first_line + len(lines), [])
    return out


def _jsonl_record(raw: bytes, line: int, problems: list[TableProblem]) -> RawRecord | None:
    try:
        value = json.loads(raw)
    except UnicodeDecodeError:
        problems.append(TableProblem(line, "not valid UTF-8"))
        return None
    except json.JSONDecodeError as exc:
        problems.append(TableProblem(line, f"invalid JSON: {exc.msg} (column {exc.colno})"))
        return None
    if not isinstance(value, dict):
        problems.append(TableProblem(line, f"expected a JSON object, got {_json_kind(value)}"))
        return None
    return RawRecord(line, value)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"
