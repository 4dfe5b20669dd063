"""``Connections.send`` against the fakes over ``httpx.MockTransport``, on virtual time."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest

from automations.actions import ACTIONS
from automations.connections import Connections, ConnectionSettings
from automations.errors import AmbiguousSendError, ConfigError, ProviderError
from automations.outbound import Connection, OutboundRequest, SendResult
from automations.retry import RetryPolicy
from tests.fakes import TIMEOUT_AFTER_RECEIPT, FakeProvider, VirtualClock
from tests.fakes.connections import with_connections
from tests.fakes.loops import LoopsFake
from tests.fakes.quo import QuoFake

T = TypeVar("T")
ENV = {"QUO_API_KEY": "quo-test-key", "LOOPS_API_KEY": "loops-test-key"}
POLICY = RetryPolicy(jitter=False)
NOW = datetime(2025, 6, 2, 12, 0, 0, tzinfo=UTC)


def sms(to: str = "(555) 555-0100") -> OutboundRequest:
    body = {"to": [to], "from": "+15555550199", "content": "Your table is ready"}
    return ACTIONS["quo.send_sms"].build(body, run_id="run1", step_index=0, phone_region="US")


def event(run_id: str = "run1") -> OutboundRequest:
    body = {"email": "ada@example.com", "eventName": "signup"}
    return ACTIONS["loops.send_event"].build(body, run_id=run_id, step_index=1, phone_region="US")


def run(
    fake: FakeProvider,
    use: Callable[[Connections], Awaitable[T]],
    env: dict[str, str] = ENV,
    clock: VirtualClock | None = None,
    rng: random.Random | None = None,
) -> T:
    clock = clock or fake.clock  # type: ignore[assignment]
    assert isinstance(clock, VirtualClock)
    return with_connections(fake.handler, use, env, clock=clock, now=lambda: NOW, rng=rng)


def send(
    fake: FakeProvider, req: OutboundRequest, policy: RetryPolicy = POLICY, **kw: Any
) -> SendResult:
    return run(fake, lambda c: c.send(req, policy), **kw)


def quo(**kw: Any) -> QuoFake:
    return QuoFake(clock=VirtualClock(), **kw)


def loops(**kw: Any) -> LoopsFake:
    return LoopsFake(clock=VirtualClock(), **kw)


# -- auth and what goes over the wire ---------------------------------------------------------


def test_quo_direct_sends_the_raw_key() -> None:
    fake = quo()
    result = send(fake, sms())
    assert result.status == 202
    assert result.attempts == 1
    assert result.body["data"]["to"] == ["+15555550100"]
    assert result.url == "https://api.openphone.com/v1/messages"
    assert result.headers == (("Authorization", "***"), ("User-Agent", "automations/0.1.0"))
    [received] = fake.received
    assert received.headers["authorization"] == "quo-test-key"
    assert received.path == "/v1/messages"
    assert received.body == {
        "to": ["+15555550100"],
        "from": "+15555550199",
        "content": "Your table is ready",
    }


def test_quo_through_maton_sends_bearer_user_agent_and_connection() -> None:
    fake = quo()
    env = {"MATON_API_KEY": "maton-test-key", "MATON_CONNECTION": "c-1"}
    result = send(fake, sms(), env=env)
    assert result.status == 202
    assert result.url == "https://gateway.maton.ai/quo/v1/messages"
    [received] = fake.received
    assert received.path == "/quo/v1/messages"
    assert received.headers["authorization"] == "Bearer maton-test-key"
    assert received.headers["user-agent"] == "automations/0.1.0"
    assert received.headers["maton-connection"] == "c-1"


def test_loops_sends_a_bearer_key_and_the_idempotency_key() -> None:
    fake = loops()
    result = send(fake, event())
    assert (result.status, result.body) == (200, {"success": True})
    [received] = fake.received
    assert received.headers["authorization"] == "Bearer loops-test-key"
    assert received.headers["idempotency-key"] == "automations-run1-1"


def test_a_wrong_key_fails_at_once_naming_the_variable() -> None:
    fake = quo()
    with pytest.raises(ProviderError) as info:
        send(fake, sms(), env={"QUO_API_KEY": "not-the-key"})
    assert info.value.status == 401
    assert info.value.advice == "Quo rejected the API key: check QUO_API_KEY"
    assert info.value.attempts == 1
    assert fake.count == 1
    assert "not-the-key" not in str(info.value)
    assert info.value.request.headers["authorization"] == "***"


def test_a_missing_key_is_a_config_error_and_nothing_is_sent() -> None:
    fake = quo()
    with pytest.raises(ConfigError) as info:
        send(fake, sms(), env={"LOOPS_API_KEY": "x"})
    assert info.value.variable == "QUO_API_KEY or MATON_API_KEY"
    assert fake.count == 0


# -- retries ------------------------------------------------------------------------------------


def test_503_then_200_takes_two_attempts_for_a_resend_safe_request() -> None:
    fake = loops()
    fake.script(503)
    result = send(fake, event())
    assert (result.status, result.attempts) == (200, 2)
    assert [r.outcome for r in fake.received] == [503, 200]
    assert len(fake.events) == 1
    assert fake.clock.sleeps == [0.5]  # type: ignore[attr-defined]


def contact() -> OutboundRequest:
    phones = [{"name": "mobile", "value": "5555550100"}]
    body = {"defaultFields": {"firstName": "Ada", "phoneNumbers": phones}}
    return ACTIONS["quo.create_contact"].build(body, run_id="run1", step_index=0, phone_region="US")


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
@pytest.mark.parametrize("make", [sms, contact], ids=["sms", "contact"])
def test_a_server_error_to_a_request_not_safe_to_repeat_is_ambiguous(
    status: int, make: Callable[[], OutboundRequest]
) -> None:
    """500, then 202: the 500 may have come after Quo acted, so nothing is sent again."""
    fake = quo()
    fake.script(status)  # the next request would be accepted
    with pytest.raises(AmbiguousSendError) as info:
        send(fake, make())
    assert (info.value.status, info.value.attempts, info.value.retryable) == (status, 1, False)
    assert fake.count == 1
    assert (len(fake.sent_messages), len(fake.contacts)) == (0, 0)
    assert fake.clock.sleeps == []  # type: ignore[attr-defined]
    assert f"Quo answered {status} after POST /v1/" in str(info.value)
    assert "it may have been delivered, so it is not sent again" in str(info.value)


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError]
)
def test_a_dropped_connection_after_sending_is_ambiguous(error: type[Exception]) -> None:
    fake = quo()
    fake.script(error)
    with pytest.raises(AmbiguousSendError):
        send(fake, contact())
    assert fake.count == 1


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
def test_a_request_that_never_left_is_retried_even_when_not_safe_to_repeat(
    error: type[Exception],
) -> None:
    fake = quo()
    fake.script(error, error)
    result = send(fake, contact())
    assert (result.status, result.attempts) == (201, 3)
    assert (fake.count, len(fake.contacts)) == (1, 1)


def test_a_429_to_an_sms_is_retried_it_was_not_processed() -> None:
    fake = quo()
    fake.script(429, 429)
    result = send(fake, sms())
    assert (result.status, result.attempts) == (202, 3)
    assert [r.outcome for r in fake.received] == [429, 429, 202]
    assert len(fake.sent_messages) == 1


@pytest.mark.parametrize("method", ["PUT", "DELETE", "GET"])
def test_an_idempotent_http_request_is_retried_after_a_server_error(method: str) -> None:
    answers = iter([httpx.Response(500), httpx.Response(502), httpx.Response(200, json={})])
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return next(answers)

    async def use(c: Connections) -> SendResult:
        return await c.send(_http(method), POLICY)

    assert with_connections(handler, use, ENV).attempts == 3
    assert seen == [method] * 3


def test_a_post_is_retried_only_with_an_idempotency_key() -> None:
    def attempts(req: OutboundRequest) -> int:
        answers = iter([httpx.Response(503), httpx.Response(200, json={})])
        count = 0

        def handler(request: httpx.Request) -> httpx.Response:
            nonlocal count
            count += 1
            return next(answers)

        async def use(c: Connections) -> None:
            with contextlib.suppress(AmbiguousSendError):
                await c.send(req, POLICY)

        with_connections(handler, use, ENV)
        return count

    assert attempts(_http("POST", json={})) == 1
    assert attempts(_http("PATCH", json={})) == 1
    assert attempts(_http("POST", json={}, headers={"Idempotency-Key": "order-7"})) == 2


def test_402_fails_at_once_with_the_credits_advice() -> None:
    fake = quo()
    fake.script(402)
    with pytest.raises(ProviderError) as info:
        send(fake, sms())
    error = info.value
    assert not isinstance(error, AmbiguousSendError)
    assert (error.status, error.vendor_code, error.retryable, error.attempts) == (
        402,
        "0200402",
        False,
        1,
    )
    assert error.vendor_message == (
        "The organization does not have enough prepaid credits to send the message"
    )
    assert error.advice == (
        "the Quo workspace has not enough prepaid API credits: add credits, then replay"
    )
    assert str(error) == (
        "Quo refused with 402: POST /v1/messages (1 attempt): The organization does not have "
        "enough prepaid credits to send the message"
    )
    assert error.response.json()["code"] == "0200402"
    assert fake.count == 1


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 422])
def test_client_errors_are_never_retried(status: int) -> None:
    fake = quo()
    fake.script(status)
    with pytest.raises(ProviderError) as info:
        send(fake, sms())
    assert (info.value.status, info.value.attempts, fake.count) == (status, 1, 1)


def test_a2p_refusal_explains_the_carrier_registration() -> None:
    fake = quo()
    fake.script(400)
    with pytest.raises(ProviderError) as info:
        send(fake, sms())
    assert info.value.vendor_code == "0206400"
    assert "A2P 10DLC" in (info.value.advice or "")


def test_sms_read_timeout_is_ambiguous_and_never_resent() -> None:
    fake = quo()
    fake.script(TIMEOUT_AFTER_RECEIPT)
    with pytest.raises(AmbiguousSendError) as info:
        send(fake, sms())
    assert fake.count == 1
    assert len(fake.sent_messages) == 1  # the text went out; only the answer was lost
    assert info.value.status is None
    assert info.value.attempts == 1
    assert "it may have been delivered, so it is not sent again" in str(info.value)


def test_sms_504_is_ambiguous_too() -> None:
    fake = quo()
    fake.script(504)
    with pytest.raises(AmbiguousSendError) as info:
        send(fake, sms())
    assert (info.value.status, fake.count) == (504, 1)


def test_a_connect_error_is_retried_even_for_an_sms() -> None:
    fake = quo()
    fake.script(httpx.ConnectError)
    result = send(fake, sms())
    assert (result.status, result.attempts) == (202, 2)
    assert fake.count == 1  # the first attempt never arrived


def test_a_lost_loops_answer_is_resent_with_the_same_key_and_409_counts_as_success() -> None:
    fake = loops()
    fake.script(TIMEOUT_AFTER_RECEIPT)
    result = send(fake, event())
    assert (result.status, result.attempts) == (409, 2)
    keys = [r.headers["idempotency-key"] for r in fake.received]
    assert keys == ["automations-run1-1", "automations-run1-1"]
    assert len(fake.events) == 1


def test_the_idempotency_key_is_the_same_on_every_retry() -> None:
    fake = loops()
    fake.script(503, 429, 500)
    result = send(fake, event())
    assert (result.status, result.attempts) == (200, 4)
    assert {r.headers["idempotency-key"] for r in fake.received} == {"automations-run1-1"}


def test_an_event_already_accepted_counts_as_success() -> None:
    fake = loops()
    fake.idempotency_keys.add("automations-run1-1")
    result = send(fake, event())
    assert result.status == 409
    assert result.body["success"] is False
    assert fake.events == []


def test_retry_after_in_seconds_is_honoured() -> None:
    fake = quo()
    fake.script(httpx.Response(429, headers={"Retry-After": "7"}))
    result = send(fake, sms())
    assert result.attempts == 2
    assert fake.clock.sleeps == [7.0]  # type: ignore[attr-defined]


def test_retry_after_as_an_http_date_is_honoured() -> None:
    fake = quo()
    fake.script(httpx.Response(429, headers={"Retry-After": "Mon, 02 Jun 2025 12:00:12 GMT"}))
    send(fake, sms())
    assert fake.clock.sleeps == [12.0]  # type: ignore[attr-defined]


def test_attempts_are_capped() -> None:
    fake = loops()
    fake.script(503, 503, 503, 503, 503, 503)
    with pytest.raises(ProviderError) as info:
        send(fake, event(), RetryPolicy(max_attempts=3, jitter=False))
    assert (info.value.status, info.value.attempts, info.value.retryable) == (503, 3, True)
    assert str(info.value) == ("Loops answered 503: POST /v1/events/send (3 attempts): Error 503.")
    assert fake.count == 3


def test_total_time_is_capped() -> None:
    fake = quo()
    fake.script(httpx.Response(429, headers={"Retry-After": "100"}))
    with pytest.raises(ProviderError) as info:
        send(fake, sms(), RetryPolicy(max_total=60))
    assert info.value.attempts == 1
    assert "the next try would pass the 60 s limit" in str(info.value)
    assert fake.clock.sleeps == []  # type: ignore[attr-defined]


def test_every_attempt_waits_for_the_rate_limiter() -> None:
    fake = quo()
    fake.script(429, 429)
    send(fake, sms(), RetryPolicy(base_delay=0.01, max_delay=0.01, jitter=False))
    times = [r.at for r in fake.received]
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [0.101, 0.101]


def test_a_burst_through_one_key_never_meets_429() -> None:
    for window in ("fixed", "sliding"):
        clock = VirtualClock(start=1000.05)
        fake = QuoFake(clock=clock, window=window)  # type: ignore[arg-type]

        async def burst(c: Connections) -> list[SendResult]:
            return await asyncio.gather(*(c.send(sms(), POLICY) for _ in range(100)))

        results = run(fake, burst, clock=clock)
        assert [r.attempts for r in results] == [1] * 100
        assert {r.duration_ms for r in results} == {0.0}  # the wait for a slot is not counted
        assert (fake.rejected, fake.count, fake.max_in_window()) == (0, 100, 10)


# -- results and bodies -------------------------------------------------------------------------


def test_text_bodies_are_bounded() -> None:
    fake = quo()
    fake.script(httpx.Response(200, text="x" * 10_000))
    result = send(fake, sms())
    assert result.body == "x" * 4096 + "…"


def test_http_requests_carry_no_provider_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    req = ACTIONS["http.request"].build(
        {"method": "GET", "url": "https://hooks.test/x?token=abc", "headers": {"X-Token": "t"}},
        run_id="r",
        step_index=0,
        phone_region="US",
    )

    async def main() -> SendResult:
        async with Connections(
            ConnectionSettings.from_env(ENV), transport=httpx.MockTransport(handler)
        ) as c:
            return await c.send(req, POLICY)

    result = asyncio.run(main())
    assert result.body == {"ok": True}
    assert result.url == "https://hooks.test/x?token=***"
    assert result.headers == (("User-Agent", "automations/0.1.0"), ("X-Token", "***"))
    assert "authorization" not in seen[0].headers
    assert seen[0].headers["x-token"] == "t"


def test_a_shared_client_is_not_closed() -> None:
    async def main() -> bool:
        client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
        async with Connections(ConnectionSettings(), client=client):
            pass
        closed = client.is_closed
        await client.aclose()
        return closed

    assert asyncio.run(main()) is False


def test_preview_connections_never_send() -> None:
    async def main() -> None:
        async with Connections.for_preview(ENV) as c:
            await c.send(OutboundRequest(Connection.HTTP, "GET", "https://x.test/"), POLICY)

    with pytest.raises(RuntimeError, match="preview connections never send"):
        asyncio.run(main())


def _http(method: str, json: Any = None, headers: dict[str, str] | None = None) -> OutboundRequest:
    body: dict[str, Any] = {"method": method, "url": "https://hooks.test/in?x=1"}
    if json is not None:
        body["json"] = json
    if headers:
        body["headers"] = headers
    return ACTIONS["http.request"].build(body, run_id="r", step_index=0, phone_region="US")


@pytest.mark.parametrize(
    ("env", "req"),
    [
        (ENV, sms()),
        ({"MATON_API_KEY": "maton-key", "MATON_CONNECTION": "c-1"}, sms("+15555550100")),
        (ENV, event()),
        (ENV, _http("GET")),
        (ENV, _http("POST")),
        (ENV, _http("DELETE", json={"a": "é", "n": [1, 2.5, None]})),
        (ENV, _http("PUT", json=[], headers={"Content-Type": "application/vnd.api+json"})),
        (ENV, _http("PATCH", json={}, headers={"accept": "application/json", "X-A": "1"})),
        (ENV, _http("POST", json={"a": 1}, headers={"Host": "in.test", "Content-Length": "7"})),
        (ENV, _http("PUT", headers={"content-length": "0"})),
    ],
)
def test_the_wire_request_is_what_httpx_itself_would_build(
    env: dict[str, str], req: OutboundRequest
) -> None:
    """``send`` builds its ``httpx.Request`` itself (for speed): same method, URL, headers in the
    same order and body bytes as ``client.build_request(..., json=...)``."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    async def main() -> httpx.Request:
        connections = Connections(
            ConnectionSettings.from_env(env), transport=httpx.MockTransport(handler)
        )
        async with connections:
            await connections.send(req, POLICY)
            endpoint = connections._endpoint(req.connection)
            return connections._http().build_request(
                req.method,
                endpoint.url(req.path) if endpoint else req.path,
                json=req.json,
                headers=connections._headers(req, endpoint),
            )

    expected = asyncio.run(main())
    sent = seen[0]
    assert (sent.method, sent.url) == (expected.method, expected.url)
    assert sent.headers.multi_items() == expected.headers.multi_items()
    assert sent.content == expected.content
    assert sent.extensions["timeout"] == expected.extensions["timeout"]


def test_a_request_header_replaces_the_connection_header_of_the_same_name() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async def main() -> None:
        async with Connections(
            ConnectionSettings.from_env(ENV), transport=httpx.MockTransport(handler)
        ) as c:
            await c.send(_http("POST", json={}, headers={"user-agent": "mine"}), POLICY)

    asyncio.run(main())
    assert seen[0].headers.get_list("User-Agent") == ["mine"]
