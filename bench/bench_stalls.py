"""No stall: the webhook port answers while the runner does its heaviest background work.

    python bench/bench_stalls.py [--only first,append,resume,prune] [--rows 1000000]
                                 [--pending 1000000] [--old 1000000] [--probe-s 20]
                                 [--timeout 900]

Each scenario starts ``automations run --dry-run`` (a subprocess on 127.0.0.1, its own SQLite
file) with a webhook recipe beside the work, and probes it from another thread: ``GET
/healthz`` then a webhook, one after the other without pause, for as long as the work goes on
(bounded by ``--probe-s`` where the work is longer). Figures: probes answered, max and p99
latency of each kind, the work's own figure, and the peak RSS (``VmHWM``) of the runner and of
its intake process. Goal (issue 12): no answer waits over 100 ms because of the work, and the
runner's peak RSS under 300 MB.

1. ``first``: the first look at a ``--rows``-row CSV with ``existing_rows: run`` (every row a
   run, held by the flood brake); probed until every run is recorded, or ``--probe-s``
   (figure: the rows recorded meanwhile).
2. ``append``: 20,000 rows appended at once to a watched CSV; probed until all are recorded.
3. ``resume``: the runner starts on a store holding ``--pending`` pending runs (written
   straight into the file first) and resumes them; probed for ``--probe-s``.
4. ``prune``: the runner starts on a store holding ``--old`` runs finished 40 days ago (past
   the 30-day retention) and prunes them at its start; probed until they are gone (or
   ``--probe-s``).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from bench_tables import (
    HEADER,
    HOOK,
    TABLE,
    append,
    free_port,
    percentile,
    query,
    rows,
    run_count,
    vm,
    wait_for,
)
from processes import process, wait_ready

from automations.stores import SQLiteStore

HOST = "127.0.0.1"
SCENARIOS = ("first", "append", "resume", "prune")
#: A recipe the resumed and pruned runs belong to (dry run: rendered, nothing sent).
BACKLOG = """
name: backlog
trigger:
  webhook: {path: /hooks/backlog, verify: {scheme: none}}
actions:
  - http.request: {method: POST, url: "http://127.0.0.1:9/backlog", json: {email: /email}}
"""


class Probe:
    """``/healthz`` and a webhook, in turn, without pause, on a thread, until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: dict[str, list[float]] = {"healthz": [], "webhook": []}
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            index = 0
            while not self._stop.is_set():
                for kind, call in (
                    ("healthz", lambda: client.get(self.url + "/healthz")),
                    (
                        "webhook",
                        lambda i=index: client.post(self.url + "/hooks/x", json={"id": i}),
                    ),
                ):
                    started = time.perf_counter()
                    answer = call()
                    self.seen[kind].append(time.perf_counter() - started)
                    if answer.status_code >= 300:
                        self.failed += 1
                index += 1

    def figures(self) -> dict[str, float]:
        out: dict[str, float] = {"probes": float(len(self.seen["webhook"])), "failed": self.failed}
        for kind, values in self.seen.items():
            if values:
                out[f"{kind}_max_ms"] = max(values) * 1000
                out[f"{kind}_p99_ms"] = percentile(values, 99) * 1000
        return out


