"""Head-of-line blocking and backlog memory of the real runner.

    python bench/bench_dispatch.py [--rounds 5] [--only sms|turns|memory] [--rows 100000]
                                   [--timeout 60]

Everything listens on 127.0.0.1; each round is bounded (``--timeout``) and stops by itself.
A fake Quo + Loops (a subprocess of this script) answers at once and records when each request
arrived; the runner (``automations run``, a subprocess) paces them at the providers' 10/s, so a
backlog really waits for its rate limit.

1. ``sms``: 500 Loops rows queued (a table with ``existing_rows: run``); once the backlog is
   sending, a webhook whose recipe sends a Quo SMS is posted. Figure: its 202 -> the SMS's
   arrival at the fake. Goal: within 1 s (median of ``--rounds`` rounds, a fresh runner each).
2. ``turns``: one recipe's 2,000-row backlog on Loops; a webhook of another recipe that sends
   one Loops event. Figure: its 202 -> that event's arrival. Goal: within 2 s.
3. ``memory``: a table recipe sending Loops events; 100,000 rows (``--rows``) appended in one
   write. Figure: the runner's resident memory (``VmRSS``) before, once every row is recorded as
   a run, and its peak (``VmHWM``); the slowest ``/healthz`` answer meanwhile.

To compare with another version of the package, run this script with ``PYTHONPATH`` pointing
at that checkout: the runner subprocess imports ``automations`` from there.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
from processes import process, wait_ready

HOST = "127.0.0.1"
STARTUP_S = 120.0

LOOPS_TABLE = """
name: {name}
trigger:
  table: {{path: data/{name}.csv, key: Email, existing_rows: {existing}}}
actions:
  - loops.send_event: {{email: /Email, eventName: {name}}}
"""
SMS_HOOK = """
name: sms-hook
trigger:
  webhook: {path: /hooks/sms, verify: {scheme: none}}
actions:
  - quo.send_sms: {from: "+15555550199", to: [/phone], content: "Your code is {/code}"}
"""
LOOPS_HOOK = """
name: single
trigger:
  webhook: {path: /hooks/single, verify: {scheme: none}}
actions:
  - loops.send_event: {email: /email, eventName: single}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# -- the fake vendors (a subprocess) ------------------------------------------------------------


