"""The redactor: secrets never leave the engine, whatever shape they travel in."""

from __future__ import annotations

import json
import re
from urllib.parse import quote, quote_plus

import httpx

from automations.redact import Redactor, restore_placeholders, short_secrets


def test_masks_values_everywhere() -> None:
    r = Redactor({"KEY": "sk_live_abcdef123456", "QUO_FROM": "(555) 555-0199"})
    body = {"auth": "Bearer sk_live_abcdef123456", "n": [{"from": "+15555550199"}], "x": 1}
    assert r.value(body) == {"auth": "Bearer ${KEY}", "n": [{"from": "${QUO_FROM}"}], "x": 1}
    assert r.text("key=sk_live_abcdef123456.") == "key=${KEY}."


def test_untouched_when_no_secret_present() -> None:
    r = Redactor({"KEY": "sk_live_abcdef123456"})
    body = {"a": ["b", {"c": 2}]}
    assert r.value(body) is body


def test_secrets_that_json_would_escape() -> None:
    r = Redactor({"KEY": 'pa"ss\\word'})
    assert r.value({"a": ['x pa"ss\\word']}) == {"a": ["x ${KEY}"]}


def test_short_values_are_not_secrets() -> None:
    r = Redactor({"FLAG": "yes"})
    assert r.value({"a": "yes"}) == {"a": "yes"}


SECRET = 'US/LEAK+k3y v@l"é~'


def _encodings(value: str) -> list[str]:
    """Every form ``value`` can take in a URL or in JSON text."""
    forms = {
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        quote_plus(value, safe="/"),
        httpx.URL("https://h.test/p?k=" + value).query.decode()[2:],
        json.dumps(value)[1:-1],
    }
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in forms}
    return sorted(forms - {value})


def test_every_encoding_of_a_secret_is_masked() -> None:
    r = Redactor({"LEAK_KEY": SECRET})
    forms = _encodings(SECRET)
    assert (
        "US%2FLEAK%2Bk3y%20v%40l%22%C3%A9~" in forms and "US%2fLEAK%2bk3y+v%40l%22%c3%a9~" in forms
    )
    for form in [SECRET, *forms]:
        assert r.text(f"https://h.test/p?key={form}&n=1") == "https://h.test/p?key=${LEAK_KEY}&n=1"
        if "\\" not in form:  # a JSON-escaped form is text in JSON, not in a value
            assert r.value({"url": f"x {form} y"}) == {"url": "x ${LEAK_KEY} y"}


def test_a_json_log_line_is_masked() -> None:
    r = Redactor({"LEAK_KEY": SECRET})
    line = json.dumps({"message": f"failed: {SECRET}"})
    assert SECRET not in r.text(line) and json.dumps(SECRET)[1:-1] not in r.text(line)
    assert json.loads(r.text(line)) == {"message": "failed: ${LEAK_KEY}"}


def test_short_secrets_and_placeholders() -> None:
    env = {"PIN": "4321", "KEY": "long-enough", "EMPTY": ""}
    assert short_secrets(env, ["PIN", "KEY", "EMPTY", "UNSET"]) == {"PIN"}
    assert Redactor({"PIN": "4321"}, min_len=1).text("pin 4321") == "pin ${PIN}"
    assert restore_placeholders("https://h.test/p?pin=%24%7BPIN%7D&x=%24%7bKEY%7d") == (
        "https://h.test/p?pin=${PIN}&x=${KEY}"
    )
