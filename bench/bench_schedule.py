"""Fire times hit by an every-minute cron in the real runner, on the real clock.

    python bench/bench_schedule.py [--minutes 10]

Starts ``automations run`` (``--dry-run``, a temporary folder and database, a free port on
127.0.0.1) with one recipe on ``cron: "* * * * *"``, lets it run for ``--minutes`` minutes of
wall time, stops it with SIGTERM, and compares the runs it recorded (``automations runs``) with
the minute boundaries between the moment its ``/healthz`` answered and the moment it was
stopped. Prints hits/expected and any fire time missed or run twice. Takes as long as it says.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

RECIPE = """\
name: every-minute
trigger:
  schedule: {cron: "* * * * *"}
actions:
  - http.request: {method: POST, url: "http://127.0.0.1:9/tick", json: {at: /fired_at}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _boundaries(start: datetime, end: datetime) -> list[str]:
    """Minute boundaries strictly after ``start`` and at or before ``end``, as event keys."""
    t = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    out = []
    while t <= end:
        out.append(t.strftime("%Y-%m-%dT%H:%M:%SZ"))
        t += timedelta(minutes=1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "recipes").mkdir()
        (folder / "recipes" / "every-minute.yaml").write_text(RECIPE, "utf-8")
        db, port = folder / "runs.db", _free_port()
        log = open(folder / "runner.log", "wb")  # noqa: SIM115
        cmd = [sys.executable, "-m", "automations", "run", str(folder / "recipes")]
        proc = subprocess.Popen(
            [*cmd, "--db", str(db), "--port", str(port), "--dry-run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the runner did not start")
                time.sleep(0.1)
            started = datetime.now(UTC)
            time.sleep(args.minutes * 60)
            stopped = datetime.now(UTC)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            log.close()
        out = subprocess.run(
            [sys.executable, "-m", "automations", "runs", "--db", str(db), "--format", "json"],
            capture_output=True,
            check=True,
            text=True,
        )
        keys = [r["event_key"] for r in json.loads(out.stdout)]
    expected = _boundaries(started, stopped)
    hits = [k for k in expected if k in keys]
    span = f"{started:%H:%M:%S}-{stopped:%H:%M:%S} UTC"
    print(f"every-minute cron, real clock, {args.minutes:g} min ({span})")
    print(f"  fire times hit: {len(hits)}/{len(expected)}")
    missed = sorted(set(expected) - set(keys))
    twice = sorted({k for k in keys if keys.count(k) > 1})
    print(f"  missed: {', '.join(missed) or 'none'}; run twice: {', '.join(twice) or 'none'}")
    return 0 if hits == expected and not twice else 1


if __name__ == "__main__":
    sys.exit(main())
