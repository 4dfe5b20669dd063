"""One ``send``'s outcomes as values: a ``SendResult``, a ``ProviderError`` with the vendor's
words and advice, or an ``AmbiguousSendError``; every copy of the request and response it keeps
has its secrets masked."""

from __future__ import annotations

import httpx

from automations.actions import ErrorExplainer
from automations.connections.wire import parsed_url, read_body
from automations.endpoints import Endpoint, mask_headers
from automations.errors import AmbiguousSendError, ProviderError
from automations.outbound import OutboundRequest, SendResult

__all__ = ["Call"]

# Describe the original bytes on the wire; the masked copy holds the decoded body.
_FRAMING_HEADERS = frozenset({"content-encoding", "transfer-encoding", "content-length"})


class Call:
    """One ``send``: turns its outcomes into a result or an error, secrets masked."""

    __slots__ = ("endpoint", "explain", "headers", "provider", "req", "url", "what")

    def __init__(
        self,
        req: OutboundRequest,
        endpoint: Endpoint | None,
        url: str,
        headers: tuple[tuple[str, str], ...],
        explain: ErrorExplainer,
    ) -> None:
        """``url`` and ``headers`` as ``Connections.describe`` gives them: masked."""
        self.req = req
        self.endpoint = endpoint
        self.url = url
        self.headers = headers
        self.explain = explain
        self.provider = endpoint.name if endpoint else (parsed_url(url).host or "the endpoint")
        self.what = f"{req.method} {req.path if endpoint else url}"

    def result(self, response: httpx.Response, attempts: int, ms: float) -> SendResult:
        return SendResult(
            status=response.status_code,
            body=read_body(response),
            attempts=attempts,
            duration_ms=ms,
            url=self.url,
            headers=self.headers,
        )

    def failure(
        self,
        reason: str,
        attempts: int,
        response: httpx.Response | None,
        *,
        retryable: bool = False,
    ) -> ProviderError:
        """``reason`` reads after the provider: "Quo answered 503", "Quo refused with 402"."""
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if response is None:
            return ProviderError(
                f"{self.provider} {reason}: {self.what} ({tries})",
                retryable=retryable,
                request=self._safe_request(),
                attempts=attempts,
            )
        status = response.status_code
        body = read_body(response)
        vendor_message, vendor_code, advice = self.explain(status, body)
        if status == 401 and self.endpoint is not None:
            advice = f"{self.endpoint.name} rejected the API key: check {self.endpoint.variable}"
        said = f": {vendor_message}" if vendor_message else ""
        return ProviderError(
            f"{self.provider} {reason}: {self.what} ({tries}){said}",
            status=status,
            vendor_message=vendor_message,
            vendor_code=vendor_code,
            advice=advice,
            retryable=retryable,
            request=self._safe_request(),
            response=self._safe_response(response),
            attempts=attempts,
        )

    def ambiguous(
        self, cause: httpx.RequestError | httpx.Response, attempts: int, ms: float
    ) -> AmbiguousSendError:
        status = cause.status_code if isinstance(cause, httpx.Response) else None
        what = f"answered {status}" if status else f"gave no answer ({type(cause).__name__})"
        check = (
            f"check in {self.provider} whether it went through, then record what happened "
            "with `automations resolve`"
        )
        vendor_message = vendor_code = None
        if isinstance(cause, httpx.Response):
            # the provider's own words still explain the failure (a gateway's expired login...)
            vendor_message, vendor_code, advice = self.explain(cause.status_code, read_body(cause))
            if advice:
                check = f"{advice}; {check}"
        return AmbiguousSendError(
            f"{self.provider} {what} after {self.what} was sent (attempt {attempts}, "
            f"{ms:.0f} ms): it may have been delivered, so it is not sent again",
            status=status,
            vendor_message=vendor_message,
            vendor_code=vendor_code,
            advice=check,
            retryable=False,
            request=self._safe_request(),
            response=self._safe_response(cause) if isinstance(cause, httpx.Response) else None,
            attempts=attempts,
        )

    def _safe_request(self) -> httpx.Request:
        return httpx.Request(self.req.method, self.url, headers=list(self.headers))

    def _safe_response(self, response: httpx.Response) -> httpx.Response:
        """A copy of ``response`` with masked headers, tied to the masked request: safe to log."""
        headers = [
            (name, value)
            for name, value in mask_headers(response.headers.multi_items())
            if name.lower() not in _FRAMING_HEADERS
        ]
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=response.content,
            request=self._safe_request(),
        )
