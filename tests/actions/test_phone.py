from __future__ import annotations

import pytest

from automations.errors import RenderError
from automations.phone import to_e164


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("(555) 555-0100", "US", "+15555550100"),
        ("555.555.0100", "US", "+15555550100"),
        ("+1 555 555 0100", "US", "+15555550100"),
        ("  +15555550100 ", "GB", "+15555550100"),
        ("+44 7911 123456", "US", "+447911123456"),
        ("07911 123456", "GB", "+447911123456"),
        ("tel:+1-555-555-0100", "US", "+15555550100"),
        (15555550100, "US", "+15555550100"),  # YAML read +15555550100 as an int
        (5555550100, "US", "+15555550100"),
        (447911123456, "US", "+447911123456"),  # not a US number: read as international
        (5555550100.0, "US", "+15555550100"),
    ],
)
def test_normalizes_to_e164(value: object, region: str, expected: str) -> None:
    assert to_e164(value, region) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("555", "to[0]: '555' has the wrong number of digits for its country (region US)"),
        ("", "to[0]: the phone number is empty"),
        ("   ", "to[0]: the phone number is empty"),
        (None, "to[0]: expected a phone number, got nothing (the value is empty)"),
        (True, "to[0]: expected a phone number, got bool 'True'"),
        ([1], "to[0]: expected a phone number, got list '[1]'"),
        ("call me", "to[0]: 'call me' is not a phone number (region US)"),
        (
            "5555550100 x12",
            "to[0]: '5555550100 x12' has an extension, which a text message "
            "cannot reach (region US)",
        ),
    ],
)
def test_refuses_what_is_not_a_phone_number(value: object, message: str) -> None:
    with pytest.raises(RenderError) as info:
        to_e164(value, "US", path="to[0]")
    assert str(info.value) == message
    assert info.value.path == "to[0]"


def test_unknown_region_is_named() -> None:
    with pytest.raises(RenderError) as info:
        to_e164("555 555 0100", "XX", path="from")
    assert str(info.value) == (
        "from: '555 555 0100' has no country code and 'XX' is not a known region (region XX)"
    )


def test_the_nanp_fast_path_agrees_with_phonenumbers() -> None:
    import random

    import phonenumbers

    from automations.phone import to_e164

    rng = random.Random(7)
    for _ in range(2000):
        text = "+1" + "".join(rng.choice("0123456789") for _ in range(10))
        parsed = phonenumbers.parse(text, "US")
        assert phonenumbers.is_possible_number(parsed)
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == text
        assert to_e164(text, "GB") == text
