"""Webhook intake under wrk: the runner against a bare starlette + uvicorn app of the same shape.

    python bench/bench_intake.py [--rounds 5] [--duration 5] [--connections 16] [--threads 1]
                                 [--only bare,dry,quiet,live]

Needs ``wrk`` (Debian package ``wrk``). Everything listens on 127.0.0.1; every load is bounded
(``--duration`` seconds of wrk per target and round, about 3 min in all with the defaults).

Targets, measured in alternating order (the order rotates each round), a fresh process and a
fresh database each round, after a 1 s warm-up:

- ``bare``: starlette + uvicorn (uvloop, httptools) reading each body and answering 202, the
  same server settings as the runner (the baseline).
- ``dry``: ``automations run --dry-run`` with one Standard-Webhooks-verified recipe (a Quo
  contact and a Loops update): each webhook is recorded and its run rendered and audited while
  the flood goes on.
- ``quiet``: the same recipe with ``only_run_if`` false: runs are recorded and skipped, nothing is
  rendered or sent (the intake nearly alone).
- ``live``: the runner not in dry run, sending each run's 2 requests to a loopback fake Quo +
  Loops (rate limits set very high): the flood also executes.

wrk (``bench/intake.lua``) sends pre-signed webhooks, each with its own ``webhook-id``, over
``--connections`` keep-alive connections. Figures per target: 2xx per second and the p99 of the
answer, median of the rounds. Every 202's run id is then looked up in that round's database (the
runner stopped first): all must be there. Goals: dry-run throughput >= 0.5x bare; the p99 of the
202 during the live flood within 10x the bare p99. For ``live``, the runner's CPU from the
flood's start until every run has executed (2 sends each), per webhook: the engine's whole cost
at saturation (goal <= 1.5 ms). Also printed: each server's CPU per webhook
(from /proc; the runner's includes its intake process, which serves the webhook port, see
docs/runner.md), which moves far less than rates when other processes share the machine.

To compare with another version of the package, run this script with ``PYTHONPATH`` pointing at
that checkout: the runners import ``automations`` from there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench_webhooks import (
    HOOK,
    HOST,
    RECIPE,
    SECRET,
    bare_app,
    cpu_seconds,
    fake_vendors_app,
    free_port,
    serve,
)
from processes import process, wait_ready

from automations.stores.sqlite_inbox import waiting_in_inbox
from automations.triggers.verify import sign_standard

TARGETS = ("bare", "dry", "quiet", "live")
LUA = Path(__file__).resolve().with_name("intake.lua")
#: Requests written per wrk thread and second: above what this machine can answer, so no
#: thread runs out (a repeat would be answered 200 and is reported).
MAX_RATE = 40_000
STARTUP_S = 60.0
QUIET = RECIPE.replace("actions:", "only_run_if: \"plan == 'never'\"\nactions:", 1)


def requests_file(path: Path, tag: str, count: int) -> None:
    """``count`` signed webhooks, one a line: ``id\\ttimestamp\\tsignature\\tbody``."""
    ts = int(time.time())
    with path.open("w") as out:
        for i in range(count):
            body = json.dumps(
                {
                    "email": f"user{i}@example.com",
                    "firstName": "Ada",
                    "lastName": "Lovelace",
                    "phone": f"+1555{i % 10_000_000:07d}",
                    "plan": "pro",
                },
                separators=(",", ":"),
            )
            msg_id = f"msg_{tag}_{i}"
            sig = sign_standard(SECRET, msg_id, ts, body.encode())
            out.write(f"{msg_id}\t{ts}\t{sig}\t{body}\n")


def wrk(
    url: str, file: Path, ids: Path, seconds: float, opts: argparse.Namespace
) -> dict[str, Any]:
    args = ["wrk", "-t", str(opts.threads), "-c", str(opts.connections), "-d", f"{seconds:g}s"]
    args += ["--timeout", "10s", "-s", str(LUA), url + HOOK, "--", str(file), str(opts.threads)]
    env = {**os.environ, "WRK_IDS_FILE": str(ids)}
    done = subprocess.run(args, env=env, capture_output=True, timeout=seconds + 60, check=False)
    out = done.stdout.decode()
    for line in out.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[7:])
            return result
    raise SystemExit(f"wrk failed ({done.returncode}):\n{out[-2000:]}\n{done.stderr.decode()}")


def settle(db: Path, timeout: float) -> None:
    """Wait until the runner has no unfinished run left (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            left = conn.execute(
                "SELECT count(*) FROM runs WHERE status IN ('pending', 'running')"
            ).fetchone()[0]
        finally:
            conn.close()
        if not left and not waiting_in_inbox(db):
            return
        time.sleep(0.2)


def missing_runs(db: Path, ids: Path) -> tuple[int, int]:
    """(run ids answered 202, of those not in the database)."""
    answered = [line for line in ids.read_text().split("\n") if line]
    conn = sqlite3.connect(db, timeout=30)
    try:
        conn.execute("CREATE TEMP TABLE answered (id TEXT PRIMARY KEY)")
        conn.executemany("INSERT OR IGNORE INTO answered VALUES (?)", ((i,) for i in answered))
        found = conn.execute("SELECT COUNT(*) FROM answered JOIN runs USING (id)").fetchone()[0]
        distinct = conn.execute("SELECT COUNT(*) FROM answered").fetchone()[0]
    finally:
        conn.close()
    return len(answered), len(answered) - int(found) + (len(answered) - int(distinct))


class Bench:
    def __init__(self, folder: Path, opts: argparse.Namespace) -> None:
        self.folder = folder
        self.opts = opts
        self.env = {
            **os.environ,
            "SIGNUP_SECRET": SECRET,
            "PYTHONUNBUFFERED": "1",
            "QUO_API_KEY": "quo-bench-key-0123456789",
            "LOOPS_API_KEY": "loops-bench-key-0123456789",
            "QUO_RATE_LIMIT": "100000",
            "LOOPS_RATE_LIMIT": "100000",
            "AUTOMATIONS_RATE_GUARD_MS": "0",
        }
        for name, text in (("signup", RECIPE), ("quiet", QUIET)):
            (folder / name).mkdir()
            (folder / name / "signup.yaml").write_text(text, "utf-8")
        self.fake_url = ""
        self.results: dict[str, list[dict[str, Any]]] = {t: [] for t in TARGETS}
        self.lost = 0

    @contextmanager
    def server(self, target: str, r: int) -> Iterator[tuple[str, Any, Path | None]]:
        port = free_port()
        url = f"http://{HOST}:{port}"
        log = self.folder / f"{target}{r}.log"
        if target == "bare":
            args = [sys.executable, str(Path(__file__).resolve()), "--role", "bare"]
            args += ["--port", str(port)]
            db = None
        else:
            db = self.folder / f"{target}{r}.db"
            recipes = self.folder / ("quiet" if target == "quiet" else "signup")
            args = [sys.executable, "-m", "automations", "run", str(recipes), "--db", str(db)]
            args += ["--port", str(port), "--grace", "1"]
            args += ["--dry-run"] if target == "dry" else []
        env = {**self.env, "QUO_BASE_URL": self.fake_url, "LOOPS_BASE_URL": self.fake_url}
        with process(args, env, log) as proc:
            wait_ready(url, proc, log, STARTUP_S)
            yield url, proc, db

    def round(self, r: int, order: list[str]) -> None:
        opts = self.opts
        reqs, warm = self.folder / "requests.txt", self.folder / "warm.txt"
        requests_file(reqs, f"r{r}", int(MAX_RATE * opts.duration))
        requests_file(warm, f"w{r}", MAX_RATE)
        for target in order:
            ids, warm_ids = self.folder / "ids.txt", self.folder / "warm-ids.txt"
            with self.server(target, r) as (url, proc, db):
                wrk(url, warm, warm_ids, 1.0, opts)
                before = cpu_seconds(proc)
                result = wrk(url, reqs, ids, opts.duration, opts)
                result["cpu_s"] = cpu_seconds(proc) - before
                if target == "live" and db is not None:
                    # the flood's runs, executed once it ends: the engine's whole CPU per
                    # webhook with its 2 sends, at saturation
                    settle(db, STARTUP_S * 5)
                    result["cpu_all_s"] = cpu_seconds(proc) - before
            ok = sum(v for k, v in result["statuses"].items() if k.startswith("2"))
            result["ok"] = ok
            if db is not None:
                result["verified"] = 0
                for file in (warm_ids, ids):
                    answered, missing = missing_runs(db, file)
                    self.lost += missing
                    result["verified"] += answered
                    if missing:
                        print(f"  {target} round {r}: {missing} of {answered} 202s NOT stored")
            others = {k: v for k, v in result["statuses"].items() if k != "202"}
            if others or result["reused"] or result["socket_errors"]:
                print(
                    f"  {target} round {r}: statuses {result['statuses']}, repeats "
                    f"{result['reused']}, socket errors {result['socket_errors']}"
                )
            self.results[target].append(result)
            print(
                f"  round {r} {target:5} {ok / (result['duration_us'] / 1e6):8,.0f}/s  "
                f"p99 {result['p99_us'] / 1000:7.2f} ms",
                flush=True,
            )

    def report(self) -> bool:
        opts = self.opts
        rates: dict[str, float] = {}
        p99: dict[str, float] = {}
        print(
            f"\nintake, {opts.rounds} rounds x {opts.duration:g} s of wrk, {opts.connections} "
            f"connections, {opts.threads} thread(s) (median; each round):"
        )
        for target, results in self.results.items():
            if not results:
                continue
            each = [x["ok"] / (x["duration_us"] / 1e6) for x in results]
            tails = [x["p99_us"] / 1000 for x in results]
            cpu = [1000 * x["cpu_s"] / max(x["ok"], 1) for x in results]
            rates[target], p99[target] = statistics.median(each), statistics.median(tails)
            print(
                f"  {target:5} {rates[target]:8,.0f}/s ({', '.join(f'{x:,.0f}' for x in each)})"
                f"   p99 {p99[target]:7.2f} ms ({', '.join(f'{x:.1f}' for x in tails)})"
                f"   p50 {statistics.median(x['p50_us'] / 1000 for x in results):.2f} ms"
                f"   CPU/webhook {statistics.median(cpu):.3f} ms"
            )
        whole = [
            1000 * x["cpu_all_s"] / max(x["ok"], 1)
            for x in self.results["live"]
            if "cpu_all_s" in x
        ]
        if whole:
            print(
                f"  live: engine CPU per webhook with its 2 sends, until every run finished: "
                f"{statistics.median(whole):.2f} ms (goal <= 1.5)"
            )
        ok = self.lost == 0
        verified = sum(x.get("verified", 0) for t in TARGETS for x in self.results[t])
        print(
            f"  every 202 in the database: {'yes' if ok else 'NO'} ({verified:,} checked, "
            f"{self.lost} missing)"
        )
        if "bare" in rates and "dry" in rates:
            ratio = rates["dry"] / rates["bare"]
            print(f"  throughput dry / bare: {ratio:.2f} (goal >= 0.5)")
            ok = ok and ratio >= 0.5
        for target in ("quiet", "dry", "live"):
            if "bare" in p99 and target in p99:
                ratio = p99[target] / p99["bare"]
                goal = " (goal <= 10)" if target == "live" else ""
                print(f"  p99 {target} / bare: {ratio:.1f}x{goal}")
                if target == "live":
                    ok = ok and ratio <= 10
        print(f"  goals: {'met' if ok else 'NOT met'}")
        return ok


def orchestrate(opts: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    targets = [t for t in TARGETS if t in opts.only.split(",")]
    print(f"webhook intake on {HOST}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), opts)
        fake_port = free_port()
        bench.fake_url = f"http://{HOST}:{fake_port}"
        fake_args = [sys.executable, str(Path(__file__).resolve()), "--role", "fake"]
        fake_log = Path(tmp) / "fake.log"
        with process([*fake_args, "--port", str(fake_port)], bench.env, fake_log) as fake:
            wait_ready(bench.fake_url, fake, fake_log, STARTUP_S)
            for r in range(1, opts.rounds + 1):
                shift = (r - 1) % len(targets)
                bench.round(r, targets[shift:] + targets[:shift])
        return 0 if bench.report() else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per target")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of wrk per round")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--only", default=",".join(TARGETS), help="targets, comma-separated")
    parser.add_argument("--role", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    opts.rounds = min(max(1, opts.rounds), 20)
    opts.duration = min(max(1.0, opts.duration), 30.0)
    opts.connections = min(max(1, opts.connections), 256)
    opts.threads = min(max(1, opts.threads), opts.connections)
    if opts.role == "bare":
        serve(bare_app(), opts.port)
    elif opts.role == "fake":
        serve(fake_vendors_app(), opts.port)
    else:
        return orchestrate(opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
