"""The runs list (``/runs``), one run (``/runs/{id}``) and the live stream (``/events``).

The list is a keyset page (``filters``); new runs reach an open list through server-sent events:
the stream looks for runs recorded after the newest one the page shows (one indexed query per
second per open page), sends each as a rendered, escaped table row, and sends a run again when
its status changes while it is on the page.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from automations.console.filters import PAGE, RunsQuery
from automations.console.render import run_line
from automations.errors import RefusedError, StoreError
from automations.execution.pauses import paused_connections
from automations.execution.replay import check_replayable
from automations.execution.versions import condition_source
from automations.ports import Store
from automations.records import AuditEntry, RunFilter, RunRecord, RunStatus

if TYPE_CHECKING:
    from automations.console.app import Console

__all__ = ["RunPage", "RunsPage", "read_run", "read_runs", "routes"]

#: How far a replay chain is followed each way.
_CHAIN = 20
#: Runs the stream keeps watching for a status change.
_WATCHED = 100
#: Seconds between keep-alive comments on an idle stream.
_PING_S = 15.0


@dataclass(frozen=True, slots=True)
class RunsPage:
    runs: list[RunRecord]
    #: The cursor of the next (older) page, if there is one.
    next_before: str | None


def read_runs(store: Store, query: RunsQuery, *, now: float | None = None) -> RunsPage:
    """One page of the list: the newest ``PAGE`` runs matching ``query``."""
    found: dict[str, RunRecord] = {}
    for flt in query.filters(PAGE + 1, now=now):
        for run in store.list_runs(flt):
            found.setdefault(run.id, run)
    # one query, or one per form of a searched key (merged newest first)
    runs = list(found.values())
    if len(query.filters(1, now=now)) > 1:
        runs.sort(key=lambda r: r.created_at, reverse=True)
    more = len(runs) > PAGE
    runs = runs[:PAGE]
    return RunsPage(runs, runs[-1].id if more and runs else None)


def newer_runs(store: Store, query: RunsQuery, after: str, now: float) -> list[RunRecord]:
    """Runs matching ``query`` recorded after the run ``after``, oldest first."""
    found: dict[str, RunRecord] = {}
    for flt in query.filters(PAGE, now=now):
        for run in store.list_runs(replace(flt, before_id=None, after_id=after)):
            found.setdefault(run.id, run)
    return sorted(found.values(), key=lambda r: r.created_at)


def newest_id(store: Store) -> str | None:
    runs = store.list_runs(RunFilter(limit=1))
    return runs[0].id if runs else None


@dataclass(frozen=True, slots=True)
class RunPage:
    run: RunRecord
    #: Older runs of the chain first (what this run replays, and what that replayed...).
    replays_of: list[RunRecord]
    #: The replays of this run, the newest last.
    replayed_as: list[RunRecord]
    decisions: list[AuditEntry]
    condition: str | None
    #: Why a replay is refused now (``None``: it may be replayed).
    replay_refused: str | None
    waiting: list[str]


def _chain(store: Store, start: str | None, link: str) -> list[RunRecord]:
    out: list[RunRecord] = []
    seen: set[str] = set()
    while start is not None and start not in seen and len(out) < _CHAIN:
        seen.add(start)
        try:
            run = store.get_run(start)
        except StoreError:  # pruned
            break
        out.append(run)
        start = getattr(run, link)
    return out


#: ``only_run_if`` by recipe version: a version's text never changes (its hash is its content).
_CONDITIONS: dict[str, str | None] = {}


def _condition(store: Store, run: RunRecord) -> str | None:
    """``condition_source``, compiled once per recipe version."""
    if run.recipe_hash is None:
        return condition_source(store, run)
    if run.recipe_hash not in _CONDITIONS:
        if len(_CONDITIONS) > 1000:
            _CONDITIONS.clear()
        _CONDITIONS[run.recipe_hash] = condition_source(store, run)
    return _CONDITIONS[run.recipe_hash]


def read_run(store: Store, run_id: str) -> RunPage:
    """Everything the run page shows; ``StoreError`` for an unknown id."""
    run = store.get_run(run_id)
    try:
        check_replayable(store, run)
        refused = None
    except RefusedError as exc:
        refused = str(exc)
    waiting = []
    if run.status is RunStatus.PENDING:
        waiting = [p.text() for p in paused_connections(store).values()]
    return RunPage(
        run=run,
        replays_of=list(reversed(_chain(store, run.replay_of, "replay_of"))),
        replayed_as=_chain(store, run.replayed_as, "replayed_as"),
        decisions=store.audit_log(run.id),
        condition=_condition(store, run),
        replay_refused=refused,
        waiting=waiting,
    )


def routes(console: Console) -> list[BaseRoute]:
    async def runs_page(request: Request) -> Response:
        query, problems = RunsQuery.from_params(request.query_params)
        page: RunsPage = await console.call(read_runs, console.store, query)
        recipes = sorted(console.host.recipes())
        return console.page(
            request,
            "runs.html",
            {
                "query": query,
                "problems": problems,
                "lines": [run_line(r) for r in page.runs],
                "next_before": page.next_before,
                "recipes": recipes,
                "statuses": [s.value for s in RunStatus],
                "newest": page.runs[0].id if page.runs else "",
                "live": query.before is None,
            },
        )

    async def run_page(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            found: RunPage = await console.call(read_run, console.store, run_id)
        except StoreError as exc:
            message = {"title": "No such run", "text": str(exc)}
            return console.page(request, "message.html", message, 404)
        return console.page(
            request,
            "run.html",
            {"p": found, "run": found.run, "notice": request.query_params.get("notice")},
        )

    async def events(request: Request) -> Response:
        query, _ = RunsQuery.from_params(request.query_params)
        after = request.query_params.get("after") or None
        return StreamingResponse(
            _stream(console, request, query, after),
            media_type="text/event-stream",
            headers={"x-accel-buffering": "no"},
        )

    return [
        Route("/runs", runs_page, methods=["GET"]),
        Route("/runs/{run_id:str}", run_page, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
    ]


async def _stream(
    console: Console, request: Request, query: RunsQuery, after: str | None
) -> AsyncIterator[str]:
    """``run`` events (``{"id", "status", "html"}``) for new runs matching ``query`` and for
    status changes of the runs sent; a comment every ``_PING_S``; ends when the console
    stops."""
    template = console.templates.get_template("_run_row.html")
    store = console.store
    if after is None:
        after = await console.call(newest_id, store)
    watched: dict[str, str] = {}  # run id -> the status last sent, while not final
    yield "retry: 2000\n\n"
    idle = 0.0
    while not console.stopping.is_set():
        try:
            await asyncio.wait_for(console.stopping.wait(), timeout=console.poll_s)
            break
        except TimeoutError:
            pass
        sent = False
        if after is not None:
            new = await console.call(newer_runs, store, query, after, console.clock())
        else:
            new = await console.call(lambda: list(reversed(store.list_runs(RunFilter(limit=PAGE)))))
        changed = await console.call(_changed, store, dict(watched))
        for run in [*changed, *new]:
            line = run_line(run)
            data = {"id": run.id, "status": run.status.value, "html": template.render(r=line)}
            yield f"event: run\ndata: {json.dumps(data)}\n\n"
            sent = True
            if run.status.is_final:
                watched.pop(run.id, None)
            elif len(watched) < _WATCHED:
                watched[run.id] = run.status.value
        if new:
            after = new[-1].id
        idle = 0.0 if sent else idle + console.poll_s
        if idle >= _PING_S:
            idle = 0.0
            yield ": ping\n\n"


def _changed(store: Store, watched: dict[str, str]) -> list[RunRecord]:
    out = []
    for run_id, status in watched.items():
        try:
            run = store.get_run(run_id)
        except StoreError:
            continue
        if run.status.value != status:
            out.append(run)
    return out
