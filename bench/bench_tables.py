"""Table triggers in the real runner: appends at any size, a trickle, a large first look, stalls.

    python bench/bench_tables.py [--only append|trickle|first|stall] [--rounds 5]
                                 [--sizes 10000,100000,1000000] [--first-rows 1000000]
                                 [--baseline DIR] [--timeout 600]

Everything listens on 127.0.0.1 and every wait is bounded (``--timeout``). Each runner is
``automations run --dry-run`` (a subprocess) on its own SQLite file: runs are recorded and rendered,
nothing is sent. ``--baseline DIR`` measures another checkout of the package too (its runner
imports ``automations`` from DIR), alternating with this one round by round: same-run
comparisons on a shared machine.

1. ``append``: a CSV of each ``--sizes`` rows (existing rows skipped); once the first look is
   done, ``--rounds`` single rows are appended one at a time. Figure: from the write to the run's
   ``created_at`` in the store (median). Goal: the largest size within 1.5x of the smallest.
2. ``trickle``: 10 rows/s for 10 s into the largest file. Figure: the runner's CPU (user + system
   over wall time, from ``/proc``), next to the same 10 s with no writes.
3. ``first``: a first look at ``--first-rows`` rows with ``existing_rows: run`` and ``skip``.
   Figures: seconds until HTTP answers ``/healthz``, until every row is recorded (``run``: all
   runs in the store; ``skip``: the position at the end), the peak RSS (``VmHWM``) then, and
   the runner loop's longest lag meanwhile. Goals: peak under 300 MB, lag under 100 ms.
4. ``stall``: ``/healthz`` and a webhook, one after the other without pause, 3 s before and then
   during a 20,000-row append (held by the flood brake). Figures: max and p99 latency of each,
   and the runner loop's longest lag during the append. Goal: max under 100 ms.

The runner loop's lag is what the runner logs with ``AUTOMATIONS_DEBUG_LOOP_LAG=1`` (the longest
lateness of a 5 ms sleep on its own event loop, each second: ``runner/looplag.py``); a baseline
checkout without it shows ``nan``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from processes import process, wait_ready

HOST = "127.0.0.1"

TABLE = """
name: feed
trigger:
  table: {{path: data/feed.csv, key: Email, existing_rows: {existing}}}
actions:
  - http.request: {{method: POST, url: "http://127.0.0.1:9/feed", json: {{email: /Email}}}}
"""
HOOK = """
name: hook
trigger:
  webhook: {path: /hooks/x, verify: {scheme: none}}
actions:
  - http.request: {method: POST, url: "http://127.0.0.1:9/hook", json: {id: /id}}
"""
HEADER = "Email,Name\n"
_LAG = re.compile(r"event loop lag: max ([0-9.]+) ms")


def rows(n: int, start: int = 0) -> str:
    return "".join(f"p{i:07d}@example.com,Name {i}\n" for i in range(start, start + n))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def vm(pid: int, field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []


def position_line(db: Path) -> int:
    """The table's committed position (the line after the last row read), 0 before any."""
    found = query(db, "SELECT value FROM state WHERE scope LIKE 'table:feed:%' AND key = 'meta'")
    if not found:
        return 0
    meta = json.loads(found[0][0])
    return int(meta["line"]) if not meta.get("mode") else 0


def run_count(db: Path, recipe: str = "feed") -> int:
    found = query(db, "SELECT count(*) FROM runs WHERE recipe = ?", (recipe,))
    return int(found[0][0]) if found else 0


