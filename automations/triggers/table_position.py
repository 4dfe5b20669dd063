"""Where a table reader is in its file, whether the file only grew since, and reading on from there.

After the last complete record it read, the reader remembers (``Position``, persisted in the
table's ``meta``): the byte offset and line number, the CSV header, the file's identity (device
and inode), a hash of every byte before the offset (``prefix``) and a *fingerprint*: a hash of a
bounded sample of those bytes (the first and the last 4 KiB before the offset and 14 blocks of
256 bytes spread evenly between), about 10 KiB whatever the file's size.

Whether the file only grew (``resume``):

- same identity, not shorter than the offset, same fingerprint, and a prefix hash known to hold:
  it only grew; reading resumes at the offset and only the new bytes are read. The cost of a look
  does not depend on the file's size.
- The prefix hash is known to hold within a process once checked: the reader keeps it live
  (``hashlib`` state, updated with every byte read), so only the first look of a process reads the
  prefix again (hashing it, not parsing it) to check it against the stored one. That finds what
  changed while the runner was down.
- Anything else (another file renamed over it, shrunk, a sampled byte changed): the file was
  rewritten, and it is read again from the start; rows are compared key by key with their marks,
  so only rows that really changed run.

The limit, said plainly: while the runner runs, an edit in place (same file, same size or longer)
that changes no sampled byte, such as one value replaced by another of the same length in the
middle of a large file by a program writing into it, is not seen as a rewrite; the rows after the
old end are read as appended, and the edited row is found at the next start of the runner (or the
next rewrite). Exporters and editors that write a new file and rename it, truncate it, or change
its length before the old end are always seen.

``read_chunks`` reads on from a position in chunks of about 32 KiB, each parsed into its complete
records (``table_records.parse_chunk``): a record cut by the chunk's end, or a half-written last
line, is kept for the next chunk (or the next look). A chunk that holds no complete record doubles
the next read, so a stray open quote costs linear time, not quadratic.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from automations.errors import TableFileError
from automations.triggers.table_files import too_large
from automations.triggers.table_records import ChunkRecords, TableFormat, parse_chunk

__all__ = ["Chunk", "Position", "fingerprint", "prefix_hasher", "read_chunks", "resume"]

#: Bytes parsed per chunk (about 330 rows of 100 bytes): one batch of a look, one store
#: transaction of its marks, short enough that a webhook recorded meanwhile hardly waits.
CHUNK_BYTES = 32 * 1024
_EDGE = 4096
_SAMPLES = 14
_SAMPLE = 256
_HASH_BLOCK = 1 << 20


def prefix_hasher() -> Any:
    """A fresh hash of a file's prefix (BLAKE2b, 16 bytes)."""
    return hashlib.blake2b(digest_size=16)


_EMPTY = prefix_hasher().hexdigest()


