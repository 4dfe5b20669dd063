"""The execution core: one run of one recipe for one event, written to the store as it goes.

Order of writes (what makes a crash lose nothing and send nothing twice):

1. the run is claimed (``running``, with the recipe version) before anything else;
2. the row and condition are recorded; a false condition ends the run ``skipped``;
3. per step: the rendered request is written with status ``sending`` *before* it leaves, and the
   outcome (``succeeded`` / ``failed`` / ``unknown``) as soon as it is known.

Resuming a run after a crash (``execute`` on a ``running`` run) skips finished steps and looks at a
step left ``sending``: a resend-safe request (keyed Loops event, idempotent PUT) is sent again with
the same idempotency key; a Quo SMS is marked ``unknown`` for a person to decide (``resolve``).
A step found ``pending`` with an idempotency key (a replay carries its original's) is sent with
that key, not a new one.

Under a lease (the runner's claim, ``ports.ClaimStore``) every write is fenced by it: the
``sending`` mark is written only while the lease is held and unexpired (else nothing is sent),
and the other writes only while its token is current. A runner that lost the run (``LeaseLost``)
stops it there; an outcome it learnt too late is kept as an audit entry (``late outcome``),
not written over the new owner's work.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from automations.breaker import refuses_key
from automations.connections import Connections, mask_headers
from automations.errors import (
    AmbiguousSendError,
    ConfigError,
    ConnectionPausedError,
    LeaseLost,
    ProviderError,
    RenderError,
    StoreError,
    TableDatabaseError,
)
from automations.execution.render import PreviewEnv, render_action, shown_request
from automations.execution.rows import action_condition, evaluate_condition, row_for
from automations.execution.versions import remember_version
from automations.execution.write_back import WRITES_BACK, write_back, writes_back
from automations.model import Action, Recipe
from automations.outbound import OutboundRequest
from automations.ports import Lease, RunStore, StateStore, Store
from automations.records import (
    AuditEntry,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    TriggerKind,
)
from automations.redact import Redactor, short_secrets
from automations.retry import RetryPolicy
from automations.stores.codec import is_truncated

__all__ = ["CUT_EVENT", "KEY_VARIABLES", "Executor", "StoreCall", "new_run"]

#: Why a run whose event was stored cut (by a version before events were kept whole) fails.
CUT_EVENT = (
    "this run's event was stored cut to 8 KB by an older version of automations, so it cannot "
    "be run as received; have the sender deliver it again (or re-add the row)"
)

log = logging.getLogger("automations.runner")

#: Backoff of a run's writes that failed (``_Writes.flush``): first delay and cap, seconds.
FLUSH_BACKOFF_S = 0.5
FLUSH_BACKOFF_MAX_S = 30.0
#: A run deferred under a lease is given back, ready again for other nodes after this long (the
#: runner that deferred it tries it again sooner, by its own backoff).
DEFER_HOLD_S = 30.0

T = TypeVar("T")

#: Runs a function of the store and returns its result: ``inline`` calls it right there (the
#: CLI, tests); the runner passes ``StoreThread``, which calls it on a thread of its own so that
#: a slow or locked database never blocks the event loop.
StoreCall = Callable[..., Awaitable[Any]]


async def inline(fn: Callable[..., T], *args: Any) -> T:
    """Call ``fn(*args)`` on this thread (the default ``StoreCall``)."""
    return fn(*args)


#: Environment variables whose values are always secrets, whatever the recipe references.
KEY_VARIABLES = ("QUO_API_KEY", "MATON_API_KEY", "LOOPS_API_KEY")

_DONE = (StepStatus.SUCCEEDED, StepStatus.SKIPPED, StepStatus.DRY_RUN)


def new_run(
    recipe: str, trigger: TriggerKind, event_key: str, event: Any, *, now: float | None = None
) -> RunRecord:
    """A fresh ``pending`` run record (the inbox entry for one event)."""
    return RunRecord(
        id=uuid.uuid4().hex,
        recipe=recipe,
        trigger=trigger,
        event_key=event_key,
        event=event,
        created_at=time.time() if now is None else now,
    )


class Executor:
    """Executes runs through the shared ``Connections`` and records them in ``store``."""

    def __init__(
        self,
        store: RunStore,
        connections: Connections,
        env: Mapping[str, str],
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        io: StoreCall = inline,
        defer_refused: bool = False,
    ) -> None:
        self.store = store
        self.connections = connections
        self.env = env
        self.retry = retry or RetryPolicy.from_env(env)
        self.clock = clock
        #: How store calls are made (see ``StoreCall``).
        self.io = io
        #: The runner's choice: a run whose request was refused for its key (401, Quo's 402) or
        #: held by a paused connection goes back to ``pending`` (nothing was processed) instead
        #: of failing. One-off commands (``exec``, ``replay``) keep failing it.
        self.defer_refused = defer_refused
        self._redactors: dict[str, Redactor] = {}
        self._shorts: dict[str, frozenset[str]] = {}
        self._remembered: set[str] = set()
        #: Called with each run this executor ended (final and durable; not a deferred run,
        #: nor one found final already): the runner's metrics count them.
        self.finished: list[Callable[[RunRecord], None]] = []

    def _short(self, recipe: Recipe) -> frozenset[str]:
        """The variables ``recipe`` substitutes whose values are too short to mask in free
        text (they are masked where substituted: ``render.shown_request``)."""
        short = self._shorts.get(recipe.content_hash)
        if short is None:
            short = self._shorts[recipe.content_hash] = short_secrets(self.env, recipe.env_names)
        return short

    def redactor(self, recipe: Recipe) -> Redactor:
        r = self._redactors.get(recipe.content_hash)
        if r is None:
            r = Redactor.for_env(self.env, {*recipe.env_names, *KEY_VARIABLES})
            self._redactors[recipe.content_hash] = r
        return r

    async def execute(
        self,
        run: RunRecord,
        recipe: Recipe,
        *,
        dry_run: bool = False,
        lease: Lease | None = None,
    ) -> RunRecord:
        """Run (or resume) ``run`` with ``recipe``; returns the final record (``pending`` when
        the run was deferred, see ``defer_refused``). A ``StoreError`` leaves the run as it was
        last written, resumable. Under ``lease``, every write is fenced by it; ``LeaseLost``
        when it is gone (the run is left to the node that holds it now)."""
        writes = _Writes(self, lease)
        # a run that writes back records its final status only once its row is written
        writes.hold_final = writes_back(recipe) is not None
        final = await self._execute(run, recipe, dry_run, writes)
        if writes.held is not None:
            await writes.flush()  # its steps are durable; the run stays running meanwhile
            final = await self._write_back(recipe, final)
            writes.add(
                self.store.update_run,
                final.id,
                status=final.status,
                error=final.error,
                finished_at=final.finished_at,
            )
        await writes.flush()
        if writes.ended:
            for listener in self.finished:
                listener(final)
        return final

    async def _write_back(self, recipe: Recipe, final: RunRecord) -> RunRecord:
        """``final`` after its values were written into its row (see ``execution/write_back``):
        ``failed``, saying why, when they could not be."""
        red = self.redactor(recipe)
        try:
            updated = await asyncio.to_thread(write_back, recipe, final, self.env)
        except Exception as exc:  # TableDatabaseError, or a value a template could not render
            why = red.text(
                f"write_back: {exc}"
                if isinstance(exc, TableDatabaseError)
                else f"write_back: {_reason(exc)}"
            )
            log.warning(
                "run %s %s: %s", final.id[:12], final.recipe, why, extra={"run_id": final.id}
            )
            status = RunStatus.FAILED if final.status is RunStatus.SUCCEEDED else final.status
            error = why if final.error is None else f"{final.error}; {why}"
            return replace(final, status=status, error=error)
        if updated == 0:
            log.warning(
                "run %s %s: write_back found no row with key %s any more (deleted?); nothing "
                "was written",
                final.id[:12],
                final.recipe,
                red.text(str(final.event_key)),
                extra={"run_id": final.id},
            )
        return final

    async def _execute(
        self, run: RunRecord, recipe: Recipe, dry_run: bool, writes: _Writes
    ) -> RunRecord:
        # the row and condition follow from the event alone, so they are computed first and
        # recorded with the claim, in one write
        red = self.redactor(recipe)
        dry = dry_run or run.dry_run
        if is_truncated(run.event):
            return await self._refuse_cut_event(run, recipe, dry, writes)
        row = row_for(recipe, run.event)
        cond = evaluate_condition(recipe, row)
        # the row is stored only when ``columns:`` made it differ from the event (audit size)
        stored_row = red.value(row) if recipe.columns is not None else None
        remember = recipe.content_hash not in self._remembered
        claimed = await self.io(
            self._claim, run.id, recipe, stored_row, cond.passed, dry, remember, writes.lease
        )
        if claimed is None:
            _lost(run.id, writes.lease)
            final: RunRecord = await self.io(self.store.get_run, run.id)
            return final
        self._remembered.add(recipe.content_hash)
        env: Mapping[str, str] = PreviewEnv(self.env) if dry else self.env
        prog = _Progress(claimed, writes, row=stored_row, condition=cond.passed, dry_run=dry)
        if not cond.passed:
            return self._finish(prog, RunStatus.SKIPPED, cond.error)
        # Validate before the first send: every step that does not read an earlier step's
        # response is rendered (and checked: phone numbers, the vendor's schema) now, so a run
        # that cannot render fails with nothing sent, not after its first steps went out.
        skip: set[int] = set()
        ready: dict[int, OutboundRequest] = {}
        for index, action in enumerate(recipe.actions):
            prior = prog.steps.get(index)
            if prior is not None and prior.status is StepStatus.UNKNOWN:
                break  # the run stops there (unknown) whatever comes after
            if (prior is not None and prior.status in _DONE) or action.reads_steps:
                continue  # a step reading earlier responses is rendered when its turn comes
            if not action_condition(action, row, {}).passed:
                skip.add(index)
                continue
            try:
                ready[index] = render_action(recipe, action, index, row, env, {}, run_id=run.id)
            except StoreError:
                raise
            except Exception as exc:  # see _render_failed
                sent = any(s.status is StepStatus.SUCCEEDED for s in prog.steps.values())
                note = "" if sent else " (checked before sending: nothing was sent)"
                return self._render_failed(prog, index, action, red, exc, note)
        responses: dict[str, Any] = {}
        for index, action in enumerate(recipe.actions):
            prior = prog.steps.get(index)
            if prior is not None and prior.status in _DONE:
                responses[action.id] = prior.response_body
                if action.response_as and prior.status is not StepStatus.SKIPPED:
                    responses[action.response_as] = prior.response_body
                continue
            if prior is not None and prior.status is StepStatus.UNKNOWN:
                return self._finish(prog, RunStatus.UNKNOWN, prior.error)
            started_at = self.clock()
            if index in skip or (
                action.reads_steps and not action_condition(action, row, responses).passed
            ):
                skipped = StepRecord(run.id, index, action.id, action.kind, started_at=started_at)
                self._put(prog, skipped, status=StepStatus.SKIPPED)
                continue
            req = ready.get(index)
            try:
                if req is None:
                    req = render_action(recipe, action, index, row, env, responses, run_id=run.id)
                if prior is not None and prior.idempotency_key and req.idempotency_key:
                    # a replay (or a resumed run) sends under the key its step was first sent with
                    req = replace(req, idempotency_key=prior.idempotency_key)
                described = self._describe(req, red)
                masks: Redactor | _UrlSwap = red
                short = self._short(recipe)
                if short:
                    real_url = described["url"]
                    described = shown_request(
                        recipe, action, index, row, env, responses, described, short,
                        run_id=run.id, describe=lambda r: self._describe(r, red),
                    )  # fmt: skip
                    if described["url"] != real_url:  # errors name the URL as the audit does
                        masks = _UrlSwap(red, real_url, described["url"])
            except StoreError:
                raise
            except Exception as exc:  # see _render_failed
                return self._render_failed(prog, index, action, red, exc, "")
            step = StepRecord(
                run.id,
                index,
                action.id,
                action.kind,
                request=described,
                idempotency_key=req.idempotency_key,
                started_at=started_at,
            )
            if dry:
                self._put(prog, step, status=StepStatus.DRY_RUN)
                continue
            if prior is not None and prior.status is StepStatus.SENDING and not req.resend_safe:
                msg = (
                    "the runner stopped while this request was being sent; it may or may not "
                    "have reached the provider, and it cannot be sent again safely. Check, then "
                    f"`automations resolve {run.id} {action.id} sent` (or `not-sent`, and replay)"
                )
                self._put(prog, step, status=StepStatus.UNKNOWN, error=msg, attempts=prior.attempts)
                return self._finish(prog, RunStatus.UNKNOWN, f"{action.id}: {msg}")
            outcome = await self._send(prog, step, req, masks)
            if outcome.status is StepStatus.SUCCEEDED:
                responses[action.id] = outcome.response_body
                if action.response_as:
                    responses[action.response_as] = outcome.response_body
                continue
            if outcome.status is StepStatus.PENDING:  # deferred: see ``defer_refused``
                return self._defer(prog, f"{action.id}: {outcome.error}")
            status = RunStatus.UNKNOWN if outcome.status is StepStatus.UNKNOWN else RunStatus.FAILED
            return self._finish(prog, status, f"{action.id}: {outcome.error}")
        return self._finish(prog, RunStatus.SUCCEEDED, None)

    def _render_failed(
        self,
        prog: _Progress,
        index: int,
        action: Action,
        red: Redactor,
        exc: Exception,
        note: str,
    ) -> RunRecord:
        """A step that cannot be rendered. ``RenderError`` / ``ConfigError`` say what is wrong;
        anything else is a value nothing expected (or a bug): the run fails with that said, and
        never stays ``running``."""
        why = red.text(_reason(exc))
        failed = StepRecord(prog.run.id, index, action.id, action.kind, started_at=self.clock())
        self._put(prog, failed, status=StepStatus.FAILED, error=why)
        return self._finish(prog, RunStatus.FAILED, f"{action.id}: {why}{note}")

    async def _send(
        self,
        prog: _Progress,
        step: StepRecord,
        req: OutboundRequest,
        red: Redactor | _UrlSwap,
    ) -> StepRecord:
        # what the run wrote so far is durable before the request leaves (and no transaction is
        # held open across the wait for a slot)
        await prog.writes.flush()
        sending = replace(step, status=StepStatus.SENDING, attempts=1)
        marked = False  # whether "sending" stands recorded for this request
        lease = prog.writes.lease

        async def mark_sending() -> None:
            nonlocal marked
            # durable before the request leaves: written before sent
            if lease is None:
                await self.io(self.store.put_step, sending)
            elif not await self.io(self._mark_sending, sending, lease):
                # the last check before the request leaves: a node paused past its lease (or
                # whose run another node took) never sends
                raise LeaseLost(run_id=step.run_id, message=_LOST_BEFORE_SENDING)
            marked = True

        async def mark_unsent() -> None:
            nonlocal marked
            # the attempt never reached the provider (no connection, a 429): while the request
            # waits for its next try (minutes, in an outage) a crash must not leave it "sending"
            await self.io(_apply, self.store, [(self.store.put_step, (step,), {})], lease)
            marked = False

        # Only a request that must not be sent twice needs the mark: a resend-safe one (a keyed
        # Loops event, a PUT) found without an outcome after a crash is simply sent again.
        on_sending = None if req.resend_safe else mark_sending
        on_unsent = None if req.resend_safe else mark_unsent
        started = time.perf_counter()
        try:
            result = await self.connections.send(
                req, self.retry, on_sending=on_sending, on_unsent=on_unsent
            )
        except (ProviderError, ConfigError) as exc:
            if self.defer_refused and isinstance(exc, ProviderError) and _deferrable(exc, req):
                # nothing was processed: the step waits, as if it had never been tried
                return self._put(
                    prog,
                    step,
                    status=StepStatus.PENDING,
                    error=red.text(_deferred_reason(exc)),
                    http_status=exc.status,
                    attempts=exc.attempts,
                    finished_at=None,
                )
            return self._failed(prog, step, red, exc, started)
        except (StoreError, LeaseLost):
            raise
        except Exception as exc:
            # Nothing expected this (a bug, a transport misbehaving): the run ends with it said.
            # Once "sending" is recorded the request may have left: unknown, for a person.
            why = red.text(f"the send failed unexpectedly ({_reason(exc)})")
            if marked:
                # replay refuses a run with an unknown step until a person resolves it
                why += (
                    "; it may or may not have reached the provider: check whether it went "
                    f"through, then `automations resolve {step.run_id} {step.step_id} sent` "
                    "(or `not-sent`, and replay)"
                )
            status = StepStatus.UNKNOWN if marked else StepStatus.FAILED
            return self._put(prog, step, status=status, error=why, duration_ms=_ms(started))
        return self._put(
            prog,
            step,
            status=StepStatus.SUCCEEDED,
            http_status=result.status,
            response_body=red.value(result.body),
            attempts=result.attempts,
            duration_ms=result.duration_ms,
        )

    async def _refuse_cut_event(
        self, run: RunRecord, recipe: Recipe, dry: bool, writes: _Writes
    ) -> RunRecord:
        """A run whose event an older version stored cut to 8 KB: running on the marker would
        send garbage (or skip silently), so it fails, saying why."""
        claimed = await self.io(self._claim, run.id, recipe, None, None, dry, False, writes.lease)
        if claimed is None:
            _lost(run.id, writes.lease)
            final: RunRecord = await self.io(self.store.get_run, run.id)
            return final
        prog = _Progress(claimed, writes, row=None, condition=None, dry_run=dry)
        return self._finish(prog, RunStatus.FAILED, CUT_EVENT)

    def _failed(
        self,
        prog: _Progress,
        step: StepRecord,
        red: Redactor | _UrlSwap,
        exc: ProviderError | ConfigError,
        started: float,
    ) -> StepRecord:
        if isinstance(exc, AmbiguousSendError):
            what = (
                f"{exc}; check whether it went through, then `automations resolve "
                f"{step.run_id} {step.step_id} sent` (or `not-sent`, and replay)"
            )
            return self._put(
                prog,
                step,
                status=StepStatus.UNKNOWN,
                error=red.text(what),
                http_status=exc.status,
                response_body=red.value(_body_of(exc)),
                duration_ms=_ms(started),
                attempts=exc.attempts,
            )
        if isinstance(exc, ProviderError):
            return self._put(
                prog,
                step,
                status=StepStatus.FAILED,
                error=red.text(_explain(exc)),
                error_code=exc.vendor_code,
                http_status=exc.status,
                response_body=red.value(_body_of(exc)),
                duration_ms=_ms(started),
                attempts=exc.attempts,
            )
        return self._put(prog, step, status=StepStatus.FAILED, error=red.text(str(exc)))

    def _describe(self, req: OutboundRequest, red: Redactor) -> dict[str, Any]:
        """What the audit keeps of a request. Only the request's own headers (an http.request's,
        secrets masked) are kept: the connection's (the masked API key, User-Agent) are the same
        on every request, and the idempotency key has a field of its own."""
        url, _ = self.connections.describe(req)
        out: dict[str, Any] = {"method": req.method, "url": red.text(url)}
        if req.headers:
            out["headers"] = {k: red.text(v) for k, v in mask_headers(req.headers)}
        out["body"] = red.value(req.json)
        return out

    def _claim(
        self,
        run_id: str,
        recipe: Recipe,
        row: Any,
        condition: bool | None,
        dry_run: bool,
        remember: bool,
        lease: Lease | None,
    ) -> RunRecord | None:
        """The claim (fenced by ``lease``), and the recipe's text kept the first time a version
        runs: one store call (on the store's thread)."""
        claimed = self.store.claim(
            run_id, recipe.content_hash, lease=lease, row=row, condition=condition, dry_run=dry_run
        )
        if claimed is not None and remember and isinstance(self.store, StateStore):
            remember_version(self.store, recipe)
        return claimed

    def _mark_sending(self, step: StepRecord, lease: Lease) -> bool:
        store = self.store
        if not isinstance(store, Store):  # a bare RunStore: no leases to fence with
            store.put_step(step)
            return True
        return store.mark_sending(step, lease)

    def _put(self, prog: _Progress, step: StepRecord, **fields: Any) -> StepRecord:
        fields.setdefault("finished_at", self.clock())
        final = replace(step, **fields)
        prog.writes.add(self.store.put_step, final)
        prog.steps[final.index] = final
        return final

    def _defer(self, prog: _Progress, error: str) -> RunRecord:
        """Back to ``pending`` (the dispatcher runs it again when its connection works). Under a
        lease, the run is given back, ready for other nodes after ``DEFER_HOLD_S``."""
        lease = prog.writes.lease
        if lease is not None and isinstance(self.store, Store):
            prog.writes.add(self.store.release, lease, available_at=self.clock() + DEFER_HOLD_S)
        prog.writes.add(self.store.update_run, prog.run.id, status=RunStatus.PENDING, error=error)
        steps = tuple(prog.steps[i] for i in sorted(prog.steps))
        return replace(
            prog.run,
            status=RunStatus.PENDING,
            error=error,
            steps=steps,
            row=prog.row,
            condition=prog.condition,
            dry_run=prog.dry_run,
        )

    def _finish(self, prog: _Progress, status: RunStatus, error: str | None) -> RunRecord:
        now = self.clock()
        prog.writes.ended = True
        if prog.writes.hold_final and status in WRITES_BACK and not prog.dry_run:
            prog.writes.held = status  # written by ``execute`` after the write-back
        else:
            prog.writes.add(
                self.store.update_run, prog.run.id, status=status, error=error, finished_at=now
            )
        # the final record is assembled from what was written, not read back (a query per run)
        steps = tuple(prog.steps[i] for i in sorted(prog.steps))
        return replace(
            prog.run,
            status=status,
            error=error,
            finished_at=now,
            steps=steps,
            row=prog.row,
            condition=prog.condition,
            dry_run=prog.dry_run,
        )


class _UrlSwap:
    """A step's ``Redactor`` whose texts also show the step's URL as the audit shows it (short
    secrets as ``${NAME}``, see ``render.shown_request``): an error naming the request says the
    same URL as the step's record."""

    __slots__ = ("_real", "_red", "_shown")

    def __init__(self, red: Redactor, real: str, shown: str) -> None:
        self._red = red
        self._real = real
        self._shown = shown

    def text(self, s: str) -> str:
        return self._red.text(s).replace(self._real, self._shown)

    def value(self, v: Any) -> Any:
        return self._red.value(v)


class _Progress:
    """One execution's view of its run: the claimed record and the steps written so far."""

    __slots__ = ("condition", "dry_run", "row", "run", "steps", "writes")

    def __init__(
        self,
        run: RunRecord,
        writes: _Writes,
        *,
        row: Any,
        condition: bool | None,
        dry_run: bool,
    ) -> None:
        self.run = run
        self.writes = writes
        self.row = row
        self.condition = condition
        self.dry_run = dry_run
        self.steps: dict[int, StepRecord] = {s.index: s for s in run.steps}


class _Writes:
    """A run's writes between two requests, made together in one store call and one commit.

    Flushed before every request leaves ("written before sent") and when the run ends; each
    flush is one transaction, begun and committed within one call (on the store's thread in the
    runner), so no transaction is ever left open across an ``await``: another coroutine's write
    (a webhook's inbox entry) can never join it and be taken for durable before it is. A store
    without ``transaction()`` commits every write as before.

    A flush that fails with ``StoreError`` (disk full, a lock held past the busy timeout) is
    tried again, with backoff, for as long as it takes: what it holds may be the outcome of a
    request that went out, and only this execution knows it. Given up, the run would be resumed
    from its ``sending`` mark, and a text that was sent would become ``unknown``.
    """

    __slots__ = ("_executor", "_pending", "ended", "held", "hold_final", "lease")

    def __init__(self, executor: Executor, lease: Lease | None = None) -> None:
        self._executor = executor
        #: The run was ended (``_finish``) by this execution.
        self.ended = False
        #: The lease fencing the writes (``None``: not fenced, as in one-off commands).
        self.lease = lease
        self._pending: list[tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]] = []
        #: The run writes back: its final status waits for the write-back (``execute``).
        self.hold_final = False
        #: The final status held back, once the run has one.
        self.held: RunStatus | None = None

    def add(self, fn: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        self._pending.append((fn, args, kwargs))

    async def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        executor = self._executor
        tries = 0
        while True:
            try:
                await executor.io(_apply, executor.store, pending, self.lease)
                return
            except LeaseLost:
                # what this node learnt is evidence for whoever resolves the run: kept aside
                await executor.io(_keep_late_outcomes, executor.store, pending, self.lease)
                raise
            except StoreError as exc:
                tries += 1
                delay = min(FLUSH_BACKOFF_MAX_S, FLUSH_BACKOFF_S * 2 ** (tries - 1))
                log.warning("a run's writes failed (%s); trying again in %.1f s", exc, delay)
                await asyncio.sleep(delay)


_Write = tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]
_LOST_BEFORE_SENDING = (
    "this runner's lease on the run expired or another runner took the run: not sent here; "
    "the runner that holds it now continues the run"
)


