"""A fake Quo (OpenPhone) API, direct (``/v1/...``) and through the Maton gateway (``/quo/v1/...``).

Direct requests must carry an accepted key as the raw ``Authorization`` value (a ``Bearer`` prefix
is refused, as Quo does). Maton requests must carry ``Bearer <maton key>`` and a ``User-Agent``.
Bodies are validated against the full Quo OpenAPI spec; ``sent_messages`` lists every SMS the fake
accepted (including one whose answer was then lost with ``TIMEOUT_AFTER_RECEIPT``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.fakes import FakeProvider, Received

__all__ = ["QuoFake"]

_DOCS = "https://openphone.com/docs"
#: status -> (code, title, description) as in Quo's spec.
_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("0206400", "A2P Registration Not Approved", "A2P Registration Not Approved"),
    401: ("0200401", "Unauthorized", None),
    402: (
        "0200402",
        "Not Enough Credits",
        "The organization does not have enough prepaid credits to send the message",
    ),
    403: ("0202403", "Not Phone Number User", "Not Phone Number User"),
    404: ("0200404", "Not Found", None),
    500: ("0201500", "Unknown", None),
}
_SENDER = "+15555550000"


class QuoFake(FakeProvider):
    spec_file = "quo-openapi.json"

    def __init__(
        self,
        keys: Iterable[str] = ("quo-test-key",),
        *,
        maton_keys: Iterable[str] = ("maton-test-key",),
        **kwargs: Any,
    ) -> None:
        super().__init__(keys, **kwargs)
        self.maton_keys = frozenset(maton_keys)
        self.sent_messages: list[dict[str, Any]] = []
        self.contacts: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def authenticate(
        self, request: httpx.Request, rec: Received
    ) -> tuple[str | None, httpx.Response | None]:
        auth = request.headers.get("authorization", "")
        if request.url.path.startswith("/quo/"):
            token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
            if token is None or token not in self.maton_keys:
                return None, httpx.Response(401, json={"error": {"message": "Invalid API key"}})
            if not request.headers.get("user-agent"):
                return None, httpx.Response(
                    403, json={"error": {"message": "A User-Agent header is required"}}
                )
            return f"maton:{token}", None
        if auth not in self.keys:
            return None, self.error(401, rec)
        return f"quo:{auth}", None

    def route(self, request: httpx.Request, rec: Received) -> httpx.Response:
        path = request.url.path.removeprefix("/quo")
        op = self.validator.operation(request.method, path)
        if op is None or path not in ("/v1/messages", "/v1/contacts"):
            return self.error(404, rec)
        problems = self.validator.request_errors(request.method, path, rec.body)
        if problems:
            return httpx.Response(
                400,
                json={
                    "message": problems[0],
                    "code": "0100400",
                    "status": 400,
                    "docs": _DOCS,
                    "title": "Bad Request",
                    "errors": [
                        {"path": p, "message": p, "schema": {"type": "object"}} for p in problems
                    ],
                },
            )
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        n = next(self._ids)
        if path == "/v1/messages":
            body = rec.body
            sender = body["from"]
            data = {
                "id": f"AC{n:024x}",
                "to": body["to"],
                "from": _SENDER if sender.startswith("PN") else sender,
                "text": body["content"],
                "phoneNumberId": sender if sender.startswith("PN") else f"PN{n:08x}",
                "direction": "outgoing",
                "userId": body.get("userId", "US0000000001"),
                "status": "queued",
                "createdAt": now,
                "updatedAt": now,
            }
            self.sent_messages.append(data)
            return httpx.Response(202, json={"data": data})
        fields = rec.body["defaultFields"]
        contact = {
            "id": f"{n:024x}",
            "externalId": rec.body.get("externalId"),
            "source": rec.body.get("source", "public-api"),
            "sourceUrl": rec.body.get("sourceUrl"),
            "defaultFields": {
                "company": fields.get("company"),
                "emails": [{**e, "id": f"em{i}"} for i, e in enumerate(fields.get("emails", []))],
                "firstName": fields.get("firstName"),
                "lastName": fields.get("lastName"),
                "phoneNumbers": [
                    {**p, "id": f"ph{i}"} for i, p in enumerate(fields.get("phoneNumbers", []))
                ],
                "role": fields.get("role"),
            },
            "customFields": [],
            "createdAt": now,
            "updatedAt": now,
            "createdByUserId": rec.body.get("createdByUserId", "US0000000001"),
        }
        self.contacts.append(contact)
        return httpx.Response(201, json={"data": contact})

    def error(self, status: int, rec: Received) -> httpx.Response:
        if status == 429:
            return self.rate_limited()
        if status not in _ERRORS:
            return httpx.Response(status, json={"message": f"fake error {status}"})
        code, title, description = _ERRORS[status]
        body: dict[str, Any] = {
            "message": description or title,
            "code": code,
            "status": status,
            "docs": _DOCS,
            "title": title,
            "trace": f"trace-{len(self.received)}",
        }
        if description is not None:
            body["description"] = description
        return httpx.Response(status, json=body)
