"""The public names of the outbound side, pinned: changing them is a decision, not an accident."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "automations.actions": ["ACTIONS", "ActionSpec", "ErrorExplainer", "explainer_for"],
    "automations.breaker": [
        "AUTH_FAILURES",
        "Breaker",
        "BreakerState",
        "BreakerView",
        "refuses_key",
    ],
    "automations.connections": [
        "ConnectionSettings",
        "Connections",
        "Endpoint",
        "Pacing",
        "mask_headers",
        "mask_url",
        "pacing_for",
        "parse_rate",
        "read_body",
    ],
    "automations.connections.http11": ["Http11Transport"],
    "automations.endpoints": [
        "DEFAULT_RATE",
        "USER_AGENT",
        "ConnectionSettings",
        "Endpoint",
        "mask_headers",
        "mask_url",
        "parse_rate",
    ],
    "automations.phone": ["to_e164"],
    "automations.ratelimit": ["RateLimiter", "Slot"],
    "automations.retry": ["BUDGET_VARIABLE", "RetryPolicy", "parse_budget", "parse_retry_after"],
    "automations.vendor": [
        "EndpointShape",
        "endpoint_shape",
        "format_path",
        "is_placeholder",
        "require_mapping",
        "require_valid",
        "schema_for",
        "schema_kinds",
        "sources",
        "validate_body",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_all_is_pinned(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PUBLIC[module])
    assert all(hasattr(mod, name) for name in mod.__all__)
