"""Webhook intake: throughput of the real runner against a bare app, and accept-to-send latency.

    python bench/bench_webhooks.py [--count 6000] [--concurrency 16] [--rounds 3]
                                   [--client raw|httpx] [--rate 100] [--seconds 10]
                                   [--only throughput|latency]

Everything listens on 127.0.0.1 and every load is bounded in count and time (about 90 s in all).

1. Throughput. ``automations run DIR --dry-run --db tmp.db --port P`` (a subprocess, uvicorn
   with uvloop and httptools) serves one Standard-Webhooks-verified recipe; a bare
   starlette + uvicorn app with the same server settings reads each body and answers 202. A load
   process posts ``--count`` signed webhooks with distinct ``webhook-id``s over keep-alive
   connections, ``--concurrency`` in flight, signatures computed before the clock starts.
   Rate = 202s / seconds, median of ``--rounds`` alternating rounds (after a warm-up round);
   then the database must hold exactly as many runs as 202s were answered (durably accepted).
   Goal: >= 1,500/s. Also printed: CPU time per webhook of each server (from /proc), which moves
   far less than rates when other processes share the machine; the runner's includes the dry
   runs it executes meanwhile.

   The load generator: ``--client httpx`` is an ``httpx.AsyncClient``; it costs about 1 ms of
   CPU per request here (far more with many connections), so it, not the server, sets the pace.
   ``--client raw`` (the default) writes pre-serialized HTTP/1.1 requests to the same keep-alive
   connections and reads each answer whole: a few percent of httpx's cost.
2. Latency. The runner, not in dry run, sends to a loopback fake Quo and Loops (a subprocess that
   records ``time.time()`` when each request arrives), rate limits set very high. After 50
   warm-up webhooks, webhooks go out (httpx.AsyncClient) at a steady ``--rate`` per second for
   ``--seconds``; per event, the first outbound arrival minus the moment its 202 was received.
   Goals: p50 <= 5 ms, p99 <= 25 ms. All processes share one machine clock (``time.time()``).

The load generator competes with the servers for the same CPUs: the ratio to the bare app and
the CPU per webhook are the figures to compare across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from processes import process, wait_ready

from automations.triggers.verify import sign_standard

HOST = "127.0.0.1"
HOOK = "/hooks/signup"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RECIPE = f"""
name: signup
trigger:
  webhook:
    path: {HOOK}
    verify: {{scheme: standard-webhooks, secret: "${{SIGNUP_SECRET}}"}}
actions:
  - id: contact
    quo.create_contact:
      defaultFields:
        firstName: /firstName
        lastName: /lastName
        emails: [{{name: work, value: /email}}]
        phoneNumbers: [{{name: mobile, value: /phone}}]
  - id: loops
    loops.update_contact:
      email: /email
      firstName: /firstName
      userGroup: /plan
"""
STARTUP_S = 30.0
#: Latency: webhooks sent (and not timed) before the steady phase, numbered from WARM_BASE up.
WARMUP_EVENTS = 50
WARM_BASE = 1_000_000


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def signed(tag: str, i: int) -> tuple[bytes, dict[str, str]]:
    """Webhook ``i``: its body and its Standard Webhooks headers."""
    body = json.dumps(
        {
            "email": f"user{i}@example.com",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "phone": f"+1555{i % 10_000_000:07d}",
            "plan": "pro",
        }
    ).encode()
    msg_id = f"msg_{tag}_{i}"
    ts = int(time.time())
    return body, {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_standard(SECRET, msg_id, ts, body),
        "content-type": "application/json",
    }


def use_uvloop() -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - not on Windows
        return None
    return uvloop.new_event_loop


# -- the servers other than the runner (run as subprocesses of this script) ---------------------


def serve(app: Any, port: int) -> None:
    """``app`` under uvicorn with the runner's settings (automations/cli/serve.py)."""
    import uvicorn

    config = uvicorn.Config(
        app, host=HOST, port=port, log_level="warning", access_log=False, lifespan="off"
    )
    with asyncio.Runner(loop_factory=use_uvloop()) as runner:
        runner.run(uvicorn.Server(config).serve())


def bare_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def hook(request: Request) -> Response:
        await request.body()
        return JSONResponse({"run_id": "0" * 32, "status": "accepted"}, status_code=202)

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/{path:path}", hook, methods=["POST"])]
    )


