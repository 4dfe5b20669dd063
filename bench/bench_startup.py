"""Runner start-up and hot reload with many webhook recipes.

    python bench/bench_startup.py [--counts 10,1000,10000] [--rounds 3] [--no-runner]

For each count N, a folder of N webhook recipes (each its own path, a Quo contact and a Loops
update). Figures, medians of ``--rounds``:

1. ``reload`` of the empty set: the whole folder read and compiled (what start-up does), in this
   process.
2. One recipe saved with a change, then ``reload`` with the changed file named (what the
   runner's watcher does). Goal: under 100 ms at 10,000 recipes.
3. ``automations run`` (a subprocess on 127.0.0.1) from its start until ``/healthz`` answers
   200 (skipped with ``--no-runner``). Goal: under 5 s at 10,000 recipes.

Everything is bounded: the runner gets 120 s to start, then is stopped.
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
from processes import process

from automations.runner.registry import RecipeSet, reload

HOST = "127.0.0.1"
RECIPE = """name: hook-{i}
trigger:
  webhook:
    path: /hooks/{i}
    verify: {{scheme: standard-webhooks, secret: "${{HOOK_SECRET}}"}}
actions:
  - id: contact
    quo.create_contact:
      defaultFields:
        firstName: /firstName
        emails: [{{name: work, value: /email}}]
  - id: loops
    loops.update_contact:
      email: /email
      firstName: /firstName{extra}
"""
ENV = {
    "HOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "QUO_API_KEY": "quo-bench-key-0123456789",
    "LOOPS_API_KEY": "loops-bench-key-0123456789",
}


def write(folder: Path, count: int) -> None:
    for i in range(count):
        (folder / f"hook-{i:05d}.yaml").write_text(RECIPE.format(i=i, extra=""), "utf-8")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def runner_start(folder: Path, log: Path) -> float:
    port = free_port()
    url = f"http://{HOST}:{port}/healthz"
    args = [sys.executable, "-m", "automations", "run", str(folder), "--port", str(port)]
    args += ["--db", str(folder.parent / f"start-{time.monotonic_ns()}.db")]
    env = {**os.environ, **ENV}
    started = time.perf_counter()
    with process(args, env, log) as proc:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the runner exited:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
    raise SystemExit(f"the runner did not start in 120 s:\n{log.read_text()[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10,1000,10000", help="recipe counts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-runner", action="store_true", help="skip the runner start-up")
    opts = parser.parse_args()
    counts = [min(max(1, int(c)), 20_000) for c in opts.counts.split(",")]
    rounds = min(max(1, opts.rounds), 10)
    print(f"start-up and reload, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            folder = Path(tmp) / f"recipes-{count}"
            folder.mkdir()
            write(folder, count)
            loads, reloads, starts = [], [], []
            for r in range(rounds):
                started = time.perf_counter()
                recipes = reload(RecipeSet(), folder, ENV)
                loads.append(time.perf_counter() - started)
                assert len(recipes.by_name) == count, recipes.errors()
                edited = folder / f"hook-{count // 2:05d}.yaml"
                edited.write_text(RECIPE.format(i=count // 2, extra=f"\n      userGroup: r{r}"))
                started = time.perf_counter()
                after = reload(recipes, folder, ENV, changed=[str(edited)])
                reloads.append(time.perf_counter() - started)
                assert len(after.by_name) == count and not after.errors()
                if not opts.no_runner:
                    starts.append(runner_start(folder, Path(tmp) / "runner.log"))
            line = (
                f"  {count:6,} recipes: load {statistics.median(loads):7.3f} s"
                f"   reload after one save {1000 * statistics.median(reloads):8.1f} ms"
            )
            if starts:
                line += f"   runner start to /healthz {statistics.median(starts):6.2f} s"
            print(line, flush=True)
            if count >= 10_000:
                ok = ok and statistics.median(reloads) < 0.1
                ok = ok and (not starts or statistics.median(starts) < 5.0)
    print(f"  goals at 10,000 (start < 5 s, reload < 100 ms): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
