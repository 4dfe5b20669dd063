"""Phone numbers to E.164 (``+15555550100``), the only form Quo accepts.

Rows hold numbers as people type them: ``(555) 555-0100``, ``555.555.0100``, ``+44 7911 123456``,
or as integers when YAML or a JSON table reads ``+15555550100`` as a number. Numbers without a
country code are read in the recipe's ``phone_region``.

The check is ``is_possible_number`` (the length fits the country), not ``is_valid_number``: the
number-plan metadata would reject the 555 numbers used in examples and tests, and it goes stale
faster than the rules for length.
"""

from __future__ import annotations

import functools
import re

import phonenumbers

from automations.errors import RenderError

__all__ = ["to_e164"]

_NANP_E164 = re.compile(r"\+1\d{10}")


def to_e164(value: object, region: str, *, path: str = "") -> str:
    """``value`` as an E.164 string, reading national numbers in ``region`` (``"US"``).

    Raises ``RenderError`` (with ``path``, e.g. ``to[0]``) when the value is empty, not text or a
    whole number, or not a possible phone number.
    """
    if isinstance(value, bool) or value is None:
        raise RenderError(f"expected a phone number, got {_shown(value)}", path=path)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        # An integer lost its "+": try it as a national number first, then as international.
        return _parse_first_possible((str(value), f"+{value}"), region, path, shown=str(value))
    if not isinstance(value, str):
        raise RenderError(f"expected a phone number, got {_shown(value)}", path=path)
    text = value.strip()
    if not text:
        raise RenderError("the phone number is empty", path=path)
    if _NANP_E164.fullmatch(text):
        # already E.164 in the North American plan: every "+1" and ten digits is a possible
        # number and formats to itself (checked against phonenumbers in the tests), so the
        # full parse, the costliest step of building an SMS, is skipped
        return text
    return _parse_first_possible((text,), region, path, shown=text)


# the same numbers come back row after row (a fixed sender, a lead texted again): parse once
@functools.lru_cache(maxsize=4096)
def _parse_first_possible(candidates: tuple[str, ...], region: str, path: str, shown: str) -> str:
    problem = "is not a phone number"
    for text in candidates:
        try:
            number = phonenumbers.parse(text, region.upper() or None)
        except phonenumbers.NumberParseException as exc:
            problem = _parse_problem(exc, region)
            continue
        if number.extension:
            problem = "has an extension, which a text message cannot reach"
            continue
        if phonenumbers.is_possible_number(number):
            return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
        problem = "has the wrong number of digits for its country"
    raise RenderError(f"{shown[:40]!r} {problem} (region {region})", path=path)


def _parse_problem(exc: phonenumbers.NumberParseException, region: str) -> str:
    kind = exc.error_type
    if kind == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
        return f"has no country code and {region!r} is not a known region"
    if kind == phonenumbers.NumberParseException.TOO_SHORT_NSN:
        return "is too short"
    if kind == phonenumbers.NumberParseException.TOO_LONG:
        return "is too long"
    return "is not a phone number"


def _shown(value: object) -> str:
    if value is None:
        return "nothing (the value is empty)"
    return f"{type(value).__name__} {str(value)[:40]!r}"
