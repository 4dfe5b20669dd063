"""A runner resuming a million pending runs: does its own event loop stall, does memory stay flat?

    python bench/bench_resume.py [--runs 1000000] [--recipes 1] [--seconds 30] [--rounds 3]
                                 [--baseline DIR]

A run database holding ``--runs`` runs of one webhook recipe left unfinished (99% ``pending``,
1% ``running``: cut off by a stop), written straight into a fresh store file once and copied for
each round; ``--recipes N`` loads N - 1 idle webhook recipes beside it (what a large install
keeps in memory, and every full garbage collection used to walk). Each round starts
``automations run --dry-run`` (a subprocess on 127.0.0.1) on a copy with
``AUTOMATIONS_DEBUG_LOOP_LAG=1``: the runner logs how late its own event loop answered each
second (``runner/looplag.py``). For ``--seconds`` after ``/healthz`` first answers (the runs
given back, the backlog counted, pages claimed and executed, the backlog counted and reported
again), ``/healthz`` is also probed from outside, one request after the other.

Figures, medians of ``--rounds``: seconds until ``/healthz`` answers, the runner loop's longest
lag in that window (goal: under 100 ms), the slowest ``/healthz``, runs finished per second, and
the runner's peak RSS (``VmHWM``; goal: under 300 MB). ``--baseline DIR`` measures another
checkout too (put first on the runner's ``PYTHONPATH``), alternating round by round; a checkout
without ``AUTOMATIONS_DEBUG_LOOP_LAG`` shows no loop lag.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from bench_tables import HOOK, HOST, free_port, loop_lag_ms, vm
from processes import process, wait_ready

from automations.stores import SQLiteStore

IDLE = """name: idle-{i}
trigger:
  webhook: {{path: /hooks/idle-{i}, verify: {{scheme: none}}}}
actions:
  - http.request: {{method: POST, url: "http://127.0.0.1:9/idle", json: {{id: /id}}}}
"""
_FILL = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :count - 1)
INSERT INTO runs (id, recipe, trigger, event_key, event, created_at, status, dry_run,
                  lease_owner, lease_token, lease_expires_at)
SELECT lower(hex(randomblob(16))), 'hook', 'webhook', 'evt_' || i, '{"id":' || i || '}',
       :start + i * 0.001,
       CASE WHEN i % 100 = 0 THEN 'running' ELSE 'pending' END, 1,
       CASE WHEN i % 100 = 0 THEN 'gone-node' END, CASE WHEN i % 100 = 0 THEN 1 ELSE 0 END,
       CASE WHEN i % 100 = 0 THEN :start + 30 END
FROM n
"""


def build(path: Path, runs: int) -> None:
    SQLiteStore(path).close()  # the schema, with every migration
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")
    db.execute(_FILL, {"count": runs, "start": time.time() - 3600})
    db.commit()
    db.execute("ANALYZE")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def finished(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            row = conn.execute("SELECT count(*) FROM runs WHERE finished_at IS NOT NULL")
            return int(row.fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return -1


def one_round(
    work: Path, source: Path, version: str | None, opts: argparse.Namespace
) -> dict[str, float]:
    shutil.rmtree(work, ignore_errors=True)
    (work / "recipes").mkdir(parents=True)
    (work / "recipes" / "hook.yaml").write_text(HOOK.lstrip(), "utf-8")
    for i in range(1, opts.recipes):  # idle recipes beside it: what the runner keeps in memory
        (work / "recipes" / f"idle-{i:05d}.yaml").write_text(IDLE.format(i=i), "utf-8")
    db = work / "runs.db"
    shutil.copyfile(source, db)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "AUTOMATIONS_DEBUG_LOOP_LAG": "1"}
    if version is not None:
        env["PYTHONPATH"] = version + os.pathsep + env.get("PYTHONPATH", "")
    port = free_port()
    url = f"http://{HOST}:{port}"
    args = [sys.executable, "-m", "automations", "run", str(work / "recipes"), "--dry-run"]
    args += ["--db", str(db), "--port", str(port), "--no-ui"]
    log = work / "runner.log"
    began = time.monotonic()
    with process(args, env, log, stop_s=30) as proc:
        wait_ready(url, proc, log, 120)
        listening = time.monotonic() - began
        since = len(log.read_text("utf-8", "replace").splitlines())
        stop = threading.Event()
        probes: list[float] = []

        def probe() -> None:
            with httpx.Client(timeout=60) as client:
                while not stop.is_set():
                    started = time.perf_counter()
                    client.get(url + "/healthz")
                    probes.append(time.perf_counter() - started)
                    time.sleep(0.01)

        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        time.sleep(opts.seconds)
        stop.set()
        thread.join(60)
        peak = vm(proc.pid, "VmHWM")
        done = finished(db)
        lag = loop_lag_ms(log, since)
    return {
        "listening_s": listening,
        "lag_ms": lag,
        "healthz_ms": max(probes) * 1000 if probes else float("nan"),
        "rate": done / opts.seconds,
        "peak_mb": peak,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=30.0, help="window measured per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--recipes", type=int, default=1, help="recipes loaded (1: the hook)")
    parser.add_argument("--baseline", help="another checkout to compare with (its directory)")
    opts = parser.parse_args()
    opts.runs = min(max(1000, opts.runs), 2_000_000)
    opts.seconds = min(max(5.0, opts.seconds), 300.0)
    opts.rounds = min(max(1, opts.rounds), 10)
    opts.recipes = min(max(1, opts.recipes), 20_000)
    versions: list[str | None] = [None] + ([opts.baseline] if opts.baseline else [])
    print(
        f"resume of {opts.runs:,} unfinished runs, {opts.recipes:,} recipe(s), python "
        f"{sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    results: dict[str | None, list[dict[str, float]]] = {v: [] for v in versions}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.db"
        started = time.perf_counter()
        build(source, opts.runs)
        print(
            f"  database written in {time.perf_counter() - started:.0f} s "
            f"({source.stat().st_size / 1e6:.0f} MB)",
            flush=True,
        )
        for r in range(opts.rounds):
            for version in versions:
                got = one_round(Path(tmp) / "work", source, version, opts)
                results[version].append(got)
                print(f"    round {r + 1} [{label(version)}]: " + describe(got), flush=True)
    ok = True
    for version, rows in results.items():
        med = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
        print(f"  medians [{label(version)}]: " + describe(med))
        if version is None:
            ok = med["lag_ms"] < 100 and med["peak_mb"] < 300
    print(f"  goals (runner loop lag < 100 ms, peak RSS < 300 MB): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


def describe(got: dict[str, float]) -> str:
    return (
        f"/healthz after {got['listening_s']:.1f} s; then {got['rate']:,.0f} runs/s, runner "
        f"loop lag max {got['lag_ms']:.0f} ms, slowest /healthz {got['healthz_ms']:.0f} ms, "
        f"peak RSS {got['peak_mb']:.0f} MB"
    )


def label(version: str | None) -> str:
    return "this checkout" if version is None else f"baseline {version}"


if __name__ == "__main__":
    sys.exit(main())