def fake_vendors_app() -> Any:
    """Quo and Loops answering at once; records when each request arrived, by event index."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    arrivals: list[tuple[str, int, float]] = []

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def arrived(request: Request) -> Response:
        return JSONResponse(arrivals)

    async def contacts(request: Request) -> Response:
        at = time.time()
        body = json.loads(await request.body())
        email = body["defaultFields"]["emails"][0]["value"]
        arrivals.append(("quo", int(email[4 : email.index("@")]), at))
        return JSONResponse({"data": {"id": "664d0db69fcac7cf2e6ec", **body}}, status_code=201)

    async def update(request: Request) -> Response:
        at = time.time()
        body = json.loads(await request.body())
        arrivals.append(("loops", int(body["email"][4 : body["email"].index("@")]), at))
        return JSONResponse({"success": True, "id": "cm1x2y3z4a5b6c7d8e9f0g1h2"})

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/arrivals", arrived),
            Route("/v1/contacts", contacts, methods=["POST"]),
            Route("/v1/contacts/update", update, methods=["PUT"]),
        ]
    )


# -- load generators (subprocesses: they print one JSON document) -------------------------------


async def flood(url: str, tag: str, count: int, concurrency: int) -> dict[str, Any]:
    """``count`` signed webhooks, ``concurrency`` in flight; statuses and seconds taken."""
    requests = [signed(tag, i) for i in range(count)]
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:
        # open the connections before the clock starts
        await asyncio.gather(*(client.get("/healthz") for _ in range(concurrency)))
        pending = iter(requests)

        async def worker() -> None:
            for body, headers in pending:
                response = await client.post(HOOK, content=body, headers=headers)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {"statuses": statuses, "seconds": seconds}


def raw_request(port: int, body: bytes, headers: dict[str, str]) -> bytes:
    """The whole HTTP/1.1 request as bytes, ready to write to a keep-alive connection."""
    lines = [f"POST {HOOK} HTTP/1.1", f"host: {HOST}:{port}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def flood_raw(url: str, tag: str, count: int, concurrency: int) -> dict[str, Any]:
    """``flood`` with a minimal client: pre-serialized requests written to ``concurrency``
    keep-alive connections, one request in flight on each. It costs the load process a small
    fraction of what httpx does, so more of the machine is left to the server under test."""
    port = int(url.rsplit(":", 1)[1])
    requests = [raw_request(port, *signed(tag, i)) for i in range(count)]
    statuses: dict[int, int] = {}
    conns = [await asyncio.open_connection(HOST, port) for _ in range(concurrency)]
    pending = iter(requests)

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for request in pending:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(r, w) for r, w in conns))
    seconds = time.perf_counter() - started
    for _, writer in conns:
        writer.close()
    return {"statuses": statuses, "seconds": seconds}


async def steady(url: str, tag: str, rate: float, seconds: float) -> dict[str, Any]:
    """Webhooks at a steady ``rate`` for ``seconds``: (index, sent, 202 received) per event."""
    count = int(rate * seconds)
    requests = [signed(tag, i) for i in range(count)]
    events: list[tuple[int, float, float, int]] = []
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:
        await asyncio.gather(*(client.get("/healthz") for _ in range(8)))
        # first requests pay for lazy imports, connections to the fake, the recipe's first run
        for i in range(WARM_BASE, WARM_BASE + WARMUP_EVENTS):
            body, headers = signed(tag, i)
            await client.post(HOOK, content=body, headers=headers)
            await asyncio.sleep(1 / rate)
        await asyncio.sleep(1.0)

        async def one(i: int) -> None:
            body, headers = requests[i]
            sent = time.time()
            response = await client.post(HOOK, content=body, headers=headers)
            events.append((i, sent, time.time(), response.status_code))

        start = time.perf_counter()
        tasks = []
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return {"events": events}


# -- orchestration -----------------------------------------------------------------------------


def this_script(role: str, *args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--role", role, *args]


def run_load(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(args, env=env, capture_output=True, timeout=300, check=False)
    if done.returncode != 0:
        raise SystemExit(f"load generator failed:\n{done.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def runner_args(folder: Path, db: Path, port: int, *, dry_run: bool) -> list[str]:
    args = [sys.executable, "-m", "automations", "run", str(folder / "recipes")]
    args += ["--db", str(db), "--port", str(port)]
    return args + (["--dry-run"] if dry_run else [])


def count_runs(db: Path, *, unfinished: bool = False) -> int:
    where = " WHERE status IN ('pending', 'running')" if unfinished else ""
    conn = sqlite3.connect(db, timeout=10)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM runs{where}").fetchone()[0])
    finally:
        conn.close()


def cpu_seconds(proc: subprocess.Popen[bytes]) -> float:
    """CPU time (user + system) ``proc`` and the processes it started (the runner's intake
    process) have used so far: unlike rates, it hardly moves when other processes share the
    machine."""
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, seconds)
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    tree, grew = {proc.pid}, True
    while grew:  # descendants, whatever the order of their pids
        before = len(tree)
        tree |= {pid for pid, (parent, _) in stats.items() if parent in tree}
        grew = len(tree) > before
    return sum(stats[pid][1] for pid in tree if pid in stats)


def throughput(folder: Path, env: dict[str, str], opts: argparse.Namespace) -> bool:
    db = folder / "throughput.db"
    runner_port, bare_port = free_port(), free_port()
    runner_log, bare_log = folder / "runner.log", folder / "bare.log"
    accepted = timed = 0
    rates: dict[str, list[float]] = {"runner": [], "bare": []}
    cpu_ms: dict[str, list[float]] = {"runner": [], "bare": []}
    with (
        process(runner_args(folder, db, runner_port, dry_run=True), env, runner_log) as runner,
        process(this_script("bare", "--port", str(bare_port)), env, bare_log) as bare,
    ):
        targets = {
            "runner": f"http://{HOST}:{runner_port}",
            "bare": f"http://{HOST}:{bare_port}",
        }
        wait_ready(targets["runner"], runner, runner_log, STARTUP_S)
        wait_ready(targets["bare"], bare, bare_log, STARTUP_S)
        procs = {"runner": runner, "bare": bare}
        for r in range(opts.rounds + 1):  # round 0 warms both up and is not counted
            count = opts.count if r else max(500, opts.count // 10)
            for name, url in targets.items():
                if name == "runner":  # let the runs of the round before finish first
                    wait_finished(db, accepted)
                    if r == 1:
                        runner_cpu = cpu_seconds(runner)
                load = this_script("flood", "--url", url, "--tag", f"{name}{r}")
                load += ["--count", str(count), "--concurrency", str(opts.concurrency)]
                load += ["--client", opts.client]
                before = cpu_seconds(procs[name])
                result = run_load(load, env)
                used = cpu_seconds(procs[name]) - before
                ok = int(result["statuses"].get("202", 0))
                if name == "runner":
                    accepted += ok
                    timed += ok if r else 0
                if ok != count:
                    print(f"  {name} round {r}: statuses {result['statuses']}")
                if r:
                    rates[name].append(ok / result["seconds"])
                    cpu_ms[name].append(1000 * used / max(ok, 1))
        wait_finished(db, accepted)
        runner_cpu = cpu_seconds(runner) - runner_cpu
        stored = count_runs(db)
    runner_rate = statistics.median(rates["runner"])
    bare_rate = statistics.median(rates["bare"])
    print(
        f"throughput, {opts.rounds} rounds x {opts.count:,} signed webhooks, "
        f"{opts.concurrency} in flight (median; each round):"
    )
    for name in ("runner", "bare"):
        each = ", ".join(f"{x:,.0f}" for x in rates[name])
        print(f"  {name:6} {statistics.median(rates[name]):7,.0f}/s  ({each})")
    print(f"  ratio runner / bare: {runner_rate / bare_rate:.2f}")
    print(
        f"  CPU per webhook during the flood: runner {statistics.median(cpu_ms['runner']):.3f} ms"
        f", bare {statistics.median(cpu_ms['bare']):.3f} ms; runner including the dry runs "
        f"finished after it: {1000 * runner_cpu / max(timed, 1):.3f} ms "
        f"(= {timed / runner_cpu:,.0f} webhooks per CPU-second)"
    )
    durable = stored == accepted
    print(
        f"  runs in the database: {stored:,} for {accepted:,} answered 202 "
        f"({'all durable' if durable else 'MISMATCH'})"
    )
    ok = runner_rate >= 1500 and durable
    print(f"  goal (>= 1,500/s, every 202 stored): {'met' if ok else 'NOT met'}")
    return ok


def wait_finished(db: Path, accepted: int, timeout: float = 120.0) -> None:
    """Until the runner has recorded ``accepted`` runs and executed them all."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count_runs(db) >= accepted and not count_runs(db, unfinished=True):
            return
        time.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(folder: Path, env: dict[str, str], opts: argparse.Namespace) -> bool:
    db = folder / "latency.db"
    runner_port, fake_port = free_port(), free_port()
    fake_url = f"http://{HOST}:{fake_port}"
    runner_url = f"http://{HOST}:{runner_port}"
    live_env = {
        **env,
        "QUO_API_KEY": "quo-bench-key-0123456789",
        "LOOPS_API_KEY": "loops-bench-key-0123456789",
        "QUO_BASE_URL": fake_url,
        "LOOPS_BASE_URL": fake_url,
        "QUO_RATE_LIMIT": "100000",
        "LOOPS_RATE_LIMIT": "100000",
        "AUTOMATIONS_RATE_GUARD_MS": "0",
    }
    fake_log, runner_log = folder / "fake.log", folder / "runner-live.log"
    count = int(opts.rate * opts.seconds)
    with (
        process(this_script("fake", "--port", str(fake_port)), env, fake_log) as fake,
        process(runner_args(folder, db, runner_port, dry_run=False), live_env, runner_log) as run,
    ):
        wait_ready(fake_url, fake, fake_log, STARTUP_S)
        wait_ready(runner_url, run, runner_log, STARTUP_S)
        load = this_script("steady", "--url", runner_url, "--tag", "live")
        load += ["--rate", str(opts.rate), "--seconds", str(opts.seconds)]
        cpu = cpu_seconds(run), cpu_seconds(fake)
        events = run_load(load, env)["events"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            arrivals = httpx.get(fake_url + "/arrivals", timeout=5).json()
            if len(arrivals) >= 2 * (count + WARMUP_EVENTS):
                break
            time.sleep(0.2)
        cpu = cpu_seconds(run) - cpu[0], cpu_seconds(fake) - cpu[1]
    arrivals = [a for a in arrivals if a[1] < WARM_BASE]
    if opts.dump:
        Path(opts.dump).write_text(json.dumps({"events": events, "arrivals": arrivals}))
    first: dict[int, float] = {}
    for _, i, at in arrivals:
        first[i] = min(at, first.get(i, at))
    accepted = [(i, sent, got) for i, sent, got, status in events if status == 202]
    delays = [(first[i] - got) * 1000 for i, _, got in accepted if i in first]
    totals = [(first[i] - sent) * 1000 for i, sent, _ in accepted if i in first]
    answers = [(got - sent) * 1000 for _, sent, got in accepted]
    p50, p99 = percentile(delays, 0.5), percentile(delays, 0.99)
    print(
        f"latency, {count:,} webhooks at {opts.rate:g}/s, runner sending to a loopback fake "
        f"({len(arrivals):,} requests arrived, {len(accepted):,} webhooks answered 202):"
    )
    print(f"  202 received -> first outbound request   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    print(
        f"  (webhook sent -> 202 received            p50 {percentile(answers, 0.5):6.2f} ms"
        f"   p99 {percentile(answers, 0.99):6.2f} ms)"
    )
    print(
        f"  (webhook sent -> first outbound request  p50 {percentile(totals, 0.5):6.2f} ms"
        f"   p99 {percentile(totals, 0.99):6.2f} ms)"
    )
    sent = count + WARMUP_EVENTS
    print(
        f"  CPU per webhook (warm-up included): runner {1000 * cpu[0] / sent:.2f} ms, "
        f"fake vendors {1000 * cpu[1] / sent:.2f} ms"
    )
    ok = len(delays) == count and p50 <= 5.0 and p99 <= 25.0
    print(f"  goal (p50 <= 5 ms, p99 <= 25 ms, every event sent): {'met' if ok else 'NOT met'}")
    return ok


def orchestrate(opts: argparse.Namespace) -> int:
    env = {**os.environ, "SIGNUP_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}
    print(f"webhook intake on {HOST}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "recipes").mkdir()
        (folder / "recipes" / "signup.yaml").write_text(RECIPE, "utf-8")
        ok = True
        if opts.only in (None, "throughput"):
            ok = throughput(folder, env, opts)
        if opts.only in (None, "latency"):
            ok = latency(folder, env, opts) and ok
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6000, help="webhooks per round")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per server")
    parser.add_argument("--rate", type=float, default=100.0, help="latency: webhooks per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency: how long")
    parser.add_argument(
        "--client",
        choices=["httpx", "raw"],
        default="raw",
        help="throughput load generator (default raw: pre-serialized HTTP/1.1 on keep-alive)",
    )
    parser.add_argument("--only", choices=["throughput", "latency"], help="run one part")
    parser.add_argument("--dump", help="latency: write the raw times to this JSON file")
    parser.add_argument("--role", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    opts.count = min(max(1, opts.count), 50_000)
    opts.seconds = min(max(1.0, opts.seconds), 60.0)
    opts.rate = min(max(1.0, opts.rate), 1000.0)
    if opts.role == "bare":
        serve(bare_app(), opts.port)
    elif opts.role == "fake":
        serve(fake_vendors_app(), opts.port)
    elif opts.role in ("flood", "steady"):
        with asyncio.Runner(loop_factory=use_uvloop()) as runner:
            if opts.role == "flood":
                load = flood_raw if opts.client == "raw" else flood
                result = runner.run(load(opts.url, opts.tag, opts.count, opts.concurrency))
            else:
                result = runner.run(steady(opts.url, opts.tag, opts.rate, opts.seconds))
        print(json.dumps(result))
    else:
        return orchestrate(opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
