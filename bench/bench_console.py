"""The console at a million runs, and what keeping it open costs the webhook intake.

    python bench/bench_console.py [--db PATH] [--rounds 6] [--duration 5] [--connections 16]

Needs ``wrk`` (Debian package ``wrk``). Everything listens on 127.0.0.1; every load is bounded.
Runs ``automations run`` as a subprocess (as in production) over a copy of ``bench/million.py``'s
database (1,000,000 runs; built once, about 30 s, and copied per bench run so the original stays
as built), with the console on its own port, and one recipe of its own (a webhook whose runs
are skipped: the intake nearly alone; the million runs' recipes are not loaded, so their backlog
waits and executes nothing while the pages are timed). Then:

1. **Pages**: the median of ``--gets`` GETs of each: the runs page (first page), a filtered page
   (one recipe's failed runs), a key search (an e-mail address), a run page (a failed run with
   its step), ``/metrics``. Goals: pages under 100 ms, ``/metrics`` under 50 ms.
2. **Intake with the console open**: wrk floods the webhook port for ``--duration`` s per round;
   in the ``open`` rounds a browser-like client (``--role browser``, a process of its own) keeps
   the runs page open meanwhile: its live stream (``/events``, server-sent events, read as it
   comes) and a load of ``/runs`` at the start and every 10 s. Rounds alternate (closed, open,
   closed, open...) on the same runner; printed are the medians of the 2xx answers per second
   and their ratio, and of the runner's CPU time per webhook (it moves less than rates when
   other processes share the machine; the intake is CPU-bound, so its ratio bounds the
   throughput's). Goal: open >= 0.95x closed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_webhooks import cpu_seconds, free_port
from million import RUNS, ensure, sample_key
from processes import process, wait_ready

HOST = "127.0.0.1"
HOOK = "/hooks/intake"
LUA = Path(__file__).resolve().with_name("console_intake.lua")
RECIPE = f"""
name: intake
trigger:
  webhook:
    path: {HOOK}
    verify: {{scheme: none}}
    event_id: id
only_run_if: "plan == 'never'"
actions:
  - http.request: {{method: POST, url: "http://127.0.0.1:9/never"}}
