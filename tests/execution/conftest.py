"""An executor wired to fake Quo and Loops over ``httpx.MockTransport``, on virtual time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from automations.connections import Connections, ConnectionSettings
from automations.execution.executor import Executor, new_run
from automations.model import Recipe
from automations.recipes.compiler import load_recipe_text
from automations.records import RunRecord, TriggerKind
from automations.retry import RetryPolicy
from automations.stores import MemoryStore
from tests.fakes import VirtualClock
from tests.fakes.loops import LoopsFake
from tests.fakes.quo import QuoFake

ENV = {
    "QUO_API_KEY": "quo-test-key",
    "LOOPS_API_KEY": "loops-test-key",
    "QUO_FROM": "+15555550199",
}

LEAD = """
name: lead
trigger:
  table: {path: leads.csv, key: Email}
only_run_if: "Phone != null && Phone != ''"
actions:
  - id: contact
    quo.create_contact:
      defaultFields:
        firstName: /First Name
        phoneNumbers: [{name: primary, value: /Phone}]
  - id: sms
    quo.send_sms:
      from: ${QUO_FROM}
      to: [/Phone]
      content: "Hi {/First Name}! (contact {/@contact.data.id})"
  - id: event
    only_run_if: "Plan == 'pro'"
    loops.send_event: {email: /Email, eventName: leadTexted}
"""

ROW = {"Email": "ada@example.com", "First Name": "Ada", "Phone": "(555) 555-0100", "Plan": "pro"}


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the engine catches it."""


@dataclass
class Harness:
    store: MemoryStore
    quo: QuoFake
    loops: LoopsFake
    clock: VirtualClock
    recipe: Recipe
    env: dict[str, str]
    #: When set, called with each request before the fakes see it (raise Crash to "die").
    before: Callable[[httpx.Request], None] | None = None
    #: When set, called after the fakes answered (raise Crash: it arrived, the answer is lost).
    after: Callable[[httpx.Request], None] | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.before:
            self.before(request)
        fake = self.loops if request.url.host == "app.loops.so" else self.quo
        response = fake.handler(request)
        if self.after:
            self.after(request)
        return response

    def script_for(self, path: str, *faults: Any) -> None:
        """Script the Quo fake's answers from the first request to ``path`` on."""
        done = False

        def arm(request: httpx.Request) -> None:
            nonlocal done
            if not done and request.url.path == path:
                done = True
                self.quo.script(*faults)

        self.before = arm

    def executor(self, conns: Connections) -> Executor:
        return Executor(
            self.store,
            conns,
            self.env,
            retry=RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=1.0, max_total=30.0),
        )

    def connections(self) -> Connections:
        return Connections(
            ConnectionSettings.from_env(self.env),
            transport=httpx.MockTransport(self.handler),
            clock=self.clock,
            sleep=self.clock.sleep,
        )

    def run(
        self,
        row: dict[str, Any] | None = None,
        *,
        dry_run: bool = False,
        existing: RunRecord | None = None,
        event_key: str = "k1",
    ) -> RunRecord:
        async def go() -> RunRecord:
            async with self.connections() as conns:
                run = (
                    existing
                    or self.store.enqueue(
                        new_run(self.recipe.name, TriggerKind.MANUAL, event_key, row or ROW)
                    )[0]
                )
                return await self.executor(conns).execute(run, self.recipe, dry_run=dry_run)

        return asyncio.run(go())


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    (tmp_path / "leads.csv").write_text("Email,First Name,Phone,Plan\n")
    clock = VirtualClock()
    result = load_recipe_text(
        LEAD, "lead.yaml", base_dir=tmp_path, env=ENV, source=tmp_path / "lead.yaml"
    )
    assert result.recipe is not None, result.diagnostics
    yield Harness(
        MemoryStore(), QuoFake(clock=clock), LoopsFake(clock=clock), clock, result.recipe, dict(ENV)
    )
