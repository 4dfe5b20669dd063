"""Child processes for the benches that run a real runner and a loopback vendor: started in a
log's folder, stopped with SIGTERM (then SIGKILL), and waited for until ``/healthz`` answers."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["process", "wait_ready"]


@contextmanager
def process(
    args: list[str], env: dict[str, str], log: Path, *, stop_s: float = 15.0
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        # started in the log's folder: ``python -m`` puts its working directory first on
        # sys.path, and a checkout there would shadow the ``automations`` being measured
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(stop_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, startup_s: float) -> None:
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not start in {startup_s:g} s:\n{log.read_text()[-2000:]}")
