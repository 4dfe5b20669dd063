"""Incoming JSON, parsed strictly: every poison value is refused with its reason."""

from __future__ import annotations

import sys

import pytest

from automations.errors import EventError
from automations.triggers.payload import MAX_DEPTH, parse_event

DEEP = f"the body nests objects or arrays deeper than {MAX_DEPTH} levels"
SURROGATE = "the body holds a lone surrogate"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": NaN}', "NaN is not JSON: send a number, a string or null"),
        (b'{"a": Infinity}', "Infinity is not JSON"),
        (b'{"a": -Infinity}', "-Infinity is not JSON"),
        (b'{"a": 1e999}', "the number 1e999 is too large for a double (over 1.8e308)"),
        (b'{"a": -1E+400}', "the number -1E+400 is too large"),
        (b'{"a": "\\ud800"}', SURROGATE),
        (b'{"\\uDFFF": 1}', SURROGATE),  # in a key, upper-case hex
        (b'["\\ude00\\ud83d"]', SURROGATE),  # a pair in the wrong order
        (b"[" * 970 + b"]" * 970, DEEP),
        (b"[" * 100_000, DEEP),  # the parser's own recursion limit, unclosed
        (b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), DEEP),
        (b"1" * 4301, "the body holds an integer of more than 4300 digits: send it as a string"),
        (b"\xff{}", "the body is not UTF-8 (byte 0)"),
        (b"not json", "the body is not JSON (Expecting value at line 1 column 1)"),
        (b"", "the body is not JSON (Expecting value at line 1 column 1)"),
    ],
)
def test_poison_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_event(body)
    assert str(caught.value).startswith(message)


def _nested(levels: int, inner: object) -> object:
    for _ in range(levels):
        inner = [inner]
    return inner


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b'{"a": 1.5e308, "b": -2.5e-320}', {"a": 1.5e308, "b": -2.5e-320}),
        (b'["\\ud83d\\ude00", "\\u00e9"]', ["😀", "é"]),
        ('["é", "😀"]'.encode(), ["é", "😀"]),
        (b'"\\\\ud800"', "\\ud800"),  # an escaped backslash, then "ud800": plain text
        (b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, _nested(MAX_DEPTH - 1, [])),
        # more brackets than the limit, but shallow: the walk finds depth 2
        (b"[" + b"[]," * 200 + b"{}]", [*([[]] * 200), {}]),
        (b"9" * 4300, int("9" * 4300)),
    ],
)
def test_good_json_is_taken(body: bytes, value: object) -> None:
    assert parse_event(body) == value


def test_text_is_parsed_the_same_way() -> None:
    assert parse_event('{"a": [1, "é"]}') == {"a": [1, "é"]}
    with pytest.raises(EventError, match="NaN is not JSON"):
        parse_event("[NaN]")


@pytest.mark.parametrize("text", ['{"a": "x\udcff"}', '{"a": "x\ud800"}'])
def test_text_that_is_not_utf8_is_refused(text: str) -> None:
    # the command line gives bytes that are not UTF-8 as lone surrogates (U+DC80-U+DCFF): --row
    # took them, and an SMS or event would carry them as far as the send
    with pytest.raises(EventError) as caught:
        parse_event(text)
    assert str(caught.value) == "the body is not UTF-8 (character 8)"


def test_the_digit_limit_is_pythons() -> None:
    assert sys.get_int_max_str_digits() == 4300
