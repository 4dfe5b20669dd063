"""Engine CPU per run: a webhook's run sending 2 requests (a Quo contact, a Loops update).

    python bench/bench_outbound.py [--runs 2000] [--rounds 5] [--concurrency 8] [--lease]
                                   [--profile]

In this process: a SQLite store in a temporary folder, the runner's ``Connections`` (httpx,
over ``Http11Transport``) and ``Executor`` with its store thread, against a loopback fake Quo +
Loops (a subprocess of ``bench_webhooks.py`` that answers at once; rate limits set very high).
Each round records ``--runs`` webhook runs and executes them, ``--concurrency`` at a time, as
the dispatcher would; the figure is this process's CPU time (every thread) per run, median of
``--rounds`` rounds after a warm-up round. Every run must end ``succeeded`` with its 2 steps.
Goal: <= 1.5 ms (about 650 runs/s per core). ``--lease``: each run is first claimed under a lease
(``claim_run``, on the store thread) and executed under it, as the runner's service does: one
commit more per run, and every write fenced by the lease. ``--profile``: one round under
cProfile, the top functions printed (cProfile sees the event loop's thread only, not the store
thread's SQLite work).

On the 2-core machine of issue 12 (alternating, medians): 3.2 ms per run when httpx's own
transport (httpcore on anyio) carried the requests, 1.0 ms with ``connections/http11.py`` (1.1 ms
with ``--lease``). Of
that, about 0.6 ms is the event loop's thread (the executor, ``Connections``, the transport and
the kernel's loopback TCP) and 0.4 ms the store thread (four SQLite commits per run: the claim,
the Quo step's ``sending`` mark, its outcome before the Loops request, the last outcome with
the run's status).

To compare with another version of the package, run this script with ``PYTHONPATH`` pointing at
that checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench_webhooks import HOST, RECIPE, SECRET, free_port
from processes import process, wait_ready

from automations.connections import Connections, ConnectionSettings
from automations.execution.executor import Executor, new_run
from automations.recipes.compiler import load_recipe_text
from automations.records import RunStatus, TriggerKind
from automations.stores import SQLiteStore
from automations.stores.thread import StoreThread


def event(i: int) -> dict[str, str]:
    return {
        "email": f"user{i}@example.com",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "phone": f"+1555{i % 10_000_000:07d}",
        "plan": "pro",
    }


async def one_round(
    executor: Executor,
    store: SQLiteStore,
    recipe: object,
    runs: int,
    concurrency: int,
    lease: bool = False,
) -> float:
    tag = uuid.uuid4().hex[:8]
    records = [
        new_run("signup", TriggerKind.WEBHOOK, f"msg_{tag}_{i}", event(i)) for i in range(runs)
    ]
    store.enqueue_many(records)
    pending = iter(records)

    async def worker() -> None:
        for run in pending:
            held = None
            if lease:
                claim = functools.partial(store.claim_run, run.id, "bench", ttl_s=60.0)
                claimed = await executor.io(claim)
                assert claimed is not None
                held = claimed.lease
            final = await executor.execute(run, recipe, lease=held)  # type: ignore[arg-type]
            if final.status is not RunStatus.SUCCEEDED or len(final.steps) != 2:
                raise SystemExit(f"run {final.id} ended {final.status}: {final.error}")

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.process_time() - started


async def bench(opts: argparse.Namespace, fake_url: str, folder: Path) -> list[float]:
    env = {
        "SIGNUP_SECRET": SECRET,
        "QUO_API_KEY": "quo-bench-key-0123456789",
        "LOOPS_API_KEY": "loops-bench-key-0123456789",
        "QUO_BASE_URL": fake_url,
        "LOOPS_BASE_URL": fake_url,
        "QUO_RATE_LIMIT": "100000",
        "LOOPS_RATE_LIMIT": "100000",
        "AUTOMATIONS_RATE_GUARD_MS": "0",
    }
    loaded = load_recipe_text(RECIPE, "signup.yaml", base_dir=folder, env=env, with_tests=False)
    assert loaded.recipe is not None, loaded.diagnostics
    store = SQLiteStore(folder / "runs.db")
    io = StoreThread("store-exec")
    cpu: list[float] = []
    try:
        async with Connections(ConnectionSettings.from_env(env)) as conns:
            executor = Executor(store, conns, env, io=io, defer_refused=True)
            warm = max(100, opts.runs // 10)
            await one_round(executor, store, loaded.recipe, warm, 8, opts.lease)
            for _ in range(opts.rounds):
                used = await one_round(
                    executor, store, loaded.recipe, opts.runs, opts.concurrency, opts.lease
                )
                cpu.append(used / opts.runs)
            if opts.profile:
                profile = cProfile.Profile()
                profile.enable()
                await one_round(
                    executor, store, loaded.recipe, opts.runs, opts.concurrency, opts.lease
                )
                profile.disable()
                stats = pstats.Stats(profile).sort_stats("tottime")
                stats.print_stats(35)
    finally:
        await asyncio.to_thread(io.close)
        store.close()
    return cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--lease", action="store_true")
    parser.add_argument("--profile", action="store_true")
    opts = parser.parse_args()
    opts.runs = min(max(100, opts.runs), 50_000)
    opts.rounds = min(max(1, opts.rounds), 20)
    under = ", under a lease" if opts.lease else ""
    python = sys.version.split()[0]
    print(f"engine CPU per run (2 sends{under}), python {python}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = free_port()
        fake_url = f"http://{HOST}:{port}"
        script = Path(__file__).resolve().with_name("bench_webhooks.py")
        args = [sys.executable, str(script), "--role", "fake", "--port", str(port)]
        log = folder / "fake.log"
        with process(args, dict(os.environ), log) as fake:
            wait_ready(fake_url, fake, log, 30.0)
            try:
                import uvloop

                loop_factory = uvloop.new_event_loop
            except ImportError:  # pragma: no cover - not on Windows
                loop_factory = None
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                cpu = runner.run(bench(opts, fake_url, folder))
    ms = [1000 * c for c in cpu]
    median = statistics.median(ms)
    print(
        f"  {opts.rounds} rounds x {opts.runs:,} runs, {opts.concurrency} at a time: "
        f"{median:.3f} ms CPU per run ({', '.join(f'{m:.3f}' for m in ms)}) "
        f"= {1000 / median:,.0f} runs/s per core"
    )
    ok = median <= 1.5
    print(f"  goal (<= 1.5 ms): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
