"""Incoming JSON, parsed strictly: only values every later stage can store, render and send.

Python's ``json`` accepts more than JSON: ``NaN``, ``Infinity``, numbers like ``1e999`` (read as
infinity), and ``"\\ud800"`` (a lone surrogate, which is not text and cannot be encoded as UTF-8).
Each of these used to be recorded and then crash the run at send. Nesting is bounded too: the
parser itself gives up near 1,000 levels (a 500, which providers retry forever), and the stages
after it (redaction, templates, JMESPath) recurse as well. ``parse_event`` refuses all of these
with an ``EventError`` whose message says what is wrong, so the intake answers 400 and records
nothing.

Limits (no provider's delivery comes near them):

- nesting: ``MAX_DEPTH`` (64) levels of objects and arrays;
- integers: Python's own limit of 4,300 digits (``sys.get_int_max_str_digits``);
- floats: finite doubles (``1e308`` is fine, ``1e999`` is refused).
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from automations.errors import EventError

__all__ = ["MAX_DEPTH", "parse_event"]

#: The deepest nesting of objects and arrays accepted.
MAX_DEPTH = 64

_TOO_DEEP = f"the body nests objects or arrays deeper than {MAX_DEPTH} levels"
# A \u escape in the surrogate range (D800-DFFF): only then can a lone surrogate appear.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _constant(name: str) -> Any:
    raise EventError(f"{name} is not JSON: send a number, a string or null")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise EventError(f"the number {text[:40]} is too large for a double (over 1.8e308)")
    return value


_DECODE = json.JSONDecoder(parse_constant=_constant, parse_float=_float).decode


def parse_event(data: bytes | str) -> Any:
    """The JSON value in ``data`` (UTF-8 bytes or text), or ``EventError`` saying why not."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventError(f"the body is not UTF-8 (byte {exc.start})") from None
        raw = data
    else:
        # text from the command line holds the bytes that are not UTF-8 as lone surrogates
        # (U+DC80-U+DCFF), which no escape check below would see
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EventError(f"the body is not UTF-8 (character {exc.start})") from None
        text = data
    try:
        value = _DECODE(text)
    except json.JSONDecodeError as exc:
        raise EventError(
            f"the body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise EventError(_TOO_DEEP) from None
    except ValueError:  # an integer over Python's digit limit
        raise EventError(
            f"the body holds an integer of more than {sys.get_int_max_str_digits()} digits: "
            "send it as a string"
        ) from None
    # Nesting can only pass the limit with more brackets than levels: count them (C speed)
    # before walking anything.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise EventError(_TOO_DEEP)
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(value):
        raise EventError(
            "the body holds a lone surrogate (an unpaired \\uD800-\\uDFFF escape), which is not "
            "text: send the character itself or a valid pair"
        )
    return value


def _depth(value: Any) -> int:
    """The nesting depth of ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        level += 1
        if level > deepest:
            deepest = level
            if deepest > MAX_DEPTH:
                return deepest
        stack.extend((child, level) for child in item)
    return deepest


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
