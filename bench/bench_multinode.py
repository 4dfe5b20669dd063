"""Several runners on one PostgreSQL: intake, pacing across nodes, latency, takeover.

    python bench/bench_multinode.py [--only intake|pacing|latency|takeover] [--rounds 3]

A private PostgreSQL server is started for the bench in a temporary folder (Unix socket only,
as ``tests/nemesis/cluster`` does), **durable**: ``fsync``, ``full_page_writes`` and
``synchronous_commit`` on, as in production. Every runner, fake and load generator listens on
127.0.0.1; every load is bounded in count and time (a few minutes in all). Figures are medians;
nothing is asserted.

1. intake: one node on PostgreSQL against one on SQLite (both ``--dry-run``), in alternating
   rounds of ``--count`` signed webhooks (``bench_webhooks``' raw keep-alive client, 16 in
   flight): webhooks per second answered 202, and the ratio PostgreSQL / SQLite. Every 202 must
   be a stored run.
2. pacing: 3 nodes share one Quo key and one Loops key (10 requests/s each, the default guard);
   300 webhooks spread over the nodes, each run one Quo and one Loops request. Delivered rate
   at the fake as a % of 10/s, and the most requests of one key in any sliding second.
3. latency: webhooks at ``--rate`` per second (spread over the nodes), provider limits set
   very high: 202 received -> first outbound request, p50 and p99, on 1 node and on 3.
4. takeover: 3 nodes with a slow provider so that runs are in flight on each; one node is
   SIGKILLed; the time until the first of its runs continues on another node (its lease
   rescued and claimed again), with the default lease settings and with the tests' settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from processes import process, wait_ready

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.*
import bench_webhooks as hooks  # noqa: E402

from tests.nemesis.cluster import PostgresServer, bindir  # noqa: E402

HOST = hooks.HOST
STARTUP_S = 60.0
#: The lease settings of the multi-node acceptance test (``tests/acceptance/test_multinode``).
TEST_LEASE_ARGS = ("--lease", "2")


# -- set-up --------------------------------------------------------------------------------------


@contextmanager
def durable_server(folder: Path) -> Iterator[PostgresServer]:
    binaries = bindir()
    if binaries is None:
        raise SystemExit("PostgreSQL is not installed (no initdb): apt-get install postgresql")
    directory = Path(tempfile.mkdtemp(prefix="automations-bench-pg."))
    if os.geteuid() == 0:
        import shutil

        shutil.chown(directory, "postgres")
    server = PostgresServer(binaries, directory, durable=True)
    try:
        server.init()
        server.start()
        (setting,) = server.execute("SHOW synchronous_commit")[0]
        (fsync,) = server.execute("SHOW fsync")[0]
        print(f"PostgreSQL on {directory}: fsync={fsync}, synchronous_commit={setting}")
        yield server
    finally:
        try:
            server.stop("fast")
        finally:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)


def runner(
    folder: Path, db: str, port: int, *extra: str, node: str | None = None
) -> list[str]:
    args = [sys.executable, "-m", "automations", "run", str(folder / "recipes")]
    args += ["--db", db, "--port", str(port), *extra]
    return args + (["--node-id", node] if node else [])


def pg_count(server: PostgresServer, *, unfinished: bool = False) -> int:
    where = " WHERE status IN ('pending', 'running')" if unfinished else ""
    try:
        return int(server.execute(f"SELECT count(*) FROM runs{where}")[0][0])  # type: ignore[call-overload]
    except Exception:  # the schema is not there yet
        return 0


def wait_pg(server: PostgresServer, accepted: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pg_count(server) >= accepted and not pg_count(server, unfinished=True):
            return
        time.sleep(0.1)


def flood(url: str, tag: str, count: int, env: dict[str, str]) -> tuple[int, float]:
    load = [sys.executable, hooks.__file__, "--role", "flood", "--url", url, "--tag", tag]
    load += ["--count", str(count), "--concurrency", "16", "--client", "raw"]
    result = hooks.run_load(load, env)
    return int(result["statuses"].get("202", 0)), float(result["seconds"])


# -- 1. intake -----------------------------------------------------------------------------------


def intake(folder: Path, server: PostgresServer, env: dict[str, str], opts: Any) -> None:
    sqlite_db = folder / "intake.db"
    ports = {"postgres": hooks.free_port(), "sqlite": hooks.free_port()}
    urls = {name: f"http://{HOST}:{port}" for name, port in ports.items()}
    logs = {name: folder / f"intake-{name}.log" for name in ports}
    rates: dict[str, list[float]] = {"postgres": [], "sqlite": []}
    accepted = {"postgres": 0, "sqlite": 0}
    with ExitStack() as stack:
        procs = {
            name: stack.enter_context(
                process(
                    runner(folder, db, ports[name], "--dry-run"), env, logs[name], stop_s=30.0
                )
            )
            for name, db in (("postgres", server.url), ("sqlite", str(sqlite_db)))
        }
        for name, proc in procs.items():
            wait_ready(urls[name], proc, logs[name], STARTUP_S)
        for r in range(opts.rounds + 1):  # round 0 warms both up and is not counted
            count = opts.count if r else max(500, opts.count // 10)
            order = ("postgres", "sqlite") if r % 2 else ("sqlite", "postgres")
            for name in order:
                # the runs of the round before finish first: only intake is timed
                if name == "postgres":
                    wait_pg(server, accepted[name])
                else:
                    hooks.wait_finished(sqlite_db, accepted[name])
                ok, seconds = flood(urls[name], f"{name}{r}", count, env)
                accepted[name] += ok
                if ok != count:
                    print(f"  {name} round {r}: {ok} of {count} answered 202")
                if r:
                    rates[name].append(ok / seconds)
        wait_pg(server, accepted["postgres"])
        hooks.wait_finished(sqlite_db, accepted["sqlite"])
        stored = {"postgres": pg_count(server), "sqlite": hooks.count_runs(sqlite_db)}
    print(
        f"intake, {opts.rounds} alternating rounds x {opts.count:,} signed webhooks, 16 in "
        "flight, one node each, --dry-run (median; each round):"
    )
    for name in ("postgres", "sqlite"):
        each = ", ".join(f"{x:,.0f}" for x in rates[name])
        print(f"  {name:8} {statistics.median(rates[name]):7,.0f}/s  ({each})")
    ratio = statistics.median(rates["postgres"]) / statistics.median(rates["sqlite"])
    print(f"  ratio postgres / sqlite: {ratio:.2f}")
    for name in ("postgres", "sqlite"):
        same = "all stored" if stored[name] == accepted[name] else "MISMATCH"
        print(f"  {name}: {stored[name]:,} runs for {accepted[name]:,} answered 202 ({same})")


# -- orchestration -------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["intake", "pacing", "latency", "takeover"])
    parser.add_argument("--rounds", type=int, default=3, help="intake: timed rounds per store")
    parser.add_argument("--count", type=int, default=4000, help="intake: webhooks per round")
    parser.add_argument("--rate", type=float, default=100.0, help="latency: webhooks/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency: how long")
    opts = parser.parse_args()
    opts.count = min(max(100, opts.count), 50_000)
    opts.rounds = min(max(1, opts.rounds), 10)
    opts.rate = min(max(1.0, opts.rate), 500.0)
    opts.seconds = min(max(1.0, opts.seconds), 60.0)
    env = {**os.environ, "SIGNUP_SECRET": hooks.SECRET, "PYTHONUNBUFFERED": "1"}
    for name in ("AUTOMATIONS_DB", "QUO_API_KEY", "LOOPS_API_KEY", "MATON_API_KEY"):
        env.pop(name, None)
    print(f"several runners on {HOST}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "recipes").mkdir()
        (folder / "recipes" / "signup.yaml").write_text(hooks.RECIPE, "utf-8")
        with durable_server(folder) as server:
            if opts.only in (None, "intake"):
                intake(folder, server, env, opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
