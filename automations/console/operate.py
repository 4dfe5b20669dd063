"""The decisions a person takes through the console: replay, resolve, approve, discard, and the
bulk replay of failed runs.

Each is the function the CLI calls (``execution.replay``, ``execution.resolve``,
``execution.held``), audited under the same rule for who acted; nothing here decides anew
what may be sent. A replay is recorded ``pending`` and handed to the runner's dispatcher, which
executes it in its lane like any run; the person lands on the new run's page.

Never a blind resend: a step whose outcome is ``unknown`` offers "it was sent" / "it was not
sent" (``resolve``), and a run with one is neither replayed alone nor in bulk.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from automations.console.filters import RunsQuery
from automations.console.forms import read_form
from automations.console.masking import mask_text
from automations.errors import RefusedError, StoreError
from automations.execution.held import approve, discard
from automations.execution.replay import check_replayable, record_replay
from automations.execution.resolve import OUTCOMES, Outcome, resolve
from automations.execution.versions import load_version
from automations.model import Recipe
from automations.ports import Store
from automations.records import AuditEntry, RunRecord, RunStatus, StepRecord, StepStatus

if TYPE_CHECKING:
    from automations.console.app import Console

__all__ = [
    "BulkPreview",
    "PlannedStep",
    "bulk_preview",
    "masked_recipients",
    "replay_plan",
    "routes",
]

_KEEP = (StepStatus.SUCCEEDED, StepStatus.SKIPPED)
#: SMS recipients a bulk preview lists.
_SHOWN = 20


@dataclass(frozen=True, slots=True)
class PlannedStep:
    step_id: str
    action: str
    #: Why it is sent: ``failed`` / ``not sent`` (resolved) / ``not reached``.
    why: str
    #: For an SMS step that was tried: the numbers its request was addressed to.
    to: tuple[str, ...] = ()


def replay_plan(run: RunRecord, recipe: Recipe | None) -> list[PlannedStep]:
    """The steps a replay of ``run`` would send (with the recipe as it runs now, as a replay
    does); without the recipe, the recorded steps that did not succeed."""
    recorded = {s.step_id: s for s in run.steps}
    out = []
    ids = [a.id for a in recipe.actions] if recipe is not None else [s.step_id for s in run.steps]
    kinds = {a.id: a.kind for a in recipe.actions} if recipe is not None else {}
    for step_id in ids:
        step = recorded.get(step_id)
        if step is not None and step.status in _KEEP:
            continue
        if step is None:
            why = "not reached"
        elif step.resolution == "not-sent":
            why = "resolved: not sent"
        else:
            why = step.status.value
        action = kinds.get(step_id) or (step.action if step else "?")
        out.append(PlannedStep(step_id, action, why, _sms_to(step) if step else ()))
    return out


@dataclass(frozen=True, slots=True)
class BulkPreview:
    #: The failed runs a bulk replay would take (newest first, at most the cap).
    runs: list[RunRecord]
    #: Failed runs matching the filter that it would leave out, by why.
    left_out: dict[str, int]
    #: Requests it would send, by (step id, action).
    steps: dict[tuple[str, str], int]
    #: Whether more failed runs match than the cap.
    capped: bool
    #: The numbers the SMS steps to send again were addressed to, masked (the first 20).
    recipients: list[str]
    #: How many SMS recipients in all.
    sms: int


def bulk_preview(
    store: Store, query: RunsQuery, recipes: Mapping[str, Recipe], cap: int, now: float
) -> BulkPreview:
    """What a bulk replay of the failed runs matching ``query`` would do."""
    failed = replace(query, status=RunStatus.FAILED, before=None, skipped=False)
    found: dict[str, RunRecord] = {}
    for flt in failed.filters(cap + 1, now=now):
        for run in store.list_runs(flt):
            found.setdefault(run.id, run)
    runs = sorted(found.values(), key=lambda r: r.created_at, reverse=True)
    capped = len(runs) > cap
    taken: list[RunRecord] = []
    left_out: Counter[str] = Counter()
    steps: Counter[tuple[str, str]] = Counter()
    recipients: list[str] = []
    sms = 0
    for run in runs[:cap]:
        try:
            check_replayable(store, run)
        except RefusedError:
            left_out["replayed already" if run.replayed_as else "not replayable now"] += 1
            continue
        taken.append(run)
        for planned in replay_plan(run, recipes.get(run.recipe)):
            steps[(planned.step_id, planned.action)] += 1
        numbers = masked_recipients(run)
        sms += len(numbers)
        recipients.extend(numbers[: max(0, _SHOWN - len(recipients))])
    return BulkPreview(taken, dict(left_out), dict(steps), capped, recipients, sms)


def _bulk_replay(
    store: Store, runs: list[RunRecord], actor: str, detail: dict[str, object], dry_run: bool
) -> tuple[list[RunRecord], dict[str, int]]:
    """Record a replay of each of ``runs`` (each its own transaction, as ``replay`` does); one
    audit entry for the bulk decision. Runs refused meanwhile are counted, not replayed."""
    done: list[RunRecord] = []
    refused: Counter[str] = Counter()
    for run in runs:
        try:
            original = store.get_run(run.id)
            done.append(record_replay(store, original, actor=actor, dry_run=dry_run))
        except (RefusedError, StoreError) as exc:
            refused[type(exc).__name__] += 1
    store.add_audit(
        AuditEntry(
            at=time.time(),
            actor=actor,
            action="bulk-replay",
            detail={**detail, "replayed": len(done), "refused": sum(refused.values())},
        )
    )
    return done, dict(refused)


def _total_steps(store: Store, run: RunRecord) -> int | None:
    """How many actions the version that ran has (is a resolved step the last?), as the CLI's
    ``resolve`` asks."""
    try:
        return len(load_version(store, run, {}, prefer_current=False).actions)
    except StoreError:
        return None


def _resolve(
    store: Store, run_id: str, step: str, outcome: Outcome, actor: str, note: str | None
) -> RunRecord:
    run = store.get_run(run_id)
    total = _total_steps(store, run)
    return resolve(store, run.id, step, outcome, actor=actor, total_steps=total, note=note)


def routes(console: Console) -> list[BaseRoute]:
    def back_to(run_id: str, notice: str) -> Response:
        return RedirectResponse(f"/runs/{run_id}?notice={quote(notice)}", status_code=303)

    def refused(request: Request, title: str, exc: Exception, status: int = 409) -> Response:
        return console.page(request, "message.html", {"title": title, "text": str(exc)}, status)

    async def replay_confirm(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            run: RunRecord = await console.call(console.store.get_run, run_id)
        except StoreError as exc:
            return refused(request, "No such run", exc, 404)
        try:
            await console.call(check_replayable, console.store, run)
            refusal = None
        except RefusedError as exc:
            refusal = str(exc)
        recipe = console.host.recipes().get(run.recipe)
        return console.page(
            request,
            "replay.html",
            {
                "run": run,
                "refusal": refusal,
                "plan": replay_plan(run, recipe),
                "loaded": recipe is not None,
            },
        )

    async def replay(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        actor = console.actor(request)
        try:
            original: RunRecord = await console.call(console.store.get_run, run_id)
            new: RunRecord = await console.call(
                lambda: record_replay(
                    console.store, original, actor=actor, dry_run=console.host.dry_run
                )
            )
        except StoreError as exc:
            return refused(request, "No such run", exc, 404)
        except RefusedError as exc:
            return refused(request, "Replay refused", exc)
        console.host.submit(new)
        return back_to(new.id, f"replay of {original.id} recorded by {actor}: it runs now")

    async def resolve_step(request: Request) -> Response:
        run_id, step = request.path_params["run_id"], request.path_params["step"]
        form = await read_form(request)
        outcome = form.get("outcome", "")
        note = " ".join(form.get("note", "").split())[:500] or None
        if outcome not in OUTCOMES:
            return refused(request, "Resolve refused", ValueError("say sent or not-sent"), 400)
        actor = console.actor(request)
        try:
            final: RunRecord = await console.call(
                _resolve, console.store, run_id, step, outcome, actor, note
            )
        except StoreError as exc:
            return refused(request, "No such run", exc, 404)
        except RefusedError as exc:
            return refused(request, "Resolve refused", exc)
        said = "was sent" if outcome == "sent" else "was not sent"
        return back_to(
            final.id, f"step {step} {said} (recorded by {actor}); run {final.status.value}"
        )

    async def held(request: Request) -> Response:
        name, decision = request.path_params["recipe"], request.path_params["decision"]
        if decision not in ("approve", "discard"):
            return refused(request, "No such action", ValueError("approve or discard"), 404)
        actor = console.actor(request)
        end = approve if decision == "approve" else discard
        n: int = await console.call(lambda: end(console.store, name, actor=actor))
        verb = "approved" if decision == "approve" else "discarded"
        notice = f"{verb} {n} held run(s) of {name}" if n else f"no held runs for {name}"
        return RedirectResponse(f"/recipes?notice={quote(notice)}", status_code=303)

    async def bulk(request: Request) -> Response:
        query, problems = RunsQuery.from_params(request.query_params)
        preview = None
        if request.query_params.get("preview") and not problems:
            query = query.pinned(console.clock())
            preview = await console.call(
                bulk_preview,
                console.store,
                query,
                console.host.recipes(),
                console.bulk_cap,
                console.clock(),
            )
        return console.page(
            request,
            "bulk.html",
            {
                "query": query,
                "problems": problems,
                "preview": preview,
                "cap": console.bulk_cap,
                "recipes": sorted(console.host.recipes()),
                "done": None,
            },
        )

    async def bulk_replay(request: Request) -> Response:
        params = await read_form(request)
        query, problems = RunsQuery.from_params(params)
        expected = params.get("expected", "")
        if problems or not expected.isdigit():
            return refused(request, "Bulk replay refused", ValueError("preview it first"), 400)
        actor = console.actor(request)
        preview: BulkPreview = await console.call(
            bulk_preview,
            console.store,
            query,
            console.host.recipes(),
            min(int(expected), console.bulk_cap),
            console.clock(),
        )
        detail: dict[str, object] = {"filter": query.params(), "previewed": int(expected)}
        done, left = await console.call(
            _bulk_replay, console.store, preview.runs, actor, detail, console.host.dry_run
        )
        for run in done:
            console.host.submit(run)
        return console.page(
            request,
            "bulk.html",
            {
                "query": query,
                "problems": [],
                "preview": None,
                "cap": console.bulk_cap,
                "recipes": sorted(console.host.recipes()),
                "done": {"runs": done, "refused": sum(left.values()), "actor": actor},
            },
        )

    return [
        Route("/runs/{run_id:str}/replay", replay_confirm, methods=["GET"]),
        Route("/runs/{run_id:str}/replay", replay, methods=["POST"]),
        Route("/runs/{run_id:str}/steps/{step:str}/resolve", resolve_step, methods=["POST"]),
        Route("/recipes/{recipe:str}/{decision:str}", held, methods=["POST"]),
        Route("/bulk", bulk, methods=["GET"]),
        Route("/bulk/replay", bulk_replay, methods=["POST"]),
    ]


def _sms_to(step: StepRecord) -> tuple[str, ...]:
    """The numbers an SMS step's recorded request was addressed to."""
    body = (step.request or {}).get("body")
    if step.action != "quo.send_sms" or not isinstance(body, dict):
        return ()
    to = body.get("to")
    return tuple(n for n in (to if isinstance(to, list) else [to]) if isinstance(n, str))


def masked_recipients(run: RunRecord) -> list[str]:
    """The SMS recipients of a run's recorded requests, masked (a bulk preview's list)."""
    return [
        mask_text(number)
        for step in run.steps
        if step.status not in _KEEP
        for number in _sms_to(step)
    ]
