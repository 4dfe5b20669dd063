from __future__ import annotations

import pytest

from automations.connections import Connections, ConnectionSettings, mask_headers, mask_url
from automations.errors import ConfigError
from automations.outbound import Connection, OutboundRequest

SMS = OutboundRequest(Connection.QUO, "POST", "/v1/messages", json={})
EVENT = OutboundRequest(
    Connection.LOOPS, "POST", "/v1/events/send", json={}, idempotency_key="automations-r-0"
)


def test_quo_direct_sends_the_raw_key() -> None:
    settings = ConnectionSettings.from_env({"QUO_API_KEY": "quo-secret-1"})
    endpoint = settings.endpoint(Connection.QUO)
    assert endpoint is not None
    assert endpoint.url("/v1/messages") == "https://api.openphone.com/v1/messages"
    assert endpoint.headers == (
        ("Authorization", "quo-secret-1"),
        ("User-Agent", "automations/0.1.0"),
    )
    assert endpoint.variable == "QUO_API_KEY"


def test_quo_through_maton_when_only_the_maton_key_is_set() -> None:
    settings = ConnectionSettings.from_env(
        {"MATON_API_KEY": "maton-secret", "MATON_CONNECTION": "conn-42"}
    )
    endpoint = settings.endpoint(Connection.QUO)
    assert endpoint is not None
    assert endpoint.url("/v1/messages") == "https://gateway.maton.ai/quo/v1/messages"
    assert endpoint.headers == (
        ("Authorization", "Bearer maton-secret"),
        ("User-Agent", "automations/0.1.0"),
        ("Maton-Connection", "conn-42"),
    )


def test_maton_can_be_forced_over_a_direct_key() -> None:
    env = {
        "QUO_API_KEY": "q",
        "MATON_API_KEY": "m",
        "AUTOMATIONS_QUO_VIA": "maton",
        "MATON_BASE_URL": "http://127.0.0.1:9/",
    }
    endpoint = ConnectionSettings.from_env(env).endpoint(Connection.QUO)
    assert endpoint is not None
    assert endpoint.url("/v1/contacts") == "http://127.0.0.1:9/quo/v1/contacts"


def test_loops_sends_a_bearer_key() -> None:
    env = {"LOOPS_API_KEY": "loops-secret", "LOOPS_BASE_URL": "https://loops.test/api/"}
    endpoint = ConnectionSettings.from_env(env).endpoint(Connection.LOOPS)
    assert endpoint is not None
    assert endpoint.url("/v1/events/send") == "https://loops.test/api/v1/events/send"
    assert endpoint.headers[0] == ("Authorization", "Bearer loops-secret")


@pytest.mark.parametrize(
    ("env", "connection", "variable"),
    [
        ({}, Connection.QUO, "QUO_API_KEY or MATON_API_KEY"),
        ({"AUTOMATIONS_QUO_VIA": "maton", "QUO_API_KEY": "q"}, Connection.QUO, "MATON_API_KEY"),
        ({"AUTOMATIONS_QUO_VIA": "direct", "MATON_API_KEY": "m"}, Connection.QUO, "QUO_API_KEY"),
        ({"QUO_API_KEY": "q"}, Connection.LOOPS, "LOOPS_API_KEY"),
        ({"LOOPS_API_KEY": "  "}, Connection.LOOPS, "LOOPS_API_KEY"),
    ],
)
def test_a_missing_key_names_the_variable(
    env: dict[str, str], connection: Connection, variable: str
) -> None:
    with pytest.raises(ConfigError) as info:
        ConnectionSettings.from_env(env).endpoint(connection)
    assert info.value.variable == variable
    assert variable.split()[0] in str(info.value)


def test_http_needs_no_key() -> None:
    assert ConnectionSettings.from_env({}).endpoint(Connection.HTTP) is None


@pytest.mark.parametrize(
    ("text", "rate"),
    [(None, 10.0), ("5", 5.0), ("5/s", 5.0), ("2.5/second", 2.5), ("600/min", 10.0)],
)
def test_rates(text: str | None, rate: float) -> None:
    env = {"QUO_RATE_LIMIT": text} if text else {}
    assert ConnectionSettings.from_env(env).quo_rate == rate


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"QUO_RATE_LIMIT": "fast"}, "QUO_RATE_LIMIT"),
        ({"LOOPS_RATE_LIMIT": "0"}, "LOOPS_RATE_LIMIT"),
        ({"QUO_BASE_URL": "api.openphone.com"}, "QUO_BASE_URL"),
        ({"AUTOMATIONS_QUO_VIA": "carrier-pigeon"}, "AUTOMATIONS_QUO_VIA"),
        ({"AUTOMATIONS_RATE_GUARD_MS": "-1"}, "AUTOMATIONS_RATE_GUARD_MS"),
    ],
)
def test_malformed_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        ConnectionSettings.from_env(env)
    assert info.value.variable == variable


def test_keys_never_show_in_repr() -> None:
    settings = ConnectionSettings.from_env(
        {"QUO_API_KEY": "quo-secret-1", "MATON_API_KEY": "maton-s", "LOOPS_API_KEY": "loops-s"}
    )
    assert "secret" not in repr(settings)
    assert "loops-s" not in repr(settings.endpoint(Connection.LOOPS))
    assert settings.secrets() == {
        "QUO_API_KEY": "quo-secret-1",
        "MATON_API_KEY": "maton-s",
        "LOOPS_API_KEY": "loops-s",
    }


def test_describe_masks_secrets_and_shows_the_idempotency_key() -> None:
    connections = Connections(ConnectionSettings.from_env({"LOOPS_API_KEY": "loops-secret"}))
    assert connections.describe(EVENT) == (
        "https://app.loops.so/api/v1/events/send",
        (
            ("Authorization", "***"),
            ("User-Agent", "automations/0.1.0"),
            ("Idempotency-Key", "automations-r-0"),
        ),
    )


def test_describe_never_raises_for_a_missing_key() -> None:
    connections = Connections.for_preview({"QUO_RATE_LIMIT": "nonsense"})
    assert connections.describe(SMS) == (
        "https://api.openphone.com/v1/messages",
        (
            ("Authorization", "<unset: set QUO_API_KEY or MATON_API_KEY>"),
            ("User-Agent", "automations/0.1.0"),
        ),
    )


def test_mask_headers_and_urls() -> None:
    assert mask_headers(
        [
            ("Authorization", "k"),
            ("X-Api-Key", "k"),
            ("Private-Token", "k"),
            ("Cookie", "k"),
            ("Idempotency-Key", "id"),
            ("Maton-Connection", "c"),
            ("Content-Type", "application/json"),
        ]
    ) == (
        ("Authorization", "***"),
        ("X-Api-Key", "***"),
        ("Private-Token", "***"),
        ("Cookie", "***"),
        ("Idempotency-Key", "id"),
        ("Maton-Connection", "c"),
        ("Content-Type", "application/json"),
    )
    assert mask_url("https://h.test/p?token=abc&page=2") == "https://h.test/p?token=***&page=2"
    assert mask_url("https://user:pw@h.test/p") == "https://***@h.test/p"
    assert mask_url("https://h.test/p") == "https://h.test/p"
