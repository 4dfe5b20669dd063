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
#: Spec path template -> the method of ``QuoFake`` that answers it.
_ROUTES = {
    "/v1/messages": "_send_message",
    "/v1/contacts": "_contacts",
    "/v1/contacts/{id}": "_update_contact",
    "/v1/call-summaries/{callId}": "_call_summary",
    "/v1/call-transcripts/{id}": "_call_transcript",
    "/v1/phone-numbers": "_phone_numbers",
}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _apply(contact: dict[str, Any], body: dict[str, Any]) -> None:
    """Set a contact's fields from a create or update body, as Quo does."""
    for name in ("externalId", "source", "sourceUrl"):
        if name in body:
            contact[name] = body[name]
    fields = body.get("defaultFields") or {}
    target = contact["defaultFields"]
    for name in ("company", "firstName", "lastName", "role"):
        if name in fields:
            target[name] = fields[name]
    for name, prefix in (("emails", "em"), ("phoneNumbers", "ph")):
        if name in fields:
            target[name] = [
                {**item, "id": f"{prefix}{i}"}
                for i, item in enumerate(fields[name])
                if item.get("value") is not None
            ]
    if "customFields" in body:
        contact["customFields"] = [
            {
                "key": f.get("key", ""),
                "id": f"cf{i}",
                "name": f.get("key", ""),
                "type": "string",
                "value": f.get("value"),
            }
            for i, f in enumerate(body["customFields"])
        ]


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
        #: Contacts as Quo keeps them: created, listed by ``externalIds``, updated by id.
        self.contacts: list[dict[str, Any]] = []
        #: Call id -> summary fields (``summary``, ``nextSteps``); call id -> transcript dialogue.
        self.call_summaries: dict[str, dict[str, Any]] = {}
        self.call_transcripts: dict[str, list[dict[str, Any]]] = {}
        self.phone_numbers: list[dict[str, Any]] = []
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
        matched = self.validator.match(request.method, path)
        if matched is None or matched[0] not in _ROUTES:
            return self.error(404, rec)
        template, values = matched
        problems = self.validator.parameter_errors(request.method, template, values, request.url)
        if request.method in ("POST", "PATCH", "PUT"):
            problems += self.validator.request_errors(request.method, template, rec.body)
        if problems:
            return self._bad_request(problems)
        handler = getattr(self, _ROUTES[template])
        response: httpx.Response = handler(request, rec, values)
        return response

    def _bad_request(self, problems: list[str]) -> httpx.Response:
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

    def _send_message(
        self, request: httpx.Request, rec: Received, values: dict[str, str]
    ) -> httpx.Response:
        now = _now()
        n = next(self._ids)
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

    def _create_contact(
        self, request: httpx.Request, rec: Received, values: dict[str, str]
    ) -> httpx.Response:
        now = _now()
        n = next(self._ids)
        contact = {
            "id": f"{n:024x}",
            "externalId": None,
            "source": "public-api",
            "sourceUrl": None,
            "defaultFields": {
                "company": None,
                "emails": [],
                "firstName": None,
                "lastName": None,
                "phoneNumbers": [],
                "role": None,
            },
            "customFields": [],
            "createdAt": now,
            "updatedAt": now,
            "createdByUserId": rec.body.get("createdByUserId", "US0000000001"),
        }
        _apply(contact, rec.body)
        self.contacts.append(contact)
        return httpx.Response(201, json={"data": contact})

    def _contacts(
        self, request: httpx.Request, rec: Received, values: dict[str, str]
    ) -> httpx.Response:
        if request.method == "GET":
            return self._list_contacts(request, rec, values)
        return self._create_contact(request, rec, values)

    def _list_contacts(
        self, request: httpx.Request, rec: Received, values: dict[str, str]
    ) -> httpx.Response:
        wanted = request.url.params.get_list("externalIds")
        found = [c for c in self.contacts if c["externalId"] in wanted]
        limit = int(request.url.params.get("maxResults", "10"))
        return httpx.Response(
            200, json={"data": found[:limit], "totalItems": len(found), "nextPageToken": None}
        )

    def _update_contact(
        self, request: httpx.Request, rec: Received, values: dict[str, str]
    ) -> httpx.Response:
        contact = next((c for c in self.contacts if c["id"] == values["id"]), None)
        if contact is None:
            return self.error(404, rec)
        _apply(contact, rec.body)
        contact["updatedAt"] = _now()
        return httpx.Response(200, json={"data": contact})

    def _call_summary(
        self, request: httpx.Request, rec: Received, values: dict[str, str]
    ) -> httpx.Response:
        summary = self.call_summaries.get(values["callId"])
        if summary is None:
            return self.error(404, rec)
        data = {"callId": values["callId"], "status": "completed", "nextSteps": [], **summary}
        return httpx.Response(200, json={"data": data})

    def _call_transcript(
        self, request: httpx.Request, rec: Received, values: dict[str, str]
    ) -> httpx.Response:
        dialogue = self.call_transcripts.get(values["id"])
        if dialogue is None:
            return self.error(404, rec)
        data = {
            "callId": values["id"],
            "createdAt": _now(),
            "dialogue": dialogue,
            "duration": max((d["end"] for d in dialogue), default=0),
            "status": "completed",
        }
        return httpx.Response(200, json={"data": data})

    def _phone_numbers(
        self, request: httpx.Request, rec: Received, values: dict[str, str]
    ) -> httpx.Response:
        return httpx.Response(200, json={"data": self.phone_numbers})

    def add_phone_number(self, number: str, *, us_messaging: str = "unrestricted") -> str:
        """A number of the workspace (``GET /v1/phone-numbers``); returns its ``PN`` id."""
        pid = f"PN{len(self.phone_numbers) + 1:08x}"
        now = _now()
        regions = {"CA": "unrestricted", "US": "unrestricted", "Intl": "restricted"}
        self.phone_numbers.append(
            {
                "id": pid,
                "groupId": "GR1",
                "createdAt": now,
                "updatedAt": now,
                "name": "Sales",
                "number": number,
                "formattedNumber": number,
                "forward": None,
                "portRequestId": None,
                "portingStatus": None,
                "symbol": None,
                "users": [
                    {
                        "email": "owner@example.com",
                        "firstName": "Owner",
                        "groupId": "GR1",
                        "id": "US0000000001",
                        "lastName": None,
                        "role": "owner",
                    }
                ],
                "restrictions": {
                    "messaging": {**regions, "US": us_messaging},
                    "calling": dict(regions),
                },
            }
        )
        return pid

    def rate_headers(self, remaining: int) -> dict[str, str]:
        """Quo's IETF ``ratelimit`` field: requests remaining and seconds to the window's reset."""
        if not self.pacing_headers:
            return {}
        return {"ratelimit": f'"default";r={remaining};t={self.reset_in:g}'}

    def rate_limited(self) -> httpx.Response:
        return httpx.Response(
            429, json={"message": "API rate limit exceeded"}, headers=self.rate_headers(0)
        )

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
