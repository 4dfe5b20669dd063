"""Three runners on one PostgreSQL under a seeded nemesis keep every promise of one runner.

Rows are appended to a table file and signed webhooks posted (to any node, as a load balancer
does) without pause, while the nemesis SIGKILLs and restarts a node, SIGSTOPs one past its
lease and then SIGCONTs it, terminates a node's database connections and crashes PostgreSQL
(a private server: ``tests/nemesis/cluster``). Then, after a quiet period, the whole history
(every request the fakes received, every event the clients produced, every run and step in
the database) goes through the checker (``tests/nemesis/history``): one run per event, no SMS
received twice, every SMS not received ``unknown`` or ``failed``, resent Loops events under
one key, at most 10 requests per key in any sliding second, each fire time once, nothing left
``pending`` or ``running``.

The seed is printed and, on failure, repeated with the path of the saved history; set
``AUTOMATIONS_NEMESIS_SEED`` to replay a schedule of faults.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.acceptance.conftest import (
    Fakes,
    append,
    background,
    dumps,
    runner_env,
    standard_headers,
    write_recipe,
)
from tests.acceptance.runner_process import free_port
from tests.fakes import Received
from tests.nemesis.cluster import PostgresServer, private_server
from tests.nemesis.history import OPEN, Event, History, Request, Run, Step, check
from tests.nemesis.nemesis import Nemesis
from tests.nemesis.nodes import Node

pytestmark = pytest.mark.acceptance

NODES = 3
#: Lease settings for the test: a paused node loses its runs after about two seconds.
LEASE_S = 2.0
NODE_ARGS = ("--grace", "2")
LEASE_ENV = {
    "AUTOMATIONS_LEASE_TTL": str(LEASE_S),
    "AUTOMATIONS_LEASE_HEARTBEAT": "0.5",
    "AUTOMATIONS_LEASE_RESCUE_EVERY": "0.5",
    "AUTOMATIONS_LEASE_GRACE": "0.5",
    "AUTOMATIONS_CLAIM_POLL": "0.5",
    # the lead (schedules, table watching) moves within two seconds of its holder's death
    "AUTOMATIONS_LEADER_TTL_S": "2",
}
#: The pacing guard: on a loaded 2-core machine (load 8 with the other test sessions) a
#: request's arrival at the fake (a thread of this busy test process) lags its release by up
#: to ~35 ms more than the next one's, most of all the first requests of a restarted node; the
#: default 10 ms did not absorb it (11 requests seen in 0.98 s). 50 ms costs 5% of 10/s.
RATE_GUARD_MS = "50"
#: How long rows and webhooks come while the nemesis works, and the caps that bound the drain.
LOAD_S = 32.0
ROW_EVERY_S = 0.5
HOOK_EVERY_S = 0.25
MAX_ROWS = 70
MAX_HOOKS = 140
#: How long the nodes get to finish everything once the load stops.
QUIET_S = 45.0

LEAD_SMS = """
name: lead-sms
trigger:
  table: {path: data/leads.csv, key: Email, existing_rows: skip}
actions:
  - id: contact
    quo.create_contact:
      defaultFields:
        firstName: /Name
        phoneNumbers: [{name: primary, value: /Phone}]
  - id: sms
    quo.send_sms:
      from: ${QUO_FROM}
      to: [/Phone]
      content: "Hi {/Name}, welcome! [{/Email}]"
"""

LEAD_EVENT = """
name: lead-event
trigger:
  table: {path: data/leads.csv, key: Email, existing_rows: skip}
actions:
  - loops.send_event: {email: /Email, eventName: leadAdded}
"""

HOOK = """
name: hook
trigger:
  webhook:
    path: /hooks/event
    verify: {scheme: standard-webhooks, secret: "${HOOK_SECRET}"}
actions:
  - loops.send_event: {email: /email, eventName: hooked}
"""

HOOK_SMS = """
name: hook-sms
trigger:
  webhook:
    path: /hooks/sms
    verify: {scheme: standard-webhooks, secret: "${HOOK_SECRET}"}
actions:
  - quo.send_sms:
      from: ${QUO_FROM}
      to: [/phone]
      content: "Your code is ready [{/email}]"
"""

TICK = """
name: tick
trigger:
  schedule: {every: 1s, missed: run_once}
actions:
  - loops.send_event:
      email: ops@example.com
      eventName: tick
      eventProperties: {firedAt: /fired_at}
