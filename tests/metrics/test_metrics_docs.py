"""docs/console.md lists every metric ``/metrics`` serves, with its labels, and nothing else."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from automations.metrics import RunnerCollector, RunnerMetrics, StoreCollector
from automations.records import RunStatus
from automations.stores import MemoryStore
from tests.stores.factories import make_run

DOC = Path(__file__).resolve().parents[2] / "docs" / "console.md"


def served() -> dict[str, set[str]]:
    """Every family of a runner's registry (process basics aside) with its labels, each made to
    show a sample."""
    metrics = RunnerMetrics(process=False)
    run = make_run("r1", recipe="x", status=RunStatus.UNKNOWN)
    metrics.run_finished(replace(run, started_at=1.0, finished_at=2.0))
    metrics.answered("quo", 429)
    metrics.unanswered("quo", "no_answer")
    metrics.retrying("quo", "429")
    metrics.waiting("quo", 1)
    metrics.waited("quo", 0.1)
    store = MemoryStore()
    for i, status in enumerate((RunStatus.PENDING, RunStatus.HELD, RunStatus.UNKNOWN)):
        store.enqueue(make_run(f"s{i}", recipe="x"))
        store.update_run(f"s{i}", status=status)
    metrics.registry.register(StoreCollector(store, lambda: {"x": ["quo.send_sms"]}))
    metrics.registry.register(
        RunnerCollector(
            in_flight=lambda: 0, recipes=lambda: 0, errors=lambda: 0, paused=lambda: {"quo": True}
        )
    )
    out: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        out[name] = {label for s in family.samples for label in s.labels if label != "le"}
    return out


def documented() -> dict[str, set[str]]:
    section = DOC.read_text("utf-8").split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(automations_[a-z_]+)` \|([^|]*)\|", section, re.MULTILINE)
    return {name: set(re.findall(r"`([a-z_]+)`", labels)) for name, labels in rows}


def test_every_metric_is_documented_with_its_labels() -> None:
    assert documented() == served()
