"""The redactor: secrets never leave the engine, whatever shape they travel in."""

from __future__ import annotations

from automations.redact import Redactor


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
