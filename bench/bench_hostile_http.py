"""How long an outsider can stall the runner's event loop, on loopback.

A real ``automations run`` (a subprocess, ``--dry-run``, one Quo webhook recipe) is probed with
``GET /healthz`` on a fresh connection every 50 ms while one attack runs; the probe's latency is
the event-loop stall a genuine delivery would see. Attacks:

- ``signature``: one POST with a 1 MB body and a 1 MB ``openphone-signature`` header of 60,000
  entries (issue 9: 41 s of HMACs before the fix); also, after the fix, the same with 9 entries
  (under the header limit: the signature-count cap answers);
- ``slow``: 2,000 connections that each send a request head one byte per second for 15 s;
- ``header``: one request whose single header line is 64 MiB (issue 9: 256 MiB took 82 s and
  left 319 MB); also reports the runner's peak RSS.

Prints, per attack: the attack's own answer and time, the probe's median and maximum latency,
probes that failed, and (slow) how many attacker connections were still open at the end.

Run: ``python bench/bench_hostile_http.py [signature|slow|header ...]`` (about 1 min; bounded: every
wait has a timeout). ``BENCH_SRC=/path/to/checkout`` measures another checkout's code (the
"before" figures), with this interpreter.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

SECRET = base64.b64encode(b"bench-openphone-signing-key").decode()
RECIPE = """name: quo-hook
trigger:
  webhook:
    path: /hooks/quo
    verify: {scheme: openphone, secret: "${QUO_HOOK_SECRET}"}
actions:
  - http.request: {method: POST, url: "https://example.invalid/x"}
"""
SLOW_CONNECTIONS = 2_000
SLOW_SECONDS = 15.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Runner:
    def __init__(self, workdir: Path) -> None:
        (workdir / "recipes").mkdir()
        (workdir / "recipes" / "hook.yaml").write_text(RECIPE)
        self.port = _free_port()
        src = os.environ.get("BENCH_SRC", str(Path(__file__).resolve().parents[1]))
        env = {**os.environ, "PYTHONPATH": src, "QUO_HOOK_SECRET": SECRET}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "automations", "run", str(workdir / "recipes"), "--dry-run",
             "--db", str(workdir / "runs.db"), "--port", str(self.port)],
            env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url("/healthz"), timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit("the runner did not start")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Probe:
    """``GET /healthz`` on a new connection every 50 ms, in a thread."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                with httpx.Client(timeout=60) as c:
                    ok = c.get(self.runner.url("/healthz")).status_code == 200
            except httpx.TransportError:
                ok = False
            self.latencies.append(time.perf_counter() - started)
            self.failures += not ok
            self._stop.wait(0.05)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(70)

    def report(self) -> str:
        lat = sorted(self.latencies) or [0.0]
        return (
            f"probe /healthz: {len(lat)} probes, median {statistics.median(lat) * 1000:.1f} ms, "
            f"max {lat[-1] * 1000:.1f} ms, failed {self.failures}"
        )


HEADER_MIB = 64


def _header_attack(runner: Runner) -> str:
    head = b"POST /hooks/quo HTTP/1.1\r\nHost: t\r\nX-Pad: "
    chunk = b"a" * (1 << 20)
    started = time.perf_counter()
    answer = b""
    with socket.create_connection(("127.0.0.1", runner.port), timeout=300) as sock:
        try:
            sock.sendall(head)
            for _ in range(HEADER_MIB):
                sock.sendall(chunk)
            sock.sendall(b"\r\n\r\n")
        except OSError:
            pass
        try:
            answer = sock.recv(64)
        except OSError as exc:
            answer = type(exc).__name__.encode()
    took = time.perf_counter() - started
    peak = "?"
    with open(f"/proc/{runner.proc.pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak = line.split(":", 1)[1].strip()
    first = answer.split(b"\r\n", 1)[0].decode("latin-1") or "(closed)"
    return f"{HEADER_MIB} MiB header: {first!r} after {took * 1000:.0f} ms; runner peak RSS {peak}"


def _signature_attack(runner: Runner, entries: int) -> str:
    body = b'{"id": "EV1", "pad": "' + b"x" * 1_000_000 + b'"}'
    entry = "hmac;1;1;" + base64.b64encode(b"z" * 6).decode()  # 17 bytes: 60,000 make ~1 MB
    header = ",".join([entry] * entries)
    started = time.perf_counter()
    try:
        with httpx.Client(timeout=120) as c:
            res = c.post(
                runner.url("/hooks/quo"), content=body, headers={"openphone-signature": header}
            )
        answer = str(res.status_code)
    except httpx.HTTPError as exc:
        answer = type(exc).__name__
    took = time.perf_counter() - started
    return f"{entries} entries ({len(header):,} bytes): answered {answer} in {took * 1000:.0f} ms"


async def _slow_clients(runner: Runner) -> str:
    head = f"POST /hooks/quo HTTP/1.1\r\nHost: 127.0.0.1:{runner.port}\r\nX-Slow: ".encode()

    async def one() -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", runner.port)
        except OSError:
            return False
        deadline = time.monotonic() + SLOW_SECONDS
        alive = True
        try:
            for i in range(len(head)):
                if time.monotonic() > deadline:
                    break
                writer.write(head[i : i + 1])
                await writer.drain()
                try:  # the server's answer (408, 503) or its close ends this client
                    await asyncio.wait_for(reader.read(1024), timeout=1.0)
                except TimeoutError:
                    continue
                alive = False  # answered (408, 503) or closed by the server
                break
        except OSError:
            alive = False
        finally:
            writer.close()
        return alive

    results = await asyncio.gather(*(one() for _ in range(SLOW_CONNECTIONS)))
    open_at_end = sum(results)
    return (
        f"{SLOW_CONNECTIONS} slow connections for {SLOW_SECONDS:.0f} s: "
        f"{open_at_end} still held by the server at the end"
    )


def main(attacks: list[str]) -> None:
    print(f"source: {os.environ.get('BENCH_SRC', 'this checkout')}")
    for attack in attacks:
        with tempfile.TemporaryDirectory() as tmp:
            runner = Runner(Path(tmp))
            try:
                if attack == "signature":
                    for entries in (60_000, 9):
                        with Probe(runner) as probe:
                            what = _signature_attack(runner, entries)
                        print(f"signature: {what}; {probe.report()}")
                elif attack == "header":
                    with Probe(runner) as probe:
                        what = _header_attack(runner)
                    print(f"header: {what}; {probe.report()}")
                elif attack == "slow":
                    with Probe(runner) as probe:
                        what = asyncio.run(_slow_clients(runner))
                    print(f"slow: {what}; {probe.report()}")
            finally:
                runner.stop()


if __name__ == "__main__":
    main(sys.argv[1:] or ["signature", "slow", "header"])
