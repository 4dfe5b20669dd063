"""``GET /metrics`` at a million runs: the exposition built from the store (the backlog, held
and unknown runs) and the runner's counters, timed directly and over HTTP.

Uses the database of ``bench/million.py`` (1,000,000 runs: 20,000 pending, 200 held, ~1,000
unknown; built once, about 30 s), opened as the runner opens it, with the counters of a runner
that has seen every label combination (eight recipes, three connections, every status), then:

- ``exposition``: ``generate_latest`` of the runner's registry (what the handler builds on its
  worker thread);
- ``GET /metrics``: the handler served by uvicorn in a process of its own, scraped over
  loopback with the Bearer token, as Prometheus scrapes it.

Run: ``python bench/bench_metrics.py [--db PATH]``. Prints medians of 50 scrapes each; the goal is
under 50 ms.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn
from million import RECIPES, RUNS, ensure  # the sibling module
from processes import process, wait_ready
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from automations.metrics import RunnerMetrics, StoreCollector, metrics_endpoint
from automations.records import RunStatus
from automations.stores import SQLiteStore

SCRAPES = 50
TOKEN = "bench-console-token"
ACTIONS = {r: ["quo.send_sms" if i % 2 else "loops.send_event"] for i, r in enumerate(RECIPES)}


def busy_metrics(store: SQLiteStore) -> RunnerMetrics:
    """A runner's metrics after a long day: every recipe, status and connection seen."""
    metrics = RunnerMetrics()
    metrics.registry.register(StoreCollector(store, lambda: ACTIONS))
    for recipe in RECIPES:
        for status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED):
            metrics.runs.labels(recipe, status.value).inc(1000)
        metrics.run_seconds.labels(recipe).observe(0.4)
    for connection in ("quo", "loops", "http"):
        for status in (200, 202, 400, 429, 503):
            metrics.answered(connection, status)
        metrics.retrying(connection, "429")
        metrics.waited(connection, 0.1)
    return metrics


def median_ms(times: list[float]) -> float:
    return round(statistics.median(times) * 1000, 2)


def serve(db: Path, port: int) -> None:
    """The child process: ``/metrics`` over ``db`` as the console serves it (and ``/healthz``)."""
    store = SQLiteStore(db)
    metrics = busy_metrics(store)
    handler = metrics_endpoint(metrics.registry, token=TOKEN)

    async def healthz(request: Request) -> Response:
        return Response("ok")

    app = Starlette(
        routes=[Route("/metrics", handler, methods=["GET"]), Route("/healthz", healthz)]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


def over_http(db: Path, folder: Path) -> list[float]:
    """Scrapes of a server in its own process (as Prometheus scrapes a runner)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [sys.executable, str(Path(__file__).resolve()), "--serve", str(db), "--port", str(port)]
    log = folder / "bench_metrics.log"
    url = f"http://127.0.0.1:{port}"
    with process(args, dict(os.environ), log) as proc:
        wait_ready(url, proc, log, 60.0)
        times = []
        with httpx.Client(base_url=url) as client:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            for _ in range(SCRAPES + 3):
                started = time.perf_counter()
                answer = client.get("/metrics", headers=headers)
                times.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
        return times[3:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="the million-run database (built if missing)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.serve:
        serve(opts.serve, opts.port)
        return
    folder = Path(tempfile.gettempdir()) / "automations-bench"
    folder.mkdir(exist_ok=True)
    db = ensure(opts.db or folder / "million.db")
    store = SQLiteStore(db)
    try:
        metrics = busy_metrics(store)
        text = generate_latest(metrics.registry).decode()
        direct = []
        for _ in range(SCRAPES + 3):
            started = time.perf_counter()
            generate_latest(metrics.registry)
            direct.append(time.perf_counter() - started)
    finally:
        store.close()
    http = over_http(db, folder)
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    print(f"{RUNS:,} runs, {len(lines)} samples, {len(text):,} bytes per scrape")
    print(f"exposition     median {median_ms(direct[3:]):7.2f} ms  (goal < 50 ms)")
    print(f"GET /metrics   median {median_ms(http):7.2f} ms  (goal < 50 ms)")


if __name__ == "__main__":
    main()
