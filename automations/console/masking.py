"""Phone numbers and e-mail addresses masked where many runs are listed.

A list of runs shows whose they are without showing everyone's contact details to whoever looks
over a shoulder: ``j•••@example.com``, ``+1•••••••0100``. The run page shows them in full (one
person, on purpose). Secrets are never shown at all: records are redacted before they are stored.
"""

from __future__ import annotations

import re

__all__ = ["DOT", "mask_email", "mask_phone", "mask_text"]

DOT = "•"

_EMAIL = re.compile(r"([A-Za-z0-9._%+\-]+)@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")
# A run of 7 to 15 digits, allowing the separators people type: +1 (555) 555-0100, 555.555.0100
# (not inside a word: event ids like evt_0000000001 and fire times stay as they are)
_PHONE = re.compile(r"(?<![\w+(])[+(]?\d(?:[\s().\-]*\d){6,14}(?!\w)")


def mask_email(local: str, domain: str) -> str:
    """``jane.doe`` at ``example.com`` -> ``j•••@example.com``."""
    return f"{local[:1]}{DOT * 3}@{domain}"


def mask_phone(number: str) -> str:
    """Every digit but the last four (and a leading ``+`` and country code ``1``) hidden:
    ``+15555550100`` -> ``+1•••••••0100``."""
    digits = re.sub(r"\D", "", number)
    if number.startswith("("):
        number = number[1:]
    keep = 4 if len(digits) > 6 else 2
    head = "+" if number.startswith("+") else ""
    if head and digits.startswith("1") and len(digits) == 11:
        head, digits = "+1", digits[1:]
    return head + DOT * (len(digits) - keep) + digits[-keep:]


def mask_text(text: str) -> str:
    """``text`` with every e-mail address and phone-number-like run of digits masked."""
    if not text:
        return text
    out = _EMAIL.sub(lambda m: mask_email(m.group(1), m.group(2)), text)
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), out)