@dataclass(frozen=True, slots=True)
class Position:
    """Just after the last complete record read (see the module docstring)."""

    offset: int = 0
    line: int = 1
    header: tuple[str, ...] | None = None
    prefix: str = _EMPTY
    identity: tuple[int, int] | None = None
    fingerprint: str | None = None

    def as_meta(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "line": self.line,
            "header": list(self.header) if self.header is not None else None,
            "prefix": self.prefix,
            "identity": list(self.identity) if self.identity is not None else None,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Position:
        header = meta.get("header")
        identity = meta.get("identity")
        return cls(
            offset=int(meta.get("offset", 0)),
            line=int(meta.get("line", 1)),
            header=tuple(header) if header is not None else None,
            prefix=str(meta.get("prefix", _EMPTY)),
            identity=(int(identity[0]), int(identity[1])) if identity else None,
            fingerprint=meta.get("fingerprint"),
        )


def identity_of(handle: BinaryIO) -> tuple[int, int]:
    st = os.fstat(handle.fileno())
    return (st.st_dev, st.st_ino)


def fingerprint(handle: BinaryIO, end: int) -> str:
    """A hash of a bounded sample of ``handle``'s first ``end`` bytes (and of ``end``); leaves
    the handle where it was."""
    digest = hashlib.blake2b(end.to_bytes(8, "big"), digest_size=16)
    spans = [(0, min(end, _EDGE)), (max(0, end - _EDGE), min(end, _EDGE))]
    spans += [(end * i // (_SAMPLES + 1), _SAMPLE) for i in range(1, _SAMPLES + 1)]
    for start, length in spans:
        digest.update(_read_at(handle, start, max(0, min(length, end - start))))
    return digest.hexdigest()


def _read_at(handle: BinaryIO, start: int, length: int) -> bytes:
    """``length`` bytes at ``start`` without moving ``handle`` nor filling its buffer (a
    buffered read after a seek would read a whole buffer for a 256-byte sample)."""
    if hasattr(os, "pread"):
        return os.pread(handle.fileno(), length, start)
    here = handle.tell()  # pragma: no cover - Windows has no pread
    handle.seek(start)
    data = handle.read(length)
    handle.seek(here)
    return data


def resume(handle: BinaryIO, position: Position, live: Any | None) -> tuple[Position, Any] | None:
    """``position`` and the live hash of the bytes before it if ``handle``'s file only grew
    since ``position`` was taken; ``None`` if it must be read again from the start.

    ``live``: the prefix hash kept in memory since ``position`` was read in this process (then
    the prefix is not read again), or ``None`` (the first look: the prefix is hashed once)."""
    if position.offset == 0:
        return position, prefix_hasher()
    st = os.fstat(handle.fileno())
    if st.st_size < position.offset:
        return None
    if position.identity is not None and position.identity != (st.st_dev, st.st_ino):
        return None
    if position.fingerprint is not None:
        if fingerprint(handle, position.offset) != position.fingerprint:
            return None
    elif live is not None:
        live = None  # written by a release without fingerprints: check the prefix once
    if live is None:
        live = _hash_prefix(handle, position.offset)
        if live.hexdigest() != position.prefix:
            return None
    handle.seek(position.offset)
    return replace(position, identity=(st.st_dev, st.st_ino)), live


def _hash_prefix(handle: BinaryIO, end: int) -> Any:
    hasher = prefix_hasher()
    handle.seek(0)
    remaining = end
    while remaining:
        block = handle.read(min(remaining, _HASH_BLOCK))
        if not block:
            break
        hasher.update(block)
        remaining -= len(block)
    return hasher


@dataclass(frozen=True, slots=True)
class Chunk:
    """The complete records of one chunk and the position after them."""

    parsed: ChunkRecords
    position: Position
    #: The prefix hash at ``position`` (a copy: the reader goes on with its own).
    hasher: Any
    #: Whether reading stopped here (the end of the file as it was).
    last: bool


def read_chunks(
    handle: BinaryIO,
    path: Path,
    fmt: TableFormat,
    start: Position,
    hasher: Any,
    *,
    settled: bool,
    max_bytes: int,
) -> Iterator[Chunk]:
    """The records after ``start`` (``handle`` is there), chunk by chunk, until the end of the
    file; the last chunk says ``last``. ``TableFileError`` past ``max_bytes``."""
    position = start
    leftover = b""
    identity = identity_of(handle)
    while True:
        want = max(CHUNK_BYTES, 2 * len(leftover))
        block = handle.read(want)
        last = len(block) < want
        data = leftover + block
        if position.offset + len(data) > max_bytes:
            raise TableFileError(too_large(path, max_bytes))
        parsed = parse_chunk(
            fmt,
            data,
            at_start=position.offset == 0,
            first_line=position.line,
            header=position.header,
            settled=settled and last,
        )
        hasher.update(data[: parsed.consumed])
        offset = position.offset + parsed.consumed
        position = Position(
            offset=offset,
            line=position.line + parsed.lines,
            header=parsed.header,
            prefix=hasher.hexdigest(),
            identity=identity,
            fingerprint=fingerprint(handle, offset),
        )
        leftover = data[parsed.consumed :]
        yield Chunk(parsed, position, hasher.copy(), last)
        if last:
            return