"""


def _app_name(node: Node) -> str:
    """What every PostgreSQL connection of ``node`` starts its ``application_name`` with."""
    return f"automations:{node.name}:"


# -- the clients --------------------------------------------------------------------------------


def _append_rows(leads: Path, events: list[Event], stop: threading.Event) -> None:
    for i in range(MAX_ROWS):
        if stop.is_set():
            return
        email = f"lead{i}@example.com"
        append(leads, f"{email},Lead{i},(555) 555-{100 + i:04d}\n")
        events += [Event("lead-sms", email), Event("lead-event", email)]
        stop.wait(ROW_EVERY_S)


def _post_webhooks(nodes: list[Node], events: list[Event], stop: threading.Event) -> None:
    """A provider behind a load balancer: each delivery goes to the next node, and to the one
    after it when a node does not answer 2xx in time, with the same webhook-id, until one does
    (or the load ends: then the event may or may not have a run)."""
    turn = 0
    with httpx.Client(timeout=1.5) as client:
        for i in range(MAX_HOOKS):
            if stop.is_set():
                return
            sms = i % 2 == 1
            recipe, path = ("hook-sms", "/hooks/sms") if sms else ("hook", "/hooks/event")
            msg_id = f"msg_{i}"
            body = dumps(
                {"email": f"{recipe}{i}@example.com", "phone": f"(555) 556-{i:04d}", "n": i}
            )
            answered = False
            deadline = time.monotonic() + 20.0
            while not answered and time.monotonic() < deadline:
                node = nodes[turn % len(nodes)]
                turn += 1
                try:
                    r = client.post(
                        node.base_url + path, content=body, headers=standard_headers(body, msg_id)
                    )
                    answered = r.status_code in (200, 202)
                except httpx.TransportError:  # down, paused, or killed mid-request
                    pass
                if not answered:
                    time.sleep(0.05)
            events.append(Event(recipe, msg_id, required=answered))
            stop.wait(HOOK_EVERY_S)


# -- recording ----------------------------------------------------------------------------------


def _fire_key(fired_at: str) -> str:
    return datetime.fromisoformat(fired_at).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ref(fake: str, rec: Received) -> str | None:
    """The event a request was made for (``recipe/event_key``), read from its body."""
    body = rec.body if isinstance(rec.body, dict) else {}
    if fake == "loops":
        email = str(body.get("email", ""))
        if body.get("eventName") == "tick":
            return "tick/" + _fire_key(body["eventProperties"]["firedAt"])
        if body.get("eventName") == "leadAdded":
            return f"lead-event/{email}"
        n = email.removeprefix("hook").partition("@")[0]
        return f"hook/msg_{n}"
    if rec.path.endswith("/v1/contacts"):
        first = str(body.get("defaultFields", {}).get("firstName", ""))
        return f"lead-sms/lead{first.removeprefix('Lead')}@example.com"
    content = str(body.get("content", ""))
    email = content.rpartition("[")[2].rstrip("]")
    if email.startswith("hook-sms"):
        return f"hook-sms/msg_{email.removeprefix('hook-sms').partition('@')[0]}"
    return f"lead-sms/{email}"


def _requests(fakes: Fakes) -> list[Request]:
    out = []
    for fake, received in (("quo", fakes.quo.received), ("loops", fakes.loops.received)):
        for rec in list(received):
            out.append(
                Request(
                    fake,
                    rec.at,
                    rec.method,
                    rec.path,
                    rec.key,
                    rec.outcome,
                    _ref(fake, rec),
                    rec.headers.get("idempotency-key"),
                )
            )
    return out


def _snapshot(server: PostgresServer) -> list[Run] | None:
    """Every run and its steps, read in one snapshot of the database (None: unreachable)."""
    import psycopg

    try:
        with psycopg.connect(server.url, connect_timeout=5) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction():
                runs = conn.execute(
                    "SELECT id, recipe, trigger, event_key, status FROM runs ORDER BY seq"
                ).fetchall()
                step_rows = conn.execute(
                    "SELECT run_id, idx, step_id, action, status, idempotency_key FROM step_log "
                    "ORDER BY run_id, idx"
                ).fetchall()
    except psycopg.Error:
        return None
    steps: dict[str, list[Step]] = {}
    for run_id, idx, step_id, action, status, key in step_rows:
        steps.setdefault(run_id, []).append(Step(idx, step_id, action, status, key))
    return [
        Run(i, recipe, trigger, key, status, tuple(steps.get(i, ())))
        for i, recipe, trigger, key, status in runs
    ]


def _quiet(runs: list[Run], events: list[Event]) -> bool:
    """Nothing open, and every accepted event has its run."""
    have = {(r.recipe, r.event_key) for r in runs}
    return all(r.status not in OPEN for r in runs) and all(
        (e.recipe, e.event_key) in have for e in events if e.required
    )


# -- the test -----------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    with private_server() as server:
        yield server


def test_three_nodes_keep_every_promise_under_a_nemesis(
    recipes_dir: Path, fakes: Fakes, server: PostgresServer, tmp_path: Path
) -> None:
    seed = int(os.environ.get("AUTOMATIONS_NEMESIS_SEED", time.time_ns() % 1_000_000))
    print(f"\nnemesis seed: AUTOMATIONS_NEMESIS_SEED={seed}")
    leads = recipes_dir / "data" / "leads.csv"
    leads.write_text("Email,Name,Phone\n")
    for name, text in (
        ("lead-sms", LEAD_SMS), ("lead-event", LEAD_EVENT), ("hook", HOOK),
        ("hook-sms", HOOK_SMS), ("tick", TICK),
    ):  # fmt: skip
        write_recipe(recipes_dir, f"{name}.yaml", text)
    fakes.set_latency(0.03)  # requests are in flight long enough for faults to land in them
    logs = tmp_path / "logs"
    logs.mkdir()
    nodes = []
    for n in range(1, NODES + 1):
        name = f"node-{n}"
        env = runner_env(fakes, env={"AUTOMATIONS_RATE_GUARD_MS": RATE_GUARD_MS, **LEASE_ENV})
        args = ("--db", server.url, "--node-id", name, *NODE_ARGS)
        nodes.append(Node(name, recipes_dir, free_port(), args, env, logs))
    history = History(
        seed,
        sms_recipes=frozenset({"lead-sms", "hook-sms"}),
        schedule_recipes=frozenset({"tick"}),
    )
    nemesis = Nemesis(seed, nodes, server, pause_s=2 * LEASE_S, application_name=_app_name)
    try:
        for node in nodes:
            node.start(wait_s=0)
        for node in nodes:
            node.wait_healthy(60.0)
        names = server.application_names()
        for node in nodes:
            assert any(n.startswith(_app_name(node)) for n in names), names

        row_events: list[Event] = []
        hook_events: list[Event] = []
        stop_load = threading.Event()  # the load ends with the block; nothing stops it early
        with (
            background(lambda stop: _append_rows(leads, row_events, stop)),
            background(lambda stop: _post_webhooks(nodes, hook_events, stop)),
        ):
            began = time.monotonic()
            nemesis.run(stop_load, until=began + LOAD_S - 2 * LEASE_S)
            time.sleep(max(0.0, began + LOAD_S - time.monotonic()))
        history.events = row_events + hook_events

        # the schedule keeps firing: the history's runs are those of the first snapshot in
        # which everything is quiet (or the last one, when the nodes never got there)
        deadline = time.monotonic() + QUIET_S
        runs = None
        while time.monotonic() < deadline:
            runs = _snapshot(server) or runs
            if runs is not None and _quiet(runs, history.events):
                break
            time.sleep(0.25)
        history.runs = runs or []
        codes = {node.name: node.stop() for node in nodes}
        history.requests = _requests(fakes)
        history.faults = nemesis.faults
        violations = nemesis.errors + check(history)
        if any(code != 0 for code in codes.values()):
            violations.append(f"a node did not stop cleanly on SIGTERM: {codes}")
    except BaseException:
        print(f"nemesis seed: AUTOMATIONS_NEMESIS_SEED={seed}")
        for node in nodes:
            print(node.log[-3000:])
        raise
    finally:
        for node in nodes:
            node.stop()
    print(history.summary())
    if violations:
        # not under tmp_path: pytest keeps only its last few folders, and other test sessions
        # on the machine rotate them away
        saved = Path(tempfile.gettempdir()) / f"automations-nemesis-{seed}.json"
        history.dump(saved)
        shutil.copytree(logs, saved.with_suffix(".logs"), dirs_exist_ok=True)
        for node in nodes:
            print(node.log[-3000:])
        print(nemesis.faults)
        shown = "\n".join(violations[:30])
        pytest.fail(
            f"AUTOMATIONS_NEMESIS_SEED={seed}: {len(violations)} violation(s) "
            f"(history in {saved}, node logs in {saved.with_suffix('.logs')}):\n{shown}"
        )
