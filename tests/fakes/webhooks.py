"""Signed webhook deliveries, as Loops (Standard Webhooks) and Quo (OpenPhone) send them."""

from __future__ import annotations

import time
import uuid

from automations.triggers.verify import sign_openphone, sign_standard


def standard_headers(
    body: bytes, msg_id: str | None = None, *, secret: str, ts: int | None = None
) -> dict[str, str]:
    """Standard Webhooks headers for ``body``: a fresh ``webhook-id`` unless ``msg_id`` is given,
    the current time unless ``ts`` is."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int(time.time()) if ts is None else ts
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_standard(secret, msg_id, ts, body),
        "content-type": "application/json",
    }


def openphone_headers(body: bytes, *, secret: str) -> dict[str, str]:
    """Quo's ``openphone-signature`` header for ``body``, signed now."""
    return {
        "openphone-signature": sign_openphone(secret, int(time.time() * 1000), body),
        "content-type": "application/json",
    }
