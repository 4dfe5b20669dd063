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
   very high: accepted (the run's ``created_at``, written by the node that recorded it) ->
   first outbound request at the fake (same machine clock), p50 and p99, on 1 node and on 3.
4. takeover: 3 nodes with a slow provider so that runs are in flight on each; one node is
   SIGKILLed; the time until the first of its runs continues on another node (its lease
   rescued and claimed again), with the default lease settings and with the tests' settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
import bench_webhooks as hooks

from tests.nemesis.cluster import PostgresServer, bindir

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


def runner(folder: Path, db: str, port: int, *extra: str, node: str | None = None) -> list[str]:
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
                process(runner(folder, db, ports[name], "--dry-run"), env, logs[name], stop_s=30.0)
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


# -- 2. pacing across nodes -----------------------------------------------------------------------


@contextmanager
def fake_vendors(folder: Path, env: dict[str, str]) -> Iterator[str]:
    """``bench_webhooks``' loopback Quo and Loops (answering at once, recording arrivals)."""
    port = hooks.free_port()
    url = f"http://{HOST}:{port}"
    log = folder / "fake.log"
    args = [sys.executable, hooks.__file__, "--role", "fake", "--port", str(port)]
    with process(args, env, log) as proc:
        wait_ready(url, proc, log, STARTUP_S)
        yield url


def vendor_env(env: dict[str, str], fake_url: str, **extra: str) -> dict[str, str]:
    return {
        **env,
        "QUO_API_KEY": "quo-bench-key-0123456789",
        "LOOPS_API_KEY": "loops-bench-key-0123456789",
        "QUO_BASE_URL": fake_url,
        "LOOPS_BASE_URL": fake_url,
        **extra,
    }


@contextmanager
def nodes(
    folder: Path, server: PostgresServer, env: dict[str, str], n: int, tag: str
) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    """``n`` runners on ``server``, started together: (base URL, process) each."""
    with ExitStack() as stack:
        started = []
        for i in range(n):
            port = hooks.free_port()
            log = folder / f"{tag}-node{i + 1}.log"
            proc = stack.enter_context(
                process(runner(folder, server.url, port, node=None), env, log, stop_s=30.0)
            )
            started.append((f"http://{HOST}:{port}", proc, log))
        for url, proc, log in started:
            wait_ready(url, proc, log, STARTUP_S)
        yield [(url, proc) for url, proc, _ in started]


def reset(server: PostgresServer) -> None:
    """An empty history between parts (the schema stays)."""
    with contextlib.suppress(Exception):  # not created yet
        server.execute("TRUNCATE runs, steps, state, audit RESTART IDENTITY CASCADE")
    with contextlib.suppress(Exception):  # a version without a shared rate limit
        server.execute("TRUNCATE rate_limits")


def arrivals(fake_url: str) -> list[tuple[str, int, float]]:
    return [tuple(a) for a in httpx.get(fake_url + "/arrivals", timeout=10).json()]


def wait_arrivals(fake_url: str, n: int, timeout: float) -> list[tuple[str, int, float]]:
    deadline = time.monotonic() + timeout
    got = arrivals(fake_url)
    while len(got) < n and time.monotonic() < deadline:
        time.sleep(0.5)
        got = arrivals(fake_url)
    return got


def max_in_window(times: list[float], per: float = 1.0) -> int:
    ordered, best, start = sorted(times), 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - per:
            start += 1
        best = max(best, end - start + 1)
    return best


def pacing(folder: Path, server: PostgresServer, env: dict[str, str], opts: Any) -> None:
    count = 300
    reset(server)
    with fake_vendors(folder, env) as fake_url:
        live = vendor_env(env, fake_url)
        with nodes(folder, server, live, 3, "pacing") as started:
            per_node = count // len(started)
            loads = []
            for i, (url, _) in enumerate(started):
                load = [sys.executable, hooks.__file__, "--role", "flood", "--url", url]
                load += ["--tag", f"pace{i}", "--count", str(per_node), "--concurrency", "4"]
                # distinct webhook ids and bodies per node: the tag, and an index offset below
                loads.append(subprocess.Popen(load, env=env, stdout=subprocess.DEVNULL))
            for proc in loads:
                proc.wait(120)
            got = wait_arrivals(fake_url, 2 * count, timeout=count / 10 * 1.5 + 20)
    print(f"pacing, 3 nodes on one Quo key and one Loops key, {count} webhooks spread evenly:")
    for kind in ("quo", "loops"):
        times = sorted(at for k, _, at in got if k == kind)
        if len(times) < 2:
            print(f"  {kind}: {len(times)} requests arrived")
            continue
        rate = (len(times) - 1) / (times[-1] - times[0])
        print(
            f"  {kind:5}: {len(times)} requests in {times[-1] - times[0]:.1f} s = {rate:.2f}/s "
            f"({rate * 10:.1f}% of 10/s); most in any sliding second: {max_in_window(times)}"
        )


# -- 3. latency ----------------------------------------------------------------------------------


async def steady_over(urls: list[str], tag: str, rate: float, seconds: float) -> dict[str, Any]:
    """``bench_webhooks.steady`` spread over several nodes (round robin, as a balancer)."""
    count = int(rate * seconds)
    requests = [hooks.signed(tag, i) for i in range(count)]
    events: list[tuple[int, float, float, int]] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        for i in range(hooks.WARM_BASE, hooks.WARM_BASE + hooks.WARMUP_EVENTS):
            body, headers = hooks.signed(tag, i)
            await client.post(urls[i % len(urls)] + hooks.HOOK, content=body, headers=headers)
            await asyncio.sleep(1 / rate)
        await asyncio.sleep(1.0)

        async def one(i: int) -> None:
            body, headers = requests[i]
            sent = time.time()
            response = await client.post(
                urls[i % len(urls)] + hooks.HOOK, content=body, headers=headers
            )
            events.append((i, sent, time.time(), response.status_code))

        start = time.perf_counter()
        tasks = []
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return {"events": events}


def latency(folder: Path, server: PostgresServer, env: dict[str, str], opts: Any) -> None:
    print(
        f"latency, webhooks at {opts.rate:g}/s for {opts.seconds:g} s spread over the nodes, "
        "run recorded (accepted) -> first outbound request (provider limits set very high):"
    )
    for n in (1, 3):
        reset(server)
        with fake_vendors(folder, env) as fake_url:
            live = vendor_env(
                env,
                fake_url,
                QUO_RATE_LIMIT="100000",
                LOOPS_RATE_LIMIT="100000",
                AUTOMATIONS_RATE_GUARD_MS="0",
            )
            with nodes(folder, server, live, n, f"latency{n}") as started:
                load = [sys.executable, __file__, "--role", "steady", "--tag", f"lat{n}"]
                load += ["--rate", str(opts.rate), "--seconds", str(opts.seconds)]
                load += [arg for url, _ in started for arg in ("--url", url)]
                events = hooks.run_load(load, env)["events"]
                count = int(opts.rate * opts.seconds)
                got = wait_arrivals(fake_url, 2 * (count + hooks.WARMUP_EVENTS), timeout=60)
                # accepted = when the node recorded the run (its created_at, same clock)
                prefix = f"msg_lat{n}_"
                created = {
                    int(str(key).removeprefix(prefix)): float(at)  # type: ignore[arg-type]
                    for key, at in server.execute(
                        "SELECT event_key, created_at FROM runs WHERE event_key LIKE %s",
                        (prefix + "%",),
                    )
                }
        first: dict[int, float] = {}
        for _, i, at in got:
            if i < hooks.WARM_BASE:
                first[i] = min(at, first.get(i, at))
        delays = [(first[i] - at) * 1000 for i, at in created.items() if i in first]
        answers = [(done - sent) * 1000 for _, sent, done, status in events if status == 202]
        if not delays:
            print(f"  {n} node(s): nothing arrived")
            continue
        print(
            f"  {n} node(s): p50 {hooks.percentile(delays, 0.5):6.2f} ms   "
            f"p99 {hooks.percentile(delays, 0.99):6.2f} ms   ({len(delays)} of {count} events "
            f"reached the fake; webhook sent -> 202 p50 {hooks.percentile(answers, 0.5):.1f} "
            f"ms, p99 {hooks.percentile(answers, 0.99):.1f} ms)"
        )


# -- 4. takeover ---------------------------------------------------------------------------------


def owner_of(server: PostgresServer, pid: int) -> str | None:
    rows = server.execute(
        "SELECT DISTINCT lease_owner FROM runs WHERE lease_owner LIKE %s", (f"%:{pid}:%",)
    )
    return str(rows[0][0]) if rows else None


def takeover_once(
    folder: Path, server: PostgresServer, env: dict[str, str], label: str, lease: dict[str, str]
) -> tuple[float, float, int] | None:
    """Seconds from the SIGKILL until the first, and the last, of the dead node's runs was
    claimed by another node; how many it held."""
    reset(server)
    with fake_vendors(folder, env) as fake_url:
        # one request a second keeps the runs the node claimed waiting in it; as many runs as
        # it claims at once (--concurrency 8), so that the other node is idle when it dies
        live = vendor_env(env, fake_url, QUO_RATE_LIMIT="1", LOOPS_RATE_LIMIT="1", **lease)
        with nodes(folder, server, live, 2, f"takeover-{label}") as started:
            (victim_url, victim), _ = started
            load = [sys.executable, hooks.__file__, "--role", "flood", "--url", victim_url]
            load += ["--tag", f"take{label}", "--count", "8", "--concurrency", "4"]
            hooks.run_load(load, env)
            time.sleep(0.5)
            owner = owner_of(server, victim.pid)
            if owner is None:
                print(f"  {label}: the node held no run")
                return None
            held = {
                str(r[0])
                for r in server.execute(
                    "SELECT id FROM runs WHERE status = 'running' AND lease_owner = %s", (owner,)
                )
            }
            victim.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            victim.wait()
            first = last = None
            deadline = killed + 120
            while time.monotonic() < deadline:
                moved = {
                    str(r[0])
                    for r in server.execute(
                        "SELECT id FROM runs WHERE id = ANY(%s) AND lease_owner IS DISTINCT "
                        "FROM %s AND (status <> 'pending' OR lease_owner IS NOT NULL)",
                        (list(held), owner),
                    )
                }
                now = time.monotonic()
                if moved and first is None:
                    first = now - killed
                if moved >= held:
                    last = now - killed
                    break
                time.sleep(0.05)
    if first is None or last is None:
        print(f"  {label}: the dead node's runs did not move in 120 s")
        return None
    return first, last, len(held)


def takeover(folder: Path, server: PostgresServer, env: dict[str, str], opts: Any) -> None:
    print(
        "takeover after a SIGKILL, 2 nodes (seconds until the dead node's runs are claimed "
        "by the other; each trial):"
    )
    settings = {
        "default": {},
        "test": {
            "AUTOMATIONS_LEASE_TTL": "2",
            "AUTOMATIONS_LEASE_HEARTBEAT": "0.5",
            "AUTOMATIONS_LEASE_RESCUE_EVERY": "0.5",
            "AUTOMATIONS_LEASE_GRACE": "0.5",
        },
    }
    for label, lease in settings.items():
        trials = [
            t
            for t in (
                takeover_once(folder, server, env, label, lease)
                for _ in range(opts.takeovers if label == "test" else 1)
            )
            if t is not None
        ]
        if not trials:
            continue
        firsts = [t[0] for t in trials]
        lasts = [t[1] for t in trials]
        each = ", ".join(f"{a:.1f}/{b:.1f} ({n} runs)" for a, b, n in trials)
        print(
            f"  {label:7} settings: first {statistics.median(firsts):5.1f} s, all "
            f"{statistics.median(lasts):5.1f} s (median; first/all: {each})"
        )


# -- orchestration -------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["intake", "pacing", "latency", "takeover"])
    parser.add_argument("--rounds", type=int, default=3, help="intake: timed rounds per store")
    parser.add_argument("--count", type=int, default=4000, help="intake: webhooks per round")
    parser.add_argument("--rate", type=float, default=100.0, help="latency: webhooks/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency: how long")
    parser.add_argument("--takeovers", type=int, default=3, help="takeover trials (test settings)")
    parser.add_argument("--role", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--url", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.role == "steady":
        with asyncio.Runner(loop_factory=hooks.use_uvloop()) as loop:
            result = loop.run(steady_over(opts.url, opts.tag, opts.rate, opts.seconds))
        print(json.dumps(result))
        return 0
    opts.count = min(max(100, opts.count), 50_000)
    opts.rounds = min(max(1, opts.rounds), 10)
    opts.rate = min(max(1.0, opts.rate), 500.0)
    opts.seconds = min(max(1.0, opts.seconds), 60.0)
    opts.takeovers = min(max(1, opts.takeovers), 10)
    env = {**os.environ, "SIGNUP_SECRET": hooks.SECRET, "PYTHONUNBUFFERED": "1"}
    for name in ("AUTOMATIONS_DB", "QUO_API_KEY", "LOOPS_API_KEY", "MATON_API_KEY"):
        env.pop(name, None)
    print(f"several runners on {HOST}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "recipes").mkdir()
        (folder / "recipes" / "signup.yaml").write_text(hooks.RECIPE, "utf-8")
        with durable_server(folder) as server:
            for part in (intake, pacing, latency, takeover):
                if opts.only in (None, part.__name__):
                    part(folder, server, env, opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