"""
STARTUP_S = 120.0
#: How often the browser-like client loads the runs page again (a person clicking around).
RELOAD_S = 10.0


def median_ms(times: list[float]) -> float:
    return round(statistics.median(times) * 1000, 1)


def pages(ui: str, db: Path, gets: int) -> dict[str, float]:
    conn = sqlite3.connect(db)
    try:
        (failed,) = conn.execute(
            "SELECT id FROM runs WHERE status = 'failed' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        (recipe,) = conn.execute("SELECT recipe FROM runs WHERE id = ?", (failed,)).fetchone()
    finally:
        conn.close()
    targets = {
        "runs page (first page)": "/runs",
        f"filtered page ({recipe}, failed)": f"/runs?recipe={recipe}&status=failed",
        "key search (an e-mail)": f"/runs?key={sample_key(123_457)}",
        "run page (a failed run)": f"/runs/{failed}",
        "/metrics": "/metrics",
    }
    out = {}
    with httpx.Client(base_url=ui, timeout=60) as client:
        for name, path in targets.items():
            times = []
            for i in range(gets + 2):
                started = time.perf_counter()
                answer = client.get(path)
                elapsed = time.perf_counter() - started
                if answer.status_code != 200:
                    raise SystemExit(f"{path}: {answer.status_code} {answer.text[:300]}")
                if i >= 2:  # the first two warm the caches
                    times.append(elapsed)
            out[name] = median_ms(times)
    return out


def wrk(url: str, tag: str, seconds: float, connections: int) -> tuple[float, int]:
    """2xx answers per second of one flood, and how many."""
    args = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "10s"]
    args += ["-s", str(LUA), url + HOOK, "--", tag]
    done = subprocess.run(args, capture_output=True, timeout=seconds + 60, check=False)
    out = done.stdout.decode()
    statuses: dict[str, int] = {}
    duration = seconds
    for line in out.splitlines():
        if line.startswith("STATUSES "):
            statuses = json.loads(line[9:])
        elif line.startswith("SECONDS "):
            duration = float(line[8:])
    if not statuses:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{out[-2000:]}\n{done.stderr.decode()}")
    bad = {k: v for k, v in statuses.items() if not k.startswith("2")}
    if bad:
        raise SystemExit(f"the intake refused requests: {bad}")
    return sum(statuses.values()) / duration, sum(statuses.values())


def browser(ui: str, seconds: float) -> None:
    """``--role browser``: the runs page kept open for ``seconds``, as a browser keeps it: its
    event stream read as it comes, the page loaded again every ``RELOAD_S``."""

    async def stream(client: httpx.AsyncClient, counts: dict[str, int]) -> None:
        async with client.stream("GET", "/events") as answer:
            async for line in answer.aiter_lines():
                if line.startswith("event: run"):
                    counts["events"] += 1

    async def reload(client: httpx.AsyncClient, counts: dict[str, int]) -> None:
        while True:
            answer = await client.get("/runs")
            answer.raise_for_status()
            counts["pages"] += 1
            await asyncio.sleep(RELOAD_S)

    async def main() -> dict[str, int]:
        counts = {"events": 0, "pages": 0}
        timeout = httpx.Timeout(30.0, read=None)
        async with httpx.AsyncClient(base_url=ui, timeout=timeout) as client:
            tasks = [asyncio.create_task(f(client, counts)) for f in (stream, reload)]
            done, _ = await asyncio.wait(tasks, timeout=seconds)
            for task in tasks:
                task.cancel()
            for task in done:
                task.result()  # a failure of the page is a failure of the bench
        return counts

    print(json.dumps(asyncio.run(main())), flush=True)


def intake(
    url: str, ui: str, runner: subprocess.Popen[bytes], opts: argparse.Namespace
) -> dict[str, dict[str, list[float]]]:
    """Per mode (console closed, open): the 2xx per second of each round, and the runner's CPU
    per webhook (microseconds), which hardly moves when other processes share the machine."""
    out: dict[str, dict[str, list[float]]] = {
        m: {"rate": [], "cpu_us": []} for m in ("closed", "open")
    }
    wrk(url, "warm", 1.0, opts.connections)
    for r in range(opts.rounds):
        mode = ("closed", "open")[r % 2]
        tag = f"r{r}-{time.time_ns()}"
        page = None
        if mode == "open":
            args = [sys.executable, str(Path(__file__).resolve()), "--role", "browser"]
            args += ["--ui", ui, "--seconds", str(opts.duration + 3)]
            page = subprocess.Popen(args, stdout=subprocess.PIPE)
            time.sleep(1.0)  # the page is open and streaming before the flood
        cpu = cpu_seconds(runner)
        rate, answered = wrk(url, tag, opts.duration, opts.connections)
        used = cpu_seconds(runner) - cpu
        out[mode]["rate"].append(rate)
        out[mode]["cpu_us"].append(used / answered * 1e6)
        if page is not None:
            seen, _ = page.communicate(timeout=opts.duration + 60)
            if page.returncode != 0:
                raise SystemExit("the browser-like client failed")
            print(f"  round {r} (open): the page saw {seen.decode().strip()}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="the million-run database (built if missing)")
    parser.add_argument("--gets", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--role", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--ui", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.role == "browser":
        browser(opts.ui, opts.seconds)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk (apt-get install wrk)")
    base = Path(tempfile.gettempdir()) / "automations-bench"
    base.mkdir(exist_ok=True)
    source = ensure(opts.db or base / "million.db")
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        folder = Path(tmp)
        db = folder / "runs.db"
        shutil.copyfile(source, db)
        (folder / "recipes").mkdir()
        (folder / "recipes" / "intake.yaml").write_text(RECIPE, "utf-8")
        port, ui_port = free_port(), free_port()
        url, ui = f"http://{HOST}:{port}", f"http://{HOST}:{ui_port}"
        args = [sys.executable, "-m", "automations", "run", str(folder / "recipes")]
        args += ["--db", str(db), "--port", str(port), "--ui-port", str(ui_port)]
        args += ["--keep-succeeded", "3650", "--keep-failed", "3650"]  # the bench's 90 days stay
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOMATIONS_")}
        log = folder / "runner.log"
        with process(args, env, log) as proc:
            wait_ready(url, proc, log, STARTUP_S)
            timed = pages(ui, db, opts.gets)
            rounds = intake(url, ui, proc, opts)
        print(f"{RUNS:,} runs in the database; medians of {opts.gets} GETs each")
        for name, ms in timed.items():
            goal = 50 if name == "/metrics" else 100
            print(f"  {name:<44} {ms:7.1f} ms  (goal < {goal} ms)")
        closed, opened = (statistics.median(rounds[m]["rate"]) for m in ("closed", "open"))
        cpu_closed, cpu_open = (statistics.median(rounds[m]["cpu_us"]) for m in ("closed", "open"))
        print(
            f"intake, {opts.rounds} alternating rounds of {opts.duration:g} s: console closed "
            f"{closed:,.0f}/s, open {opened:,.0f}/s: {opened / closed:.3f}x (goal >= 0.95x)"
        )
        print(
            f"  runner CPU per webhook: closed {cpu_closed:.0f} us, open {cpu_open:.0f} us: "
            f"intake at most {cpu_closed / cpu_open:.3f}x when CPU-bound"
        )
        print(
            "  rounds: "
            + json.dumps(
                {m: {k: [round(x) for x in v] for k, v in d.items()} for m, d in rounds.items()}
            )
        )


if __name__ == "__main__":
    main()
