"""A fake Loops API: contacts (update, find, delete), events and transactional email.

Requires ``Authorization: Bearer <key>``; validates bodies against the full Loops OpenAPI spec and
the documented 500-character cap on values; answers 409 to an ``Idempotency-Key`` it has already
accepted (events and transactional email, within the fake's lifetime); sends
``x-ratelimit-limit`` / ``x-ratelimit-remaining``. Query parameters are checked against the spec
too; contacts are kept, so ``find`` sees what ``update`` stored and ``delete`` removes it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import httpx

from tests.fakes import FakeProvider, Received

__all__ = ["LoopsFake"]

_ROUTES = frozenset(
    {
        ("PUT", "/v1/contacts/update"),
        ("POST", "/v1/events/send"),
        ("GET", "/v1/contacts/find"),
        ("POST", "/v1/transactional"),
        ("POST", "/v1/contacts/delete"),
        ("GET", "/v1/api-key"),
    }
)


class LoopsFake(FakeProvider):
    spec_file = "loops-openapi.json"

    def __init__(self, keys: Iterable[str] = ("loops-test-key",), **kwargs: Any) -> None:
        super().__init__(keys, **kwargs)
        self.events: list[dict[str, Any]] = []
        self.transactional: list[dict[str, Any]] = []
        self.team_name = "Analytical Engines"
        self.contacts: dict[str, dict[str, Any]] = {}
        self.idempotency_keys: set[str] = set()
        self._ids = itertools.count(1)
        self._limit = self._limiter.limit

    def authenticate(
        self, request: httpx.Request, rec: Received
    ) -> tuple[str | None, httpx.Response | None]:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        if token is None or token not in self.keys:
            return None, self.error(401, rec)
        return f"loops:{token}", None

    def route(self, request: httpx.Request, rec: Received) -> httpx.Response:
        # Loops' servers entry is https://app.loops.so/api; the fake also answers without "/api".
        path = request.url.path.removeprefix("/api")
        if (request.method, path) not in _ROUTES:
            return httpx.Response(405 if self.validator.operation("post", path) else 404)
        problems = self.validator.parameter_errors(request.method, path, {}, request.url)
        if request.method != "GET":
            # Loops documents a contact property sent as null as "reset it", though its schema
            # allows no null: the rest of the body is checked against the spec
            checked = rec.body
            if path == "/v1/contacts/update" and isinstance(rec.body, dict):
                checked = {k: v for k, v in rec.body.items() if v is not None}
            problems += self.validator.request_errors(request.method, path, checked)
            problems += _too_long(rec.body)
        if problems:
            return httpx.Response(400, json={"success": False, "message": problems[0]})
        if request.method == "GET" and path == "/v1/api-key":
            return httpx.Response(200, json={"success": True, "teamName": self.team_name})
        if request.method == "GET":
            return self._find(request)
        body: dict[str, Any] = rec.body
        who = body.get("email") or body.get("userId")
        if path == "/v1/contacts/update":
            contact = self.contacts.setdefault(who, {"id": f"cl{next(self._ids):022x}"})
            contact.update(body)
            return httpx.Response(200, json={"success": True, "id": contact["id"]})
        if path == "/v1/contacts/delete":
            if self.contacts.pop(body["email"], None) is None:
                return httpx.Response(404, json={"success": False, "message": "Contact not found."})
            return httpx.Response(200, json={"success": True, "message": "Contact deleted."})
        refused = self._idempotency(request)
        if refused is not None:
            return refused
        if path == "/v1/transactional":
            self.transactional.append(body)
            return httpx.Response(200, json={"success": True})
        self.events.append(body)
        return httpx.Response(200, json={"success": True})

    def _find(self, request: httpx.Request) -> httpx.Response:
        email, user_id = request.url.params.get("email"), request.url.params.get("userId")
        if (email is None) == (user_id is None):
            return httpx.Response(
                400, json={"success": False, "message": "Provide either email or userId."}
            )
        found = [
            {
                "id": c["id"],
                "email": c.get("email", ""),
                "firstName": c.get("firstName"),
                "lastName": c.get("lastName"),
                "source": c.get("source", "API"),
                "subscribed": c.get("subscribed", True),
                "userGroup": c.get("userGroup", ""),
                "userId": c.get("userId"),
                "mailingLists": {},
                "optInStatus": None,
            }
            for c in self.contacts.values()
            if (email is not None and c.get("email") == email)
            or (user_id is not None and c.get("userId") == user_id)
        ]
        return httpx.Response(200, json=found)

    def _idempotency(self, request: httpx.Request) -> httpx.Response | None:
        key = request.headers.get("idempotency-key")
        if key is None:
            return None
        if len(key) > 100:
            return httpx.Response(
                400, json={"success": False, "message": "Idempotency-Key is too long."}
            )
        if key in self.idempotency_keys:
            return httpx.Response(
                409,
                json={
                    "success": False,
                    "message": "Idempotency key has been used in the previous 24 hours.",
                },
            )
        self.idempotency_keys.add(key)
        return None

    def error(self, status: int, rec: Received) -> httpx.Response:
        if status == 429:
            return self.rate_limited()
        messages = {401: "Invalid API key.", 400: "Bad request.", 500: "Internal server error."}
        return httpx.Response(
            status, json={"success": False, "message": messages.get(status, f"Error {status}.")}
        )

    def rate_limited(self) -> httpx.Response:
        return httpx.Response(
            429,
            json={"success": False, "message": "Rate limit exceeded."},
            headers=self.rate_headers(0),
        )

    def rate_headers(self, remaining: int) -> dict[str, str]:
        headers = {"x-ratelimit-limit": str(self._limit), "x-ratelimit-remaining": str(remaining)}
        if self.pacing_headers:
            headers["x-ratelimit-reset"] = f"{self.reset_in:g}"
        return headers


def _too_long(value: Any, path: str = "") -> list[str]:
    if isinstance(value, str):
        return (
            [f"{path or '(body)'}: value is longer than 500 characters"] if len(value) > 500 else []
        )
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _too_long(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _too_long(v, f"{path}[{i}]")]
    return []
