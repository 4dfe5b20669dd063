"""The runner's periodic work beside execution: pruning, backlog counts and reports, the
decisions people take about held runs. Each is a loop on the runner's event loop whose store
calls run on the execution's store thread (pruning: on one of its own); none of it blocks the
intake."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import time
from typing import TYPE_CHECKING

from automations.errors import StoreError
from automations.execution.held import decisions
from automations.execution.progress import BacklogProgress
from automations.records import RunStatus
from automations.runner.looplag import LoopLag, report_interval
from automations.stores.thread import StoreThread

if TYPE_CHECKING:
    from automations.runner.service import Runner

__all__ = [
    "count_backlog",
    "hold_frozen",
    "prune_forever",
    "report_backlog_forever",
    "watch_decisions",
    "watch_loop_lag",
]

log = logging.getLogger("automations.runner")


async def report_backlog_forever(runner: Runner) -> None:
    """Every ``backlog_log_every_s`` while runs wait: one line per recipe with runs waiting,
    how many of its backlog went out and when the rest will (``execution/progress.py``)."""
    progress = BacklogProgress()
    while True:
        await asyncio.sleep(runner.options.backlog_log_every_s)
        try:
            queued = await runner.exec_io(runner.store.unfinished_counts)
        except Exception:  # a busy or closing store: the next count will do
            log.debug("backlog count skipped", exc_info=True)
            continue
        for line in progress.update(time.monotonic(), queued, runner.held_by(queued)):
            log.info("%s", line)


async def watch_decisions(runner: Runner) -> None:
    """Pick up what a person decided about held runs (``automations approve`` / ``discard``
    in another process): the held counts are refreshed and the recipes whose held runs were
    released read their backlog again (the released runs are ``pending`` there)."""
    while True:
        await asyncio.sleep(runner.options.decisions_every_s)
        try:
            seen = await runner.exec_io(decisions, runner.store)
            if seen == runner.decisions_seen:
                continue
            held = await runner.exec_io(runner.store.count_by_recipe, RunStatus.HELD)
        except StoreError as exc:
            log.debug("could not read the held runs: %s", exc)
            continue
        decided = [r for r, n in runner.held.items() if held.get(r, 0) < n]
        runner.decisions_seen, runner.held = seen, held
        for recipe in decided:
            runner.dispatcher.wake(recipe)


async def prune_forever(runner: Runner) -> None:
    """Delete finished runs past their retention, now and then (the leading node only);
    never pending or running ones. Failures are kept longer than successes.

    A prune of a large history takes a while (SQLite: half a million runs in about a minute,
    in short commits, then the space given back): it runs on a store thread of its own, so the
    execution's claims and step writes, on theirs, go on meanwhile (a first prune at start-up
    never holds up the resume of the backlog)."""
    opts = runner.options
    io = StoreThread("store-prune")
    try:
        while True:
            if not runner.lead.leading:
                await asyncio.sleep(opts.leader_ttl_s / 3)
                continue
            try:
                removed = await io(
                    functools.partial(
                        runner.store.prune,
                        now=time.time(),
                        keep_succeeded_s=opts.keep_succeeded_s,
                        keep_failed_s=opts.keep_failed_s,
                    )
                )
            except StoreError as exc:  # tried again at the next interval
                log.warning("could not prune old runs: %s", exc)
            else:
                if removed:
                    log.info("pruned %d run(s) past their retention", removed)
            await asyncio.sleep(opts.prune_every_s)
    finally:
        # a prune under way finishes its commit (never cut in half) before the store closes
        await asyncio.to_thread(io.close)


async def count_backlog(runner: Runner) -> None:
    """Count the pending and running runs per recipe now and then, off the event loop
    (what ``/healthz`` shows as ``backlog``)."""
    while True:
        await asyncio.sleep(runner.options.backlog_every_s)
        try:
            runner.backlog = await runner.exec_io(runner.store.unfinished_counts)
        except StoreError as exc:
            log.debug("could not count the backlog: %s", exc)


async def watch_loop_lag(runner: Runner) -> None:
    """With ``AUTOMATIONS_DEBUG_LOOP_LAG`` set, log how late this loop answers
    (``looplag.py``): the longest stall of each interval."""
    every = report_interval(runner.env)
    if every is not None:
        await LoopLag().report(every)


async def hold_frozen(runner: Runner) -> None:
    """While the runner runs, what it loaded at start-up (the recipes, the modules) is kept out of
    the cyclic garbage collector's reach (``gc.freeze``): a full collection stops every thread of
    the process, this event loop included, for as long as it walks the objects it tracks, and
    10,000 compiled recipes are 300,000 of them: 160-440 ms each time (one came every few tens of
    seconds while runs executed), 5 ms once frozen. A recipe holds no cycle, so one a reload
    replaces is still freed (by reference counting); loading leaves no cyclic garbage, and
    whatever else was frozen is collected as usual once the runner stops (``gc.unfreeze``: the
    process may go on, as tests and an embedding program do)."""
    gc.freeze()
    try:
        await runner.stopping.wait()
    finally:
        gc.unfreeze()
