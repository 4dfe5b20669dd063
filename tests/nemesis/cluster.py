"""A private PostgreSQL server for one test, which the test may crash and restart.

Started the way ``.ci/postgres`` starts the shared test server: the Debian binaries, a cluster
in a new temporary directory, listening only on a Unix socket there; as root, ``initdb`` and
``pg_ctl`` run as the ``postgres`` user (``runuser``), since they refuse root. It is never the
shared ``AUTOMATIONS_TEST_PG`` server: other tests use that one, and this one gets restarted.

Durability: ``fsync`` is off (the machine does not crash in a test, only the server does) but
``synchronous_commit`` stays on, as in production: an immediate stop loses no committed
transaction, so a ``202`` answered and a step marked ``sending`` survive the crash.

Without PostgreSQL binaries the test is skipped, except under ``CI=true`` (``.ci/run``
installs them), where it fails.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "bindir", "private_server"]


def bindir() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``, as ``.ci/postgres`` finds it."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        found = Path(out.stdout.strip())
        if (found / "initdb").exists():
            return found
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class PostgresServer:
    """A cluster in ``directory`` (created by ``init``), served on the socket there."""

    def __init__(self, binaries: Path, directory: Path, *, durable: bool = False) -> None:
        self.binaries = binaries
        self.directory = directory
        #: fsync and full_page_writes on, as in production (benches); off for the tests.
        self.durable = durable
        self.data = directory / "data"
        self.log = directory / "server.log"
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.directory}"

    def _run(self, *args: str, timeout: float = 60.0) -> None:
        out = subprocess.run(
            [*_as_postgres(), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if out.returncode != 0:
            log = self.log.read_text("utf-8", "replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed:\n{out.stdout}{out.stderr}\n{log}")

    def init(self) -> None:
        self._run(
            str(self.binaries / "initdb"),
            *("-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"),
            *(() if self.durable else ("--no-sync",)),
        )

    def start(self) -> None:
        options = f"-k {self.directory} -c listen_addresses='' -c max_connections=60"
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        self._run(
            str(self.binaries / "pg_ctl"),
            *("-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options),
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def crash_and_restart(self, down_s: float = 0.0) -> None:
        """``pg_ctl stop -m immediate`` (every backend killed, no checkpoint: recovery at the
        next start), ``down_s`` seconds down, then started again."""
        self.stop("immediate")
        time.sleep(down_s)
        self.start()
        self.restarts += 1

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """One statement on a connection of its own (autocommit); its rows, if any."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            cur = conn.execute(sql.encode(), params)
            return cur.fetchall() if cur.description else []

    def terminate(self, application_name_prefix: str) -> int:
        """``pg_terminate_backend`` every connection whose ``application_name`` starts with
        the prefix (one node's); how many were terminated."""
        rows = self.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name LIKE %s AND pid <> pg_backend_pid()",
            (application_name_prefix.replace("%", r"\%") + "%",),
        )
        return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]

    def application_names(self) -> list[str]:
        rows = self.execute(
            "SELECT application_name FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND pid <> pg_backend_pid() ORDER BY 1"
        )
        return [str(r[0]) for r in rows]


@contextlib.contextmanager
def private_server(*, durable: bool = False) -> Iterator[PostgresServer]:
    """A started private server, stopped and deleted at the end; skips (fails under
    ``CI=true``) when PostgreSQL is not installed."""
    binaries = bindir()
    if binaries is None:
        reason = "PostgreSQL is not installed (no initdb): the multi-node test needs a server"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: it must run, not be skipped)")
        pytest.skip(reason)
    # not under pytest's tmp_path: its folders are private to root, and the server runs as
    # postgres. A short path, too: a Unix socket's path has a 107-byte limit.
    directory = Path(tempfile.mkdtemp(prefix="automations-nemesis-pg."))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres")
    server = PostgresServer(binaries, directory, durable=durable)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
