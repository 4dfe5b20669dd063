"""Pacing benchmark: a burst of queued SMS sends against the fake Quo, both window styles.

    python bench/bench_pacing.py [--seconds 60] [--guard-ms 10] [--jitter-ms 0] [--loopback]
    python bench/bench_pacing.py --processes 3 --db postgresql://... [--seconds 10] [--rounds 3]

Queues ``seconds * 10`` sends at once (600 for the default 60 s) through one ``Connections``
per window style ("fixed": Quo's clock-aligned one-second windows; "sliding": any one-second
span), both styles at the same time in one event loop, and reports per style:

- delivered rate as % of the 10/s limit (steady state: accepted requests over the time between
  the first and last arrival), the goal being >= 98 %;
- 429s the fake answered (goal: 0) and the most requests it saw in any sliding second;
- the median and 99th-percentile gap between arrivals.

``--jitter-ms J`` delays every request by a random 0..J ms between the limiter's release and the
fake's count (MockTransport mode), to show what the limiter's ``guard`` is for: with a guard
below the jitter, sliding windows start to see 11 requests.

``--processes N --db URL``: N processes (each a ``Connections`` paced through the PostgreSQL
store at URL, the shared rate limit of several nodes) send SMS with one key as fast as their
pacing lets them for ``--seconds``, each with 20 callers queued, against one fake Quo on
loopback (sliding windows) in this process. Per round: the rate the fake accepted as % of
10/s, the most requests it saw in any sliding second, its 429s; then the medians of the rounds.
This is the limiter alone; the multi-node bench of real runners is bench_multinode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fakes

from automations.actions import ACTIONS
from automations.connections import Connections, ConnectionSettings
from automations.retry import RetryPolicy
from tests.fakes import serve_on_loopback
from tests.fakes.quo import QuoFake

LIMIT = 10


def jittered(fake: QuoFake, jitter_s: float, rng: random.Random) -> httpx.MockTransport:
    async def handler(request: httpx.Request) -> httpx.Response:
        if jitter_s:
            await asyncio.sleep(rng.uniform(0.0, jitter_s))
        return fake.handler(request)

    return httpx.MockTransport(handler)


async def burst(window: str, args: argparse.Namespace) -> dict[str, Any]:
    fake = QuoFake(window=window)  # type: ignore[arg-type]
    count = max(1, math.ceil(args.seconds * LIMIT))
    reqs = [
        ACTIONS["quo.send_sms"].build(
            {"to": [f"+1555{i:07d}"], "from": "PN1", "content": f"Message {i}"},
            run_id=f"bench-{window}",
            step_index=i,
            phone_region="US",
        )
        for i in range(count)
    ]
    env = {"QUO_API_KEY": "quo-test-key", "AUTOMATIONS_RATE_GUARD_MS": str(args.guard_ms)}
    policy = RetryPolicy()
    started = time.perf_counter()
    if args.loopback:
        async with serve_on_loopback(fake) as base_url:
            env["QUO_BASE_URL"] = base_url
            async with Connections(ConnectionSettings.from_env(env)) as connections:
                results = await asyncio.gather(*(connections.send(r, policy) for r in reqs))
    else:
        transport = jittered(fake, args.jitter_ms / 1000.0, random.Random(window))
        async with Connections(ConnectionSettings.from_env(env), transport=transport) as conns:
            results = await asyncio.gather(*(conns.send(r, policy) for r in reqs))
    wall = time.perf_counter() - started
    accepted = sorted(r.at for r in fake.received if r.outcome == 202)
    span = accepted[-1] - accepted[0] if len(accepted) > 1 else float("nan")
    gaps = [b - a for a, b in itertools.pairwise(accepted)]
    # The tightest span of LIMIT + 1 consecutive arrivals: above 1 s means no window saw 11.
    spans = [b - a for a, b in zip(accepted, accepted[LIMIT:], strict=False)]
    rate = (len(accepted) - 1) / span if span and span == span else float("nan")
    return {
        "window": window,
        "sends": count,
        "delivered": sum(1 for r in results if r.status == 202),
        "rate_pct": 100.0 * rate / LIMIT,
        "429s": fake.outcomes[429],
        "max_per_second": fake.max_in_window(),
        "gap_median_ms": 1000.0 * statistics.median(gaps) if gaps else float("nan"),
        "gap_p99_ms": 1000.0 * sorted(gaps)[int(0.99 * (len(gaps) - 1))] if gaps else float("nan"),
        "tightest_ms": 1000.0 * min(spans) if spans else float("nan"),
        "retried": sum(r.attempts - 1 for r in results),
        "wall_s": wall,
    }


async def node(args: argparse.Namespace) -> None:
    """One process of ``--processes``: send until ``--end`` (``time.monotonic``), then stop."""
    from automations.connections import pacing_for
    from automations.stores.postgres import PostgresStore

    store = PostgresStore(args.db)
    env = {"QUO_API_KEY": "quo-test-key", "AUTOMATIONS_RATE_GUARD_MS": str(args.guard_ms)}
    env["QUO_BASE_URL"] = args.base_url
    policy = RetryPolicy(max_total=0.0, max_attempts=1)
    count = itertools.count()

    async def caller(conns: Connections) -> None:
        while time.monotonic() < args.end:
            i = next(count)
            req = ACTIONS["quo.send_sms"].build(
                {"to": [f"+1555{i % 10_000_000:07d}"], "from": "PN1", "content": f"m{i}"},
                run_id=f"bench-{args.node}",
                step_index=i,
                phone_region="US",
            )
            with contextlib.suppress(Exception):  # a 429 counts at the fake; keep sending
                await conns.send(req, policy)

    try:
        settings = ConnectionSettings.from_env(env)
        async with Connections(settings, pacing=pacing_for(store)) as conns:
            await asyncio.sleep(max(0.0, args.start - time.monotonic()))
            tasks = [asyncio.ensure_future(caller(conns)) for _ in range(20)]
            await asyncio.sleep(max(0.0, args.end - time.monotonic()))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        store.close()


async def nodes_round(args: argparse.Namespace) -> dict[str, Any]:
    """One round of ``--processes``: a fresh key (a fresh fake key and schema row)."""
    import subprocess

    import psycopg

    fake = QuoFake(window="sliding")
    with psycopg.connect(args.db, autocommit=True) as conn:
        conn.execute("DELETE FROM rate_limits")
    async with serve_on_loopback(fake) as base_url:
        start = time.monotonic() + 3.0  # every process is up by then
        end = start + args.seconds
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--node",
                    str(n),
                    "--db",
                    args.db,
                    "--base-url",
                    base_url,
                    "--start",
                    str(start),
                    "--end",
                    str(end),
                    "--guard-ms",
                    str(args.guard_ms),
                ]
            )
            for n in range(args.processes)
        ]
        for proc in procs:
            await asyncio.to_thread(proc.wait, args.seconds + 60)
    accepted = sorted(r.at for r in fake.received if r.outcome == 202)
    span = accepted[-1] - accepted[0] if len(accepted) > 1 else float("nan")
    return {
        "accepted": len(accepted),
        "rate_pct": 100.0 * (len(accepted) - 1) / span / LIMIT if span == span else float("nan"),
        "max_per_second": fake.max_in_window(),
        "429s": fake.outcomes[429],
    }


def main_nodes(args: argparse.Namespace) -> int:
    print(
        f"shared pacing: {args.processes} processes on one key, {args.seconds:g} s per round, "
        f"{args.rounds} rounds, guard {args.guard_ms:g} ms, loopback fake (sliding windows)"
    )
    rows = []
    for n in range(args.rounds):
        row = asyncio.run(nodes_round(args))
        rows.append(row)
        print(
            f"round {n + 1}: {row['accepted']} accepted, {row['rate_pct']:.1f} % of 10/s, "
            f"max {row['max_per_second']} in a sliding second, {row['429s']} x 429"
        )
    rate = statistics.median(r["rate_pct"] for r in rows)
    most = max(r["max_per_second"] for r in rows)
    print(
        f"median {rate:.1f} % of 10/s; max {most} in any sliding second over all rounds; "
        f"{sum(r['429s'] for r in rows)} x 429"
    )
    ok = rate >= 95.0 and most <= LIMIT
    print(
        "goal (>= 95 % of 10/s, never more than 10 in a sliding second):",
        "met" if ok else "NOT met",
    )
    return 0 if ok else 1


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    return list(await asyncio.gather(burst("fixed", args), burst("sliding", args)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="burst length (default 60)")
    parser.add_argument("--guard-ms", type=float, default=10.0, help="limiter guard (default 10)")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="random delay per request")
    parser.add_argument("--loopback", action="store_true", help="real HTTP on 127.0.0.1")
    parser.add_argument("--processes", type=int, default=0, help="shared pacing: N processes")
    parser.add_argument("--db", help="the PostgreSQL URL the processes pace through")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --processes")
    parser.add_argument("--node", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--end", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.node is not None:
        asyncio.run(node(args))
        return 0
    if args.processes:
        if not args.db:
            parser.error("--processes needs --db postgresql://...")
        if args.seconds == 60.0:
            args.seconds = 10.0
        return main_nodes(args)
    mode = "loopback" if args.loopback else f"MockTransport, jitter 0..{args.jitter_ms:g} ms"
    print(f"pacing: {args.seconds:g} s burst per window style, guard {args.guard_ms:g} ms, {mode}")
    rows = asyncio.run(main_async(args))
    print(
        f"{'window':8} {'sends':>6} {'ok':>6} {'rate % of 10/s':>15} {'429s':>5} "
        f"{'max/1s':>6} {'gap med ms':>10} {'gap p99 ms':>10} {'11-span ms':>10} "
        f"{'retries':>7} {'wall s':>7}"
    )
    for r in rows:
        print(
            f"{r['window']:8} {r['sends']:6d} {r['delivered']:6d} {r['rate_pct']:15.2f} "
            f"{r['429s']:5d} {r['max_per_second']:6d} {r['gap_median_ms']:10.2f} "
            f"{r['gap_p99_ms']:10.2f} {r['tightest_ms']:10.1f} {r['retried']:7d} "
            f"{r['wall_s']:7.1f}"
        )
    ok = all(r["429s"] == 0 and r["rate_pct"] >= 98.0 for r in rows)
    print("goal (0 x 429, >= 98 % of the limit):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
