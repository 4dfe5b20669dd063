"""Keep secrets out of everything the engine writes: audit rows, logs, errors, previews."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "Redactor"]

MASK = "***"
#: Shorter values are not treated as secrets: masking "1" or "yes" everywhere would garble
#: the audit while protecting nothing.
_MIN_SECRET_LEN = 6


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

    def merged(self, other: Redactor) -> Redactor:
        r = Redactor()
        r._map = {**self._map, **other._map}
        r._rx = (
            re.compile("|".join(re.escape(v) for v in sorted(r._map, key=len, reverse=True)))
            if r._map
            else None
        )
        return r

    def text(self, s: str) -> str:
        if self._rx is None:
            return s
        return self._rx.sub(lambda m: self._map[m.group(0)], s)

    def value(self, v: Any) -> Any:
        """``v`` with secrets replaced in every string, keys included."""
        if self._rx is None:
            return v
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {self.text(str(k)): self.value(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [self.value(x) for x in v]
        return v
