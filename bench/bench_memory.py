"""Resident memory of a long-running runner: does it grow with the number of runs?

    python bench/bench_memory.py [--runs 100000] [--send]

Runs the runner in this process (``Runner`` with its dispatcher, executor and a SQLite file
store in a temporary folder) on one two-step recipe (``quo.create_contact`` then
``loops.update_contact``) and feeds it ``--runs`` webhook-shaped runs through ``accept_many``,
in batches of ``BATCH`` (as a busy table source would), waiting for each batch to finish before
the next (so the queue never holds more than one batch). By default the runs are dry runs
(rendered and audited, nothing sent); ``--send`` sends them to an in-process
``httpx.MockTransport`` that answers at once (rate limits raised to 10,000/s).

Prints the resident set size (``VmRSS`` from /proc/self/status) after the first 1,000 runs and
after all of them, and the growth between the two; the goal is at most 50 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_overhead import ENV, RECIPE, event, instant_vendors  # the sibling bench

from automations.connections import Connections, ConnectionSettings
from automations.execution.executor import new_run
from automations.records import RunStatus, TriggerKind
from automations.runner.logs import configure_logging
from automations.runner.service import Runner, RunnerOptions
from automations.stores import open_store

BATCH = 200
FIRST = 1_000
GOAL_MB = 50.0


def rss_mb() -> float:
    """This process's resident set size in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status (not Linux?)")


async def feed(runner: Runner, first: int, count: int, deadline: float) -> int:
    """Runs ``first`` .. ``first + count - 1``, ``BATCH`` at a time, each batch executed before
    the next is accepted; stops early at ``deadline`` (``time.monotonic()``). Returns how many
    were fed."""
    end = first
    for start in range(first, first + count, BATCH):
        if time.monotonic() > deadline:
            break
        end = min(start + BATCH, first + count)
        runner.accept_many(
            [
                (new_run("signup", TriggerKind.WEBHOOK, f"msg_{i}", event(i)), None)
                for i in range(start, end)
            ]
        )
        await runner.dispatcher.wait_idle()
    return end - first


async def main_async(runs: int, send: bool, max_seconds: float) -> int:
    env = {**ENV, "QUO_RATE_LIMIT": "10000", "LOOPS_RATE_LIMIT": "10000"}
    wanted = runs
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "recipes").mkdir()
        (folder / "recipes" / "signup.yaml").write_text(RECIPE, "utf-8")
        store = open_store(folder / "runs.db")
        transport = httpx.MockTransport(instant_vendors) if send else None
        settings = ConnectionSettings.from_env(env)
        async with Connections(settings, transport=transport) as conns:
            runner = Runner(folder / "recipes", store, conns, env, RunnerOptions(dry_run=not send))
            await runner.start()
            started = time.perf_counter()
            deadline = time.monotonic() + max_seconds
            first = await feed(runner, 0, min(FIRST, runs), deadline)
            gc.collect()
            early = rss_mb()
            runs = first + await feed(runner, first, runs - first, deadline)
            gc.collect()
            late = rss_mb()
            seconds = time.perf_counter() - started
            await runner.stop()
        done = store.count(RunStatus.SUCCEEDED)
        db_mb = sum(p.stat().st_size for p in folder.glob("runs.db*")) / 1e6
        store.close()
    mode = "sent to MockTransport" if send else "dry run"
    print(f"memory, {runs:,} runs ({mode}), SQLite file store, python {sys.version.split()[0]}")
    if runs < wanted:
        print(f"  (stopped after {max_seconds:g} s, {wanted - runs:,} runs short of {wanted:,})")
    print(
        f"  {done:,} runs succeeded in {seconds:.1f} s ({runs / seconds:,.0f} runs/s); "
        f"database {db_mb:.0f} MB"
    )
    print(f"  VmRSS after {first:,} runs: {early:7.1f} MB")
    print(f"  VmRSS after {runs:,} runs: {late:7.1f} MB")
    growth = late - early
    print(f"  growth: {growth:+.1f} MB ({1e6 * growth / max(runs - first, 1):.0f} bytes per run)")
    ok = growth <= GOAL_MB and done == runs == wanted
    print(f"goal (growth <= {GOAL_MB:g} MB, every run finished): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs (default 100,000)")
    parser.add_argument("--send", action="store_true", help="send to MockTransport")
    parser.add_argument(
        "--max-seconds", type=float, default=100.0, help="stop feeding after this (default 100)"
    )
    args = parser.parse_args()
    # the runner's one line per run, formatted and written as usual, to /dev/null
    configure_logging("text")
    logging.getLogger("automations").handlers[0].setStream(open(os.devnull, "w"))  # noqa: SIM115
    os.environ.pop("AUTOMATIONS_QUO_VIA", None)
    runs = min(max(1, args.runs), 1_000_000)
    return asyncio.run(main_async(runs, args.send, min(max(1.0, args.max_seconds), 600.0)))


if __name__ == "__main__":
    sys.exit(main())