def _intake_pid(pid: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and b"automations.intake" in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except OSError:
            continue
    return None


class Bench:
    def __init__(self, folder: Path, opts: argparse.Namespace) -> None:
        self.folder = folder
        self.opts = opts
        self.made = 0

    @contextmanager
    def runner(
        self, recipes: dict[str, str], table: str | None, prepare: Callable[[Path], None] | None
    ) -> Iterator[tuple[str, Any, Path, Path]]:
        self.made += 1
        where = self.folder / f"r{self.made}"
        (where / "recipes" / "data").mkdir(parents=True)
        for name, text in recipes.items():
            (where / "recipes" / name).write_text(text.lstrip(), "utf-8")
        path = where / "recipes" / "data" / "feed.csv"
        if table is not None:
            path.write_text(table, "utf-8")
        db = where / "runs.db"
        if prepare is not None:
            prepare(db)
        port = free_port()
        args = [sys.executable, "-m", "automations", "run", str(where / "recipes")]
        args += ["--db", str(db), "--port", str(port), "--dry-run", "--no-ui"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with process(args, env, where / "runner.log", stop_s=60) as proc:
            url = f"http://{HOST}:{port}"
            wait_ready(url, proc, where / "runner.log", self.opts.timeout)
            yield url, proc, db, path

    def peaks(self, proc: Any) -> dict[str, float]:
        intake = _intake_pid(proc.pid)
        return {
            "runner_mb": vm(proc.pid, "VmHWM"),
            "intake_mb": vm(intake, "VmHWM") if intake else float("nan"),
        }

    def first(self) -> dict[str, float]:
        n = self.opts.rows
        recipes = {"feed.yaml": TABLE.format(existing="run"), "hook.yaml": HOOK}
        with self.runner(recipes, HEADER + rows(n), None) as (url, proc, db, _):
            with Probe(url) as probe:
                deadline = time.monotonic() + self.opts.probe_s
                while run_count(db) < n and time.monotonic() < deadline:
                    time.sleep(0.5)
            recorded = float(run_count(db))
            return probe.figures() | self.peaks(proc) | {"work": recorded}

    def append(self) -> dict[str, float]:
        recipes = {"feed.yaml": TABLE.format(existing="skip"), "hook.yaml": HOOK}
        with self.runner(recipes, HEADER, None) as (url, proc, db, path):
            time.sleep(1.0)
            with Probe(url) as probe:
                began = time.monotonic()
                append(path, rows(20_000))
                wait_for(lambda: run_count(db) >= 20_000, "the 20,000 runs", self.opts.timeout)
                took = time.monotonic() - began
            return probe.figures() | self.peaks(proc) | {"work_s": took}

    def resume(self) -> dict[str, float]:
        n = self.opts.pending

        def prepare(db: Path) -> None:
            _fill(db, n, status="pending", age_s=60)

        recipes = {"backlog.yaml": BACKLOG, "hook.yaml": HOOK}
        with self.runner(recipes, None, prepare) as (url, proc, db, _):
            with Probe(url) as probe:
                time.sleep(self.opts.probe_s)
            done = query(db, "SELECT count(*) FROM runs WHERE status = 'succeeded'")
            return probe.figures() | self.peaks(proc) | {"work": float(done[0][0])}

    def prune(self) -> dict[str, float]:
        n = self.opts.old

        def prepare(db: Path) -> None:
            _fill(db, n, status="succeeded", age_s=40 * 86400)

        recipes = {"backlog.yaml": BACKLOG, "hook.yaml": HOOK}
        began = time.monotonic()
        with self.runner(recipes, None, prepare) as (url, proc, db, _):
            with Probe(url) as probe:
                deadline = time.monotonic() + self.opts.probe_s
                while run_count(db, "backlog") > 0 and time.monotonic() < deadline:
                    time.sleep(0.5)
            left = run_count(db, "backlog")
            took = time.monotonic() - began
            return probe.figures() | self.peaks(proc) | {"work_s": took, "left": float(left)}


def _fill(db: Path, n: int, *, status: str, age_s: float) -> None:
    """``n`` runs of recipe ``backlog`` written straight into a new store's file."""
    SQLiteStore(db).close()
    conn = sqlite3.connect(db, isolation_level=None)
    at = time.time() - age_s
    finished = at + 1 if status != "pending" else None
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO runs (id, recipe, trigger, event_key, event, created_at, status, dry_run, "
        "finished_at) VALUES (?, 'backlog', 'webhook', ?, ?, ?, ?, 1, ?)",
        (
            (uuid.uuid4().hex, f"e{i}", f'{{"email":"b{i}@example.com"}}', at, status, finished)
            for i in range(n)
        ),
    )
    conn.execute("COMMIT")
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--old", type=int, default=1_000_000)
    parser.add_argument("--probe-s", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    opts = parser.parse_args()
    opts.rows = min(max(1, opts.rows), 1_000_000)
    opts.pending = min(max(1, opts.pending), 1_000_000)
    opts.old = min(max(1, opts.old), 1_000_000)
    opts.probe_s = min(max(1.0, opts.probe_s), 600.0)
    opts.timeout = min(max(5.0, opts.timeout), 1800.0)
    print(f"stalls on {HOST}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), opts)
        for name in opts.only.split(","):
            if name not in SCENARIOS:
                raise SystemExit(f"--only takes {', '.join(SCENARIOS)}")
            got = getattr(bench, name)()
            print(
                f"  {name:7} {got['probes']:6.0f} probes ({got['failed']:.0f} not 2xx): "
                f"webhook max {got.get('webhook_max_ms', 0):5.0f} ms p99 "
                f"{got.get('webhook_p99_ms', 0):4.0f} ms; /healthz max "
                f"{got.get('healthz_max_ms', 0):5.0f} ms p99 "
                f"{got.get('healthz_p99_ms', 0):4.0f} ms; "
                f"peak RSS runner {got['runner_mb']:.0f} MB, intake {got['intake_mb']:.0f} MB; "
                + ", ".join(
                    f"{k} {v:,.1f}" for k, v in got.items() if k in ("work_s", "work", "left")
                ),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
