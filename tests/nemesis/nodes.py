"""``automations run`` processes sharing one database: each a node with its own id and port.

A node is driven as an operator drives one: started, stopped with SIGTERM, and (by the nemesis)
killed with SIGKILL, paused with SIGSTOP and resumed with SIGCONT. Its output goes to one log
file per start, read back when a test fails.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["Node"]


@dataclass
class Node:
    """One runner. ``args`` follow ``automations run DIRECTORY --port PORT``."""

    name: str
    directory: Path
    port: int
    args: Sequence[str]
    env: Mapping[str, str]
    logs_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    paused: bool = False
    #: Held while the nemesis changes this node's process (no two faults on one node at once).
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, wait_s: float = 30.0) -> None:
        assert not self.running, f"{self.name} is running"
        self.starts += 1
        self.paused = False
        log = open(self._log(self.starts), "wb")  # noqa: SIM115
        cmd = [
            sys.executable,
            *("-m", "automations", "run", str(self.directory)),
            *("--port", str(self.port)),
            *self.args,
        ]
        try:
            # started in the logs' folder: ``python -m`` puts its working directory first on
            # sys.path, and nothing there may shadow the ``automations`` under test
            self.proc = subprocess.Popen(
                cmd, env=dict(self.env), cwd=self.logs_dir, stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            log.close()
        if wait_s:
            self.wait_healthy(wait_s)

    def wait_healthy(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc.returncode}:\n{self.log[-4000:]}"
                    )
                try:
                    if client.get(self.base_url + "/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not answer /healthz in {wait_s:g} s")
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL, also delivered to a stopped process
        self.proc.wait()
        self.paused = False

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM (after SIGCONT, should it be paused); the exit status (SIGKILL after
        ``timeout_s``: then the status is negative)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc is not None else 0
        if self.paused:
            self.resume()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def _log(self, n: int) -> Path:
        return self.logs_dir / f"{self.name}-{n}.log"

    @property
    def log(self) -> str:
        """Everything every start of this node wrote."""
        return "".join(
            f"--- {self.name} start {n}\n" + self._log(n).read_text("utf-8", "replace")
            for n in range(1, self.starts + 1)
        )