def vendor_app() -> Any:
    """Quo's /v1/messages and Loops' /v1/events/send, answering at once; ``/arrivals`` lists
    ``(what, time.time())`` per request (``what``: "sms" or the Loops event name)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    arrivals: list[tuple[str, float]] = []

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def arrived(request: Request) -> Response:
        return JSONResponse(
            {"count": len(arrivals), "named": [a for a in arrivals if a[0] in ("sms", "single")]}
        )

    async def messages(request: Request) -> Response:
        arrivals.append(("sms", time.time()))
        await request.body()
        return JSONResponse({"data": {"id": "AC1", "status": "queued"}}, status_code=202)

    async def events(request: Request) -> Response:
        at = time.time()
        body = json.loads(await request.body())
        arrivals.append((str(body.get("eventName")), at))
        return JSONResponse({"success": True})

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/arrivals", arrived),
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/events/send", events, methods=["POST"]),
        ]
    )


def serve_vendor(port: int) -> None:
    import uvicorn

    uvicorn.run(vendor_app(), host=HOST, port=port, log_level="warning", access_log=False)


# -- orchestration ------------------------------------------------------------------------------


def arrivals(vendor: str) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(vendor + "/arrivals", timeout=10).json()
    return result


def rows(n: int, start: int = 0) -> str:
    return "".join(f"p{i}@example.com\n" for i in range(start, start + n))


def status(pid: int, field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def count_runs(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


class Bench:
    def __init__(self, folder: Path, opts: argparse.Namespace) -> None:
        self.folder = folder
        self.opts = opts
        self.vendor_port = free_port()
        self.vendor = f"http://{HOST}:{self.vendor_port}"
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "QUO_API_KEY": "quo-bench-key-0123456789",
            "LOOPS_API_KEY": "loops-bench-key-0123456789",
            "QUO_BASE_URL": self.vendor,
            "LOOPS_BASE_URL": self.vendor,
        }

    @contextmanager
    def runner(self, name: str, recipes: dict[str, str], data: dict[str, str]) -> Iterator[Any]:
        where = self.folder / name
        (where / "recipes" / "data").mkdir(parents=True)
        for file, text in recipes.items():
            (where / "recipes" / file).write_text(text.lstrip(), "utf-8")
        for file, text in data.items():
            (where / "recipes" / "data" / file).write_text(text, "utf-8")
        port = free_port()
        args = [sys.executable, "-m", "automations", "run", str(where / "recipes")]
        args += ["--db", str(where / "runs.db"), "--port", str(port)]
        log = where / "runner.log"
        with process(args, self.env, log, stop_s=20) as proc:
            url = f"http://{HOST}:{port}"
            wait_ready(url, proc, log, STARTUP_S)
            yield url, proc, where

    def head_of_line(self, name: str, backlog: int, recipes: dict[str, str], post: str) -> float:
        """Seconds from the 202 of a webhook to the arrival of its request, with ``backlog``
        Loops rows of another recipe queued and sending."""
        table = LOOPS_TABLE.format(name="bulk", existing="run")
        with self.runner(
            name, {"bulk.yaml": table, **recipes}, {"bulk.csv": "Email\n" + rows(backlog)}
        ) as (url, _, _):
            before = arrivals(self.vendor)["count"]
            deadline = time.monotonic() + self.opts.timeout
            while arrivals(self.vendor)["count"] < before + 3:  # the backlog is sending
                if time.monotonic() > deadline:
                    raise SystemExit("the backlog did not start sending")
                time.sleep(0.05)
            seen = len(arrivals(self.vendor)["named"])
            body = {"phone": "+15555550100", "code": "1", "email": "single@example.com"}
            answer = httpx.post(url + post, json=body, timeout=30)
            accepted = time.time()
            assert answer.status_code == 202, answer.text
            while True:
                named = arrivals(self.vendor)["named"]
                if len(named) > seen:
                    return float(named[seen][1]) - accepted
                if time.time() - accepted > self.opts.timeout:
                    return float("inf")
                time.sleep(0.01)

    def sms(self) -> list[float]:
        return [
            self.head_of_line(f"sms-{i}", 500, {"sms-hook.yaml": SMS_HOOK}, "/hooks/sms")
            for i in range(self.opts.rounds)
        ]

    def turns(self) -> list[float]:
        return [
            self.head_of_line(f"turns-{i}", 2000, {"single.yaml": LOOPS_HOOK}, "/hooks/single")
            for i in range(self.opts.rounds)
        ]

    def memory(self) -> dict[str, float]:
        table = LOOPS_TABLE.format(name="feed", existing="skip")
        with self.runner("memory", {"feed.yaml": table}, {"feed.csv": "Email\n"}) as (
            url,
            proc,
            where,
        ):
            time.sleep(1.0)
            before = status(proc.pid, "VmRSS")
            with (where / "recipes" / "data" / "feed.csv").open("a") as f:
                f.write(rows(self.opts.rows))
            slowest = 0.0
            deadline = time.monotonic() + max(self.opts.timeout, 300)
            while count_runs(where / "runs.db") < self.opts.rows:
                if time.monotonic() > deadline:
                    raise SystemExit("the rows were not all recorded in time")
                started = time.monotonic()
                with suppress(httpx.HTTPError):
                    httpx.get(url + "/healthz", timeout=60)
                slowest = max(slowest, time.monotonic() - started)
                time.sleep(0.1)
            time.sleep(2.0)  # the dispatcher reads its first pages
            return {
                "before": before,
                "after": status(proc.pid, "VmRSS"),
                "peak": status(proc.pid, "VmHWM"),
                "healthz_max_s": slowest,
            }


def report(label: str, values: list[float], goal: float) -> None:
    shown = ", ".join("timeout" if v == float("inf") else f"{v:.3f}" for v in values)
    median = statistics.median(values)
    verdict = "met" if median <= goal else "NOT met"
    print(f"  {label}: median {median:.3f} s  ({shown})  goal <= {goal:g} s: {verdict}")


def orchestrate(opts: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), opts)
        vendor_log = Path(tmp) / "vendor.log"
        args = [sys.executable, str(Path(__file__).resolve()), "--role", "vendor"]
        with process(
            [*args, "--port", str(bench.vendor_port)], bench.env, vendor_log, stop_s=20
        ) as v:
            wait_ready(bench.vendor, v, vendor_log, STARTUP_S)
            print(f"dispatch on {HOST}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
            if opts.only in (None, "sms"):
                report("500 Loops rows queued: webhook 202 -> its SMS", bench.sms(), 1.0)
            if opts.only in (None, "turns"):
                report("2,000-row Loops backlog: another recipe's event", bench.turns(), 2.0)
            if opts.only in (None, "memory"):
                m = bench.memory()
                print(
                    f"  {opts.rows:,} rows appended: RSS {m['before']:.0f} MB before, "
                    f"{m['after']:.0f} MB once all are recorded (peak {m['peak']:.0f} MB); "
                    f"slowest /healthz meanwhile {m['healthz_max_s']:.2f} s"
                )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=["sms", "turns", "memory"])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per round at most")
    parser.add_argument("--role", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    opts.rounds = min(max(1, opts.rounds), 20)
    opts.rows = min(max(1, opts.rows), 1_000_000)
    opts.timeout = min(max(5.0, opts.timeout), 600.0)
    if opts.role == "vendor":
        serve_vendor(opts.port)
        return 0
    return orchestrate(opts)


if __name__ == "__main__":
    sys.exit(main())