def wait_for(check: Callable[[], bool], what: str, timeout: float, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


class Bench:
    def __init__(self, folder: Path, opts: argparse.Namespace) -> None:
        self.folder = folder
        self.opts = opts
        self.made = 0
        self.log = folder / "runner.log"

    @contextmanager
    def runner(
        self, version: str | None, recipes: dict[str, str], table: str
    ) -> Iterator[tuple[str, Any, Path, Path, float]]:
        """A runner of ``version`` (``None``: this checkout; else a directory put first on its
        ``PYTHONPATH``); yields its URL, process, database, table file and the seconds it took
        to answer ``/healthz``. Its log is ``self.log``."""
        self.made += 1
        where = self.folder / f"r{self.made}"
        (where / "recipes" / "data").mkdir(parents=True)
        for name, text in recipes.items():
            (where / "recipes" / name).write_text(text.lstrip(), "utf-8")
        path = where / "recipes" / "data" / "feed.csv"
        path.write_text(table, "utf-8")
        # the runner logs its own event loop's longest lag every second (``runner/looplag.py``)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "AUTOMATIONS_DEBUG_LOOP_LAG": "1"}
        if version is not None:
            env["PYTHONPATH"] = version + os.pathsep + env.get("PYTHONPATH", "")
        port = free_port()
        db = where / "runs.db"
        args = [sys.executable, "-m", "automations", "run", str(where / "recipes")]
        args += ["--db", str(db), "--port", str(port), "--dry-run"]
        log = self.log = where / "runner.log"
        began = time.monotonic()
        with process(args, env, log, stop_s=30) as proc:
            url = f"http://{HOST}:{port}"
            wait_ready(url, proc, log, self.opts.timeout)
            yield url, proc, db, path, time.monotonic() - began

    def append_latency(self, version: str | None, size: int) -> dict[str, float]:
        table = TABLE.format(existing="skip")
        with self.runner(version, {"feed.yaml": table}, HEADER + rows(size)) as (
            _,
            proc,
            db,
            path,
            _,
        ):
            wait_for(lambda: position_line(db) == size + 2, "the first look", self.opts.timeout)
            time.sleep(0.5)
            latencies = []
            for index in range(self.opts.rounds):
                before = run_count(db)
                written = time.time()
                append(path, rows(1, size + index))
                wait_for(lambda b=before: run_count(db) > b, "the appended row", 60, 0.005)
                created = query(db, "SELECT max(created_at) FROM runs")[0][0]
                latencies.append(float(created) - written)
                time.sleep(0.3)
            result = {"append_s": statistics.median(latencies)}
            if size == max(self.opts.sizes):
                result.update(self.trickle(proc.pid, path, size + self.opts.rounds, db))
            return result

    def trickle(self, pid: int, path: Path, start: int, db: Path) -> dict[str, float]:
        time.sleep(1.0)
        idle_cpu, idle_wall = cpu_s(pid), time.monotonic()
        time.sleep(10.0)
        idle = (cpu_s(pid) - idle_cpu) / (time.monotonic() - idle_wall)
        before = run_count(db)
        began_cpu, began = cpu_s(pid), time.monotonic()
        for index in range(100):  # 10 rows/s for 10 s
            append(path, rows(1, start + index))
            time.sleep(max(0.0, began + (index + 1) * 0.1 - time.monotonic()))
        wait_for(lambda: run_count(db) >= before + 100, "the trickle's rows", 60)
        busy = (cpu_s(pid) - began_cpu) / (time.monotonic() - began)
        return {"trickle_cpu": busy, "idle_cpu": idle}

    def first_look(self, version: str | None, existing: str) -> dict[str, float]:
        n = self.opts.first_rows
        table = TABLE.format(existing=existing)
        with self.runner(version, {"feed.yaml": table}, HEADER + rows(n)) as (
            _,
            proc,
            db,
            _,
            listening,
        ):
            began = time.monotonic() - listening
            if existing == "run":
                wait_for(lambda: run_count(db) >= n, "every row's run", self.opts.timeout, 0.5)
            else:
                wait_for(lambda: position_line(db) == n + 2, "the look", self.opts.timeout, 0.5)
            done = time.monotonic() - began
            return {
                "listening_s": listening,
                "done_s": done,
                "peak_mb": vm(proc.pid, "VmHWM"),
                "lag_ms": loop_lag_ms(self.log),
            }

    def stall(self, version: str | None) -> dict[str, float]:
        table = TABLE.format(existing="skip")
        recipes = {"feed.yaml": table, "hook.yaml": HOOK}
        with self.runner(version, recipes, HEADER) as (url, _, db, path, _):
            wait_for(lambda: position_line(db) == 2, "the first look", 60)
            stop = threading.Event()
            seen: dict[str, list[float]] = {"healthz": [], "webhook": []}

            def probe() -> None:
                with httpx.Client(timeout=60) as client:
                    index = 0
                    while not stop.is_set():
                        started = time.perf_counter()
                        client.get(url + "/healthz")
                        seen["healthz"].append(time.perf_counter() - started)
                        started = time.perf_counter()
                        client.post(url + "/hooks/x", json={"id": index})
                        seen["webhook"].append(time.perf_counter() - started)
                        index += 1

            thread = threading.Thread(target=probe, daemon=True)
            thread.start()
            time.sleep(3.0)
            quiet = {k: list(v) for k, v in seen.items()}
            for values in seen.values():
                values.clear()
            since = log_lines(self.log)
            append(path, rows(20_000))
            wait_for(lambda: run_count(db) >= 20_000, "the 20,000 held runs", self.opts.timeout)
            time.sleep(0.5)
            stop.set()
            thread.join(60)
            time.sleep(1.1)  # the lag of the last second is logged
            result = {"lag_ms": loop_lag_ms(self.log, since)}
            for kind, values in seen.items():
                result[f"{kind}_max_ms"] = max(values) * 1000
                result[f"{kind}_p99_ms"] = percentile(values, 99) * 1000
                result[f"{kind}_quiet_max_ms"] = max(quiet[kind]) * 1000
            return result


def log_lines(log: Path) -> int:
    return len(log.read_text("utf-8", "replace").splitlines())


def loop_lag_ms(log: Path, since: int = 0) -> float:
    """The runner loop's longest lag logged after line ``since`` (NaN: a checkout that does not
    measure it)."""
    lines = log.read_text("utf-8", "replace").splitlines()[since:]
    lags = [float(m.group(1)) for line in lines if (m := _LAG.search(line))]
    return max(lags) if lags else float("nan")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def label(version: str | None) -> str:
    return "this checkout" if version is None else f"baseline {version}"


def orchestrate(opts: argparse.Namespace) -> int:
    versions: list[str | None] = [None] + ([opts.baseline] if opts.baseline else [])
    print(f"tables on {HOST}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), opts)
        if opts.only in (None, "append", "trickle"):
            for size in opts.sizes:
                for version in versions:
                    got = bench.append_latency(version, size)
                    ms = got["append_s"] * 1000
                    line = f"  one appended row, {size:,} rows: median {ms:.0f} ms"
                    if "trickle_cpu" in got:
                        line += (
                            f"; 10 rows/s trickle: {got['trickle_cpu'] * 100:.1f}% of a core "
                            f"(idle {got['idle_cpu'] * 100:.1f}%)"
                        )
                    print(f"{line}  [{label(version)}]", flush=True)
        if opts.only in (None, "first"):
            for existing in ("run", "skip"):
                for version in versions:
                    got = bench.first_look(version, existing)
                    print(
                        f"  first look, {opts.first_rows:,} rows, existing_rows: {existing}: "
                        f"HTTP after {got['listening_s']:.1f} s, all recorded after "
                        f"{got['done_s']:.1f} s, peak RSS {got['peak_mb']:.0f} MB, runner loop "
                        f"lag max {got['lag_ms']:.0f} ms "
                        f"[{label(version)}]",
                        flush=True,
                    )
        if opts.only in (None, "stall"):
            for version in versions:
                got = bench.stall(version)
                print(
                    "  20,000-row append: /healthz max {healthz_max_ms:.0f} ms p99 "
                    "{healthz_p99_ms:.0f} ms (quiet max {healthz_quiet_max_ms:.0f}); webhook max "
                    "{webhook_max_ms:.0f} ms p99 {webhook_p99_ms:.0f} ms (quiet max "
                    "{webhook_quiet_max_ms:.0f}); runner loop lag max {lag_ms:.0f} ms".format(**got)
                    + f"  [{label(version)}]",
                    flush=True,
                )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["append", "trickle", "first", "stall"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--first-rows", type=int, default=1_000_000)
    parser.add_argument("--baseline", help="another checkout to compare with (its directory)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per wait at most")
    opts = parser.parse_args()
    opts.rounds = min(max(1, opts.rounds), 20)
    opts.sizes = [min(max(1, int(s)), 1_000_000) for s in opts.sizes.split(",")]
    opts.first_rows = min(max(1, opts.first_rows), 1_000_000)
    opts.timeout = min(max(5.0, opts.timeout), 1800.0)
    return orchestrate(opts)


if __name__ == "__main__":
    sys.exit(main())
