"""The console's POSTed forms, read without a multipart parser: every form is small and
``application/x-www-form-urlencoded``."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

__all__ = ["read_form"]

#: The largest form body the console reads.
_MAX_FORM = 64 * 1024


async def read_form(request: Request) -> dict[str, str]:
    """A POSTed ``application/x-www-form-urlencoded`` form (the console's forms are all
    small), first value of each field; an oversized body reads as empty."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            return {}
    pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form
