"""Keep secrets out of everything the engine writes: audit rows, logs, errors, previews.

A secret is masked in every form it can take in what the engine writes: as is; as the E.164 form
of a phone number; percent-encoded, as a URL's query carries it (``quote`` and ``quote_plus``,
with the safe characters of ``urllib`` and of httpx, hex in either case: ``US%2FLEAK``,
``US%2fLEAK``, ``a+b``); JSON-escaped, as a JSON log line or stored JSON text carries it.

Values shorter than ``MIN_SECRET_LEN`` (6) characters are not masked in free text (responses,
error messages, logs): masking ``"1"`` or ``"yes"`` everywhere would garble the audit while
protecting nothing. Where a recipe *substitutes* such a value (``${PIN}`` in a request), the
audit and ``render`` show ``${PIN}`` in its place all the same: the executor renders the shown
copy of the request with the placeholder (``ShortSecrets``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MIN_SECRET_LEN", "Redactor", "restore_placeholders", "short_secrets"]

MASK = "***"
#: Shorter values are not masked in free text (see the module docstring).
MIN_SECRET_LEN = 6
#: The characters each quoting leaves as they are: ``urllib``'s defaults, ``urlencode`` as
#: ``mask_url`` calls it, and httpx's for a query.
_SAFE_SETS = ("", "/", "*", "!$&'()*+,;=:@/?")
_HEX = re.compile(r"%[0-9A-F]{2}")
# Built once: ``json.dumps`` with options builds an encoder on every call, and every body that
# leaves the engine is scanned.
_SCAN_TEXT = json.JSONEncoder(ensure_ascii=False, check_circular=False, default=str).encode


def _variants(value: str) -> Iterable[str]:
    yield value
    digits = re.sub(r"\D", "", value)
    if 7 <= len(digits) <= 15 and digits != value:  # a phone number's E.164 form
        yield ("+1" + digits) if len(digits) == 10 else ("+" + digits)
    for safe in _SAFE_SETS:
        for encoded in (quote(value, safe=safe), quote_plus(value, safe=safe)):
            yield encoded
            yield _HEX.sub(lambda m: m.group(0).lower(), encoded)
    yield json.dumps(value)[1:-1]
    yield json.dumps(value, ensure_ascii=False)[1:-1]


_QUOTED_PLACEHOLDER = re.compile(r"%24%7B([A-Za-z_][A-Za-z0-9_]*)%7D", re.IGNORECASE)


def restore_placeholders(url: str) -> str:
    """``url`` with percent-encoded ``${NAME}`` placeholders (``%24%7BNAME%7D``) written back as
    ``${NAME}``, the way the audit shows every masked value."""
    return _QUOTED_PLACEHOLDER.sub(lambda m: "${" + m.group(1) + "}", url) if "%" in url else url


def short_secrets(env: Mapping[str, str], names: Iterable[str]) -> frozenset[str]:
    """The variables of ``names`` set in ``env`` to a value too short to mask in free text."""
    return frozenset(n for n in names if 0 < len(env.get(n, "")) < MIN_SECRET_LEN)


class Redactor:
    """Replaces every occurrence of a secret value with ``${NAME}`` (or ``***``).

    Built from the environment variables a recipe references plus the API keys and webhook
    secrets in use; applied to every string that leaves the engine.
    """

    def __init__(
        self, secrets: Mapping[str, str] | None = None, *, min_len: int = MIN_SECRET_LEN
    ) -> None:
        pairs: dict[str, str] = {}
        for name, value in (secrets or {}).items():
            if not value or len(value) < min_len:
                continue
            for v in _variants(value):
                pairs.setdefault(v, "${" + name + "}" if name else MASK)
        self._map = pairs
        self._rx = (
            re.compile("|".join(re.escape(v) for v in sorted(pairs, key=len, reverse=True)))
            if pairs
            else None
        )

    @classmethod
    def for_env(cls, env: Mapping[str, str], names: Iterable[str]) -> Redactor:
        """A redactor for the values of ``names`` in ``env``."""
        return cls({n: env[n] for n in names if n in env})

    def text(self, s: str) -> str:
        if self._rx is None:
            return s
        # URLs and header values repeat on every request: remember short strings' answers
        cache = self.__dict__.setdefault("_texts", {})
        done = cache.get(s)
        if done is None:
            done = self._rx.sub(lambda m: self._map[m.group(0)], s)
            if len(s) <= 256:
                if len(cache) >= 4096:
                    cache.clear()
                cache[s] = done
        return str(done)

    def value(self, v: Any) -> Any:
        """``v`` with secrets replaced in every string, keys included."""
        if self._rx is None:
            return v
        if isinstance(v, str):
            return self.text(v)
        # One C-level scan instead of a walk: most bodies hold no secret. The pattern holds
        # each secret's JSON-escaped form too, so a secret JSON escapes is found as well.
        if isinstance(v, dict | list) and not self._rx.search(_SCAN_TEXT(v)):
            return v
        return self._walk(v)

    def _walk(self, v: Any) -> Any:
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {self.text(str(k)): self._walk(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [self._walk(x) for x in v]
        return v
