"""``automations doctor``: each configured connection checked against the real API, read-only.

    Quo    GET /v1/phone-numbers   the key is accepted (through Maton: the connection is active);
                                   each recipe's ``quo.send_sms`` ``from`` is a number of the
                                   workspace, and its US messaging is not restricted
    Loops  GET /v1/api-key         the key is accepted (the team's name)

Only reads are sent, through the same ``Connections`` (keys, Maton route, pacing) as real runs;
nothing is written to the audit. A connection no recipe uses and no key configures is skipped; a
connection a recipe uses without a key is a problem.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from automations.actions import ACTIONS
from automations.connections import Connections
from automations.errors import AutomationsError, ConfigError, ProviderError
from automations.model import Recipe
from automations.outbound import Connection, OutboundRequest
from automations.phone import to_e164
from automations.retry import RetryPolicy
from automations.templates import EnvRef, Literal, MapTemplate

__all__ = ["Check", "Verdict", "diagnose", "sender_numbers"]

_POLICY = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=2.0, max_total=10.0)


class Verdict(enum.Enum):
    """The outcome of one check."""

    #: As it should be.
    OK = "ok"
    #: Runs will fail (or texts will not arrive) until it is fixed: ``doctor`` exits 1.
    PROBLEM = "problem"
    #: Not checked (not configured and not used).
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Check:
    connection: str
    what: str
    verdict: Verdict
    detail: str


async def diagnose(
    recipes: Iterable[Recipe], env: Mapping[str, str], connections: Connections
) -> list[Check]:
    """Every check, in the order printed."""
    recipes = list(recipes)
    checks: list[Check] = []
    uses = {ACTIONS[a.kind].connection for r in recipes for a in r.actions if a.kind in ACTIONS}
    checks += await _quo(recipes, env, connections, Connection.QUO in uses)
    checks += await _loops(connections, Connection.LOOPS in uses)
    return checks


def sender_numbers(recipes: Iterable[Recipe], env: Mapping[str, str]) -> dict[str, list[str]]:
    """``from`` of each recipe's ``quo.send_sms`` (a number in E.164, or a ``PN`` id) -> the
    recipes sending from it. A ``from`` read from the row cannot be known here."""
    out: dict[str, list[str]] = {}
    for recipe in recipes:
        for action in recipe.actions:
            if action.kind != "quo.send_sms" or not isinstance(action.params, MapTemplate):
                continue
            sender = dict(action.params.items).get("from")
            value: Any = None
            if isinstance(sender, Literal):
                value = sender.value
            elif isinstance(sender, EnvRef):
                value = env.get(sender.name)
            if not isinstance(value, str) or not value:
                continue
            if not value.startswith("PN"):
                with contextlib.suppress(AutomationsError):  # reported by lint
                    value = to_e164(value, recipe.phone_region, path="from")
            out.setdefault(value, [])
            if recipe.name not in out[value]:
                out[value].append(recipe.name)
    return out


async def _quo(
    recipes: list[Recipe], env: Mapping[str, str], connections: Connections, used: bool
) -> list[Check]:
    name = "quo"
    try:
        endpoint = connections.settings.endpoint(Connection.QUO)
    except ConfigError as exc:
        if used:
            return [Check(name, "API key", Verdict.PROBLEM, f"recipes send to Quo: {exc}")]
        return [Check(name, "API key", Verdict.SKIPPED, "not configured, and no recipe uses Quo")]
    assert endpoint is not None
    via_maton = endpoint.variable == "MATON_API_KEY"
    req = ACTIONS["quo.list_phone_numbers"].build(
        {}, run_id="doctor", step_index=0, phone_region="US"
    )
    try:
        result = await connections.send(req, _POLICY)
    except ProviderError as exc:
        what = "Maton connection" if via_maton else "API key"
        return [Check(name, what, Verdict.PROBLEM, _said(exc))]
    except AutomationsError as exc:
        return [Check(name, "API key", Verdict.PROBLEM, str(exc))]
    numbers = result.body.get("data", []) if isinstance(result.body, dict) else []
    checks = [
        Check(
            name,
            "API key",
            Verdict.OK,
            f"{endpoint.variable} accepted ({len(numbers)} phone number(s) in the workspace)",
        )
    ]
    if via_maton:
        active = env.get("MATON_CONNECTION") or "the default"
        checks.append(Check(name, "Maton connection", Verdict.OK, f"{active} connection active"))
    for sender, users in sorted(sender_numbers(recipes, env).items()):
        checks.append(_sender_check(sender, users, numbers))
    return checks


def _sender_check(sender: str, recipes: list[str], numbers: list[Any]) -> Check:
    what = f"from {sender}"
    who = ", ".join(recipes)
    match = next(
        (n for n in numbers if isinstance(n, dict) and sender in (n.get("id"), n.get("number"))),
        None,
    )
    if match is None:
        return Check(
            "quo",
            what,
            Verdict.PROBLEM,
            f"not a number of this workspace (used by {who}): Quo refuses to send from it",
        )
    restrictions = match.get("restrictions") or {}
    us = (restrictions.get("messaging") or {}).get("US")
    if us == "restricted":
        return Check(
            "quo",
            what,
            Verdict.PROBLEM,
            f"US messaging is restricted on {match.get('number')} ({match.get('id')}): texts to "
            "US numbers fail until its carrier registration (A2P 10DLC) is approved",
        )
    return Check(
        "quo", what, Verdict.OK, f"{match.get('number')} ({match.get('id')}), US messaging open"
    )


async def _loops(connections: Connections, used: bool) -> list[Check]:
    name = "loops"
    try:
        connections.settings.endpoint(Connection.LOOPS)
    except ConfigError as exc:
        if used:
            return [Check(name, "API key", Verdict.PROBLEM, f"recipes send to Loops: {exc}")]
        return [Check(name, "API key", Verdict.SKIPPED, "not configured, and no recipe uses Loops")]
    req = OutboundRequest(Connection.LOOPS, "GET", "/v1/api-key")
    try:
        result = await connections.send(req, _POLICY)
    except ProviderError as exc:
        return [Check(name, "API key", Verdict.PROBLEM, _said(exc))]
    except AutomationsError as exc:
        return [Check(name, "API key", Verdict.PROBLEM, str(exc))]
    team = result.body.get("teamName") if isinstance(result.body, dict) else None
    return [Check(name, "API key", Verdict.OK, f"LOOPS_API_KEY accepted (team {team or '?'})")]


def _said(exc: ProviderError) -> str:
    text = str(exc)
    if exc.advice and exc.advice not in text:
        text = f"{text}; {exc.advice}"
    return text