def _lost(run_id: str, lease: Lease | None) -> None:
    """A fenced claim that found nothing: under a lease, the run is someone else's now."""
    if lease is not None:
        raise LeaseLost(run_id, "another runner holds this run now; left to it")


def _apply(store: RunStore, writes: list[_Write], lease: Lease | None = None) -> None:
    """Make ``writes`` in one transaction; under ``lease``, only while it is held (the check and
    the writes commit together: a rescue cannot slip in between)."""
    if lease is not None and isinstance(store, Store):
        with store.transaction():
            if not store.holds(lease):
                raise LeaseLost(lease.run_id, "the run's lease was lost: its writes were not made")
            for fn, args, kwargs in writes:
                fn(*args, **kwargs)
    elif isinstance(store, Store) and len(writes) > 1:
        with store.transaction():
            for fn, args, kwargs in writes:
                fn(*args, **kwargs)
    else:
        for fn, args, kwargs in writes:
            fn(*args, **kwargs)


def _keep_late_outcomes(store: RunStore, writes: list[_Write], lease: Lease | None) -> None:
    """The step outcomes of writes refused for a lost lease, as audit entries (``late
    outcome``: what this node saw, never a secret), so a person resolving the run knows that a
    request went out and what came back."""
    owner = lease.owner if lease is not None else "runner"
    for _fn, args, _kwargs in writes:
        step = args[0] if args and isinstance(args[0], StepRecord) else None
        if step is None or step.status in (StepStatus.PENDING, StepStatus.SKIPPED):
            continue
        detail: dict[str, Any] = {"step": step.step_id, "status": step.status.value}
        if step.http_status is not None:
            detail["http_status"] = step.http_status
        try:
            store.add_audit(
                AuditEntry(
                    at=step.finished_at or time.time(),
                    actor=f"runner {owner}",
                    action="late outcome",
                    run_id=step.run_id,
                    step_index=step.index,
                    detail=detail,
                )
            )
        except StoreError as exc:  # evidence only: the run's own record is the new owner's
            log.warning("could not keep a late outcome of run %s: %s", step.run_id[:12], exc)


def _deferrable(exc: ProviderError, req: OutboundRequest) -> bool:
    """Whether the provider's answer proves it did nothing and the run can simply wait."""
    return isinstance(exc, ConnectionPausedError) or refuses_key(req.connection, exc.status)


def _deferred_reason(exc: ProviderError) -> str:
    if isinstance(exc, ConnectionPausedError):
        return f"not sent: {exc}; the run waits and is sent when the connection resumes"
    return f"{_explain(exc)}; nothing was processed, the run waits for the connection to work again"


def _reason(exc: Exception) -> str:
    """An error as the audit says it: ours speak for themselves, others are named."""
    if isinstance(exc, RenderError | ConfigError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _explain(exc: ProviderError) -> str:
    """The error with the vendor's own words and plain advice, each said once."""
    text = str(exc)
    for extra in (exc.vendor_message, exc.advice):
        if extra and extra not in text:
            text = f"{text}; {extra}" if text else extra
    return text


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _body_of(exc: ProviderError) -> Any:
    resp = exc.response
    if resp is None:
        return None
    try:
        return resp.json()
    except Exception:  # not JSON: keep a bounded piece of the text
        text = getattr(resp, "text", "")
        return text[:4096] if isinstance(text, str) else None
