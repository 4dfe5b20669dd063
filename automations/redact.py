"""Keep secrets out of everything the engine writes: audit rows, logs, errors, previews."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "Redactor"]

MASK = "***"
#: Shorter values are not treated as secrets: masking "1" or "yes" everywhere would garble
#: the audit while protecting nothing.
_MIN_SECRET_LEN = 6
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f\x7f]')
# Built once: ``json.dumps`` with options builds an encoder on every call, and every body that
# leaves the engine is scanned.
_SCAN_TEXT = json.JSONEncoder(ensure_ascii=False, check_circular=False, default=str).encode


def _variants(value: str) -> Iterable[str]:
    yield value
    digits = re.sub(r"\D", "", value)
    if 7 <= len(digits) <= 15 and digits != value:  # a phone number's E.164 form
        yield ("+1" + digits) if len(digits) == 10 else ("+" + digits)


class Redactor:
    """Replaces every occurrence of a secret value with ``${NAME}`` (or ``***``).

    Built from the environment variables a recipe references plus the API keys and webhook
    secrets in use; applied to every string that leaves the engine.
    """

    def __init__(self, secrets: Mapping[str, str] | None = None) -> None:
        pairs: dict[str, str] = {}
        for name, value in (secrets or {}).items():
            if not value or len(value) < _MIN_SECRET_LEN:
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
        if isinstance(v, dict | list) and self._json_safe() and not self._rx.search(_SCAN_TEXT(v)):
            return v  # one C-level scan instead of a walk: most bodies hold no secret
        return self._walk(v)

    def _json_safe(self) -> bool:
        """Whether every secret appears in JSON text exactly as it is (nothing to escape)."""
        safe = self.__dict__.get("_safe")
        if safe is None:
            safe = not any(_JSON_ESCAPED.search(v) for v in self._map)
            self.__dict__["_safe"] = safe
        return bool(safe)

    def _walk(self, v: Any) -> Any:
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {self.text(str(k)): self._walk(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [self._walk(x) for x in v]
        return v
