"""``automations run``: the long-running service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import click
import uvicorn

from automations.cli import friendly_errors
from automations.cli.history import db_option, resolve_db
from automations.connections import Connections, ConnectionSettings, pacing_for
from automations.console.server import (
    DEFAULT_UI_HOST,
    DEFAULT_UI_PORT,
    ConsoleServer,
    check_console_bind,
)
from automations.errors import ConfigError, StartupError
from automations.intake.link import IntakeLink
from automations.intake.priority import runner_nice
from automations.intake.settings import IntakeConfig
from automations.runner.app import build_app
from automations.runner.claims import ClaimSettings, node_name
from automations.runner.embedded import EmbeddedServer
from automations.runner.httpguard import (
    DEFAULT_LIMITS,
    HttpLimits,
    fit_to_descriptors,
    guarded_protocol,
)
from automations.runner.lock import RunnerLock
from automations.runner.logs import configure_logging, log_secrets
from automations.runner.service import Runner, RunnerOptions
from automations.stores import SQLiteStore, is_postgres_url, open_store
from automations.stores.sqlite import VacuumChange
from automations.stores.sqlite_inbox import InboxMover
from automations.triggers.webhook import DEFAULT_MAX_BODY

__all__ = ["COMMANDS"]

log = logging.getLogger("automations.runner")


def _listen(host: str, port: int, option: str = "--port") -> socket.socket:
    """The server's socket, bound and listening before anything else starts: a port that is
    taken stops ``run`` before a trigger has consumed anything."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise StartupError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; stop what uses it, or "
            f"pick another {option}. Nothing was read or recorded."
        ) from exc
    sock.set_inheritable(True)
    return sock


def _given(*names: str) -> bool:
    """Whether one of these options was given on the command line (not left to its default)."""
    ctx = click.get_current_context()
    return any(ctx.get_parameter_source(n) is not click.core.ParameterSource.DEFAULT for n in names)


def _listen_console(host: str, port: int, *, explicit: bool) -> socket.socket | None:
    """The console's socket. Its default port taken (another runner on this machine) leaves
    this runner without a console, said in a warning; an address asked for must be had."""
    try:
        return _listen(host, port, "--ui-port (or --no-ui)")
    except StartupError as exc:
        if explicit:
            raise
        log.warning("no console: %s", str(exc).split("; stop what uses it")[0])
        log.warning("pass --ui-port to serve the console elsewhere, or --no-ui to say none")
        return None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _serve_http(server: uvicorn.Server, sock: socket.socket) -> None:
    """Serve HTTP (webhooks, ``/healthz``) on an event loop of its own, on its own thread, until
    ``server.should_exit``: recording a webhook never waits for the runs executing, the tables
    being scanned or the history being pruned on the runner's loop (they share only the store,
    each through its own store thread)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def finish(exc: BaseException | None) -> None:
        if done.done():
            return
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)

    def serve() -> None:
        failed: BaseException | None = None
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # handed to the runner's loop, which raises it
            failed = exc
        if not loop.is_closed():
            loop.call_soon_threadsafe(finish, failed)

    thread = threading.Thread(target=serve, name="http-intake", daemon=True)
    thread.start()
    try:
        await asyncio.shield(done)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 30)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop

        return uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is optional (not on Windows)
        return None


#: The largest run database the runner converts to give space back by itself at start-up (a
#: few seconds); a larger one is left to ``automations db migrate``, run at a quiet time.
AUTO_VACUUM_BYTES = 256 << 20


def _give_space_back(store: SQLiteStore) -> None:
    """A database from before schema 7 does not shrink when runs are pruned until converted
    once (``SQLiteStore.enable_incremental_vacuum``): small ones are converted here."""
    change = store.enable_incremental_vacuum(max_bytes=AUTO_VACUUM_BYTES)
    if change is VacuumChange.DONE:
        log.info("run store %s converted to give space back when runs are pruned", store.path)
    elif change is not VacuumChange.ALREADY:
        why = {
            VacuumChange.TOO_LARGE: f"it is over {AUTO_VACUUM_BYTES >> 20} MB",
            VacuumChange.NO_SPACE: "the disk has less free space than twice its size",
            VacuumChange.BUSY: "another process has it open",
        }[change]
        log.warning(
            "run store %s keeps its size when runs are pruned (the space is reused, not given "
            "back): %s. Stop the runner and run `automations db migrate --db %s` once (it "
            "rewrites the file: about a minute per GB, twice its size free)",
            store.path,
            why,
            store.path,
        )


def dry_run_db(db: Path) -> Path:
    """Where a dry run records when no --db is given: beside the real database, with
    ``.dry-run`` before its suffix (``automations.db`` -> ``automations.dry-run.db``), so a dry
    run never uses up the events a real run must send."""
    return db.with_name(f"{db.stem}.dry-run{db.suffix or '.db'}")


def _separate_intake(db: str) -> bool:
    """Whether webhooks are taken by an intake process of their own (``automations/intake``):
    always, but for a private in-memory database, or when ``AUTOMATIONS_INTAKE=thread`` asks
    for the intake on a thread of the runner's process."""
    choice = os.environ.get("AUTOMATIONS_INTAKE", "process").strip().lower()
    if choice not in ("process", "thread"):
        raise ConfigError(
            f"AUTOMATIONS_INTAKE must be process or thread, not {choice!r}",
            variable="AUTOMATIONS_INTAKE",
        )
    return choice == "process" and db != ":memory:"


async def _serve(
    directory: Path,
    db: str,
    host: str,
    port: int,
    options: RunnerOptions,
    max_body: int,
    limits: HttpLimits,
    sock: socket.socket,
    ui_sock: socket.socket | None,
    log_format: str,
) -> None:
    store = open_store(db, application_name=f"automations:{options.node}")
    if isinstance(store, SQLiteStore):
        try:
            # every event is recorded before it is answered: a store that cannot be written
            # would answer 500 to every webhook; refuse to start instead, having recorded nothing
            store.check_writable()
            _give_space_back(store)
        except BaseException:
            store.close()
            raise
    env = dict(os.environ)
    separate = _separate_intake(db)
    async with Connections(ConnectionSettings.from_env(env), pacing=pacing_for(store)) as conns:
        runner = Runner(directory, store, conns, env, options)
        fitted = fit_to_descriptors(limits)
        link: IntakeLink | None = None
        server: EmbeddedServer | None = None
        failure: list[str] = []
        if separate:
            config = IntakeConfig(
                db,
                sock.fileno(),
                max_body,
                fitted,
                log_format,
                application_name=f"automations:{options.node}:intake",
            )
            mover = InboxMover(store) if isinstance(store, SQLiteStore) else None
            link = IntakeLink(
                runner, config, sock, mover, failed=lambda why: fail(why), nice=runner_nice(env)
            )
        else:
            server = EmbeddedServer(
                uvicorn.Config(
                    build_app(runner, max_body=max_body),
                    host=host,
                    port=port,
                    http=guarded_protocol(fitted, runner.metrics.intake_rejected),
                    log_level="warning",
                    access_log=False,
                    lifespan="off",
                )
            )
        # the console: its own listener and store connection, on this event loop
        ui = None if ui_sock is None else ConsoleServer(runner, db, env)
        loop = asyncio.get_running_loop()

        def shutdown() -> None:
            log.info("stopping: no new events; finishing runs in flight")
            runner.dispatcher.close(finish_queued=False)
            if link is not None:
                link.stop()
            if server is not None:
                server.should_exit = True
            if ui is not None:
                ui.stop()

        def fail(why: str) -> None:
            log.error("%s: stopping", why)
            failure.append(why)
            shutdown()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, shutdown)
        try:
            await runner.start()
            if link is not None:
                await link.start()
            log.info(
                "serving %d recipe(s) from %s on http://%s:%d%s",
                len(runner.recipes.by_name),
                directory,
                host,
                port,
                " (dry run: nothing is sent)" if options.dry_run else "",
            )
            if link is not None:
                intake = link.wait()
            else:
                assert server is not None
                intake = _serve_http(server, sock)
            if ui is not None and ui_sock is not None:
                host_, port_ = ui_sock.getsockname()[:2]
                log.info("console on http://%s:%d", _url_host(host_), port_)
                await asyncio.gather(intake, ui.serve(ui_sock))
            else:
                await intake
        finally:
            if ui is not None:
                ui.stop()
            if link is not None:
                await link.close()
            await runner.stop()
            if ui is not None:
                ui.close()
            store.close()
    if failure:
        raise StartupError(failure[0])
    log.info("stopped")


@click.command("run")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=int)
@click.option(
    "--ui-host",
    default=DEFAULT_UI_HOST,
    show_default=True,
    help="Where the console listens. Any address other than loopback needs "
    "AUTOMATIONS_UI_TOKEN (a login).",
)
@click.option(
    "--ui-port",
    default=DEFAULT_UI_PORT,
    show_default=True,
    type=click.IntRange(min=0, max=65535),
    help="The console's port (never the webhook port).",
)
@click.option("--no-ui", is_flag=True, help="Serve no console.")
@click.option("--dry-run", is_flag=True, help="Render and audit every run; send nothing.")
@click.option(
    "--concurrency",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Runs executing at once per lane (the provider connections a recipe uses).",
)
@click.option(
    "--grace",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to let in-flight runs finish on SIGTERM / Ctrl-C.",
)
@click.option(
    "--max-body",
    default=DEFAULT_MAX_BODY,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest webhook body accepted, in bytes (413 above).",
)
@click.option(
    "--max-connections",
    default=DEFAULT_LIMITS.max_connections,
    show_default=True,
    type=click.IntRange(min=1),
    help="Open connections at most; beyond it the oldest one still sending its headers is "
    "closed, or the new one answered 503.",
)
@click.option(
    "--header-timeout",
    default=DEFAULT_LIMITS.head_timeout_s,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a connection has to send its request line and headers (408 after).",
)
@click.option(
    "--body-timeout",
    default=DEFAULT_LIMITS.body_timeout_s,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a request has to send its body once its headers are in.",
)
@click.option(
    "--keep-succeeded",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Days to keep succeeded and skipped runs.",
)
@click.option(
    "--keep-failed",
    default=90.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Days to keep failed and unknown runs.",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--allow-tables-outside",
    "tables_outside",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A directory outside DIRECTORY that table files may be in (repeatable).",
)
@click.option(
    "--node-id",
    envvar="AUTOMATIONS_NODE_ID",
    help="This runner's name among the runners sharing a database (default: the host's name): "
    "its leases, its lead and its PostgreSQL connections (application_name automations:ID:...) "
    "show it.",
)
@click.option(
    "--poll-only",
    is_flag=True,
    envvar="AUTOMATIONS_POLL_ONLY",
    help="On PostgreSQL, find waiting runs by polling alone (every second), without LISTEN: "
    "for PgBouncer in transaction mode.",
)
@friendly_errors
def run(
    directory: Path,
    db: str | None,
    host: str,
    port: int,
    ui_host: str,
    ui_port: int,
    no_ui: bool,
    dry_run: bool,
    concurrency: int,
    grace: float,
    max_body: int,
    max_connections: int,
    header_timeout: float,
    body_timeout: float,
    keep_succeeded: float,
    keep_failed: float,
    log_format: str,
    tables_outside: tuple[Path, ...],
    node_id: str | None,
    poll_only: bool,
) -> None:
    """Run the recipes in DIRECTORY: serve webhooks, watch tables, fire schedules; reload
    recipes when their files change. SIGTERM or Ctrl-C stops cleanly (exit 0).

    The port is bound and the database locked and opened before any trigger starts; if that
    fails, nothing is read or recorded (exit 1). One runner per SQLite file; any number of
    runners may share a PostgreSQL database. A dry run without --db records in its own file
    (automations.dry-run.db)."""
    configure_logging(log_format, secrets=log_secrets(os.environ))
    # the intake's thread gets the interpreter within a millisecond of asking (default 5 ms):
    # while runs execute on the runner's thread, each webhook waits for it a few times
    sys.setswitchinterval(0.001)
    if not no_ui:
        if ui_port == port and ui_port != 0:
            raise click.UsageError(
                f"--ui-port {ui_port} is the webhook port: the console has a listener of its "
                "own (the default is 8788)"
            )
        check_console_bind(ui_host, os.environ)
    options = RunnerOptions(
        leader_ttl_s=_seconds(os.environ, "AUTOMATIONS_LEADER_TTL_S", 15.0),
        dry_run=dry_run,
        concurrency=concurrency,
        grace_s=grace,
        keep_succeeded_s=keep_succeeded * 86400,
        keep_failed_s=keep_failed * 86400,
        tables_outside=tables_outside,
        poll_only=poll_only,
        claims=ClaimSettings.from_env(os.environ),
        node=node_name(_node_id(node_id)),
    )
    path = resolve_db(db)
    if dry_run and db is None:
        # a PostgreSQL database from AUTOMATIONS_DB: the dry run records in a local file
        path = str(dry_run_db(Path("automations.db" if is_postgres_url(path) else path)))
        log.info("dry run: recording in %s (automations runs --db %s)", path, path)
    elif dry_run:
        log.warning(
            "dry run into %s: events seen now are recorded as dry runs and will not run for "
            "real later from this database",
            path,
        )
    runner_factory = _loop_factory()
    limits = HttpLimits(
        head_timeout_s=header_timeout,
        body_timeout_s=body_timeout,
        max_connections=max_connections,
    )
    # one runner per SQLite file; several share a PostgreSQL database (claims with leases)
    local = str(path) != ":memory:" and not is_postgres_url(path)
    with RunnerLock(Path(path)) if local else contextlib.nullcontext():
        sock = _listen(host, port)
        ui_sock = None
        try:
            if not no_ui:
                ui_sock = _listen_console(ui_host, ui_port, explicit=_given("ui_host", "ui_port"))
            with asyncio.Runner(loop_factory=runner_factory) as r:
                r.run(
                    _serve(
                        directory,
                        path,
                        host,
                        port,
                        options,
                        max_body,
                        limits,
                        sock,
                        ui_sock,
                        log_format,
                    )
                )
        finally:
            sock.close()
            if ui_sock is not None:
                ui_sock.close()


def _node_id(value: str | None) -> str | None:
    """``--node-id`` checked: a short name of printable characters (it goes into lease owners,
    log lines and ``application_name``, which PostgreSQL cuts at 63 bytes)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > 40 or not value.isprintable():
        raise click.BadParameter(
            f"{value[:60]!r}: give up to 40 printable characters, e.g. the host's name",
            param_hint="--node-id / AUTOMATIONS_NODE_ID",
        )
    return value


def _seconds(env: dict[str, str] | os._Environ[str], variable: str, default: float) -> float:
    """Seconds from ``variable`` (1 to 3600), else ``default``."""
    text = env.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
        if not 1.0 <= value <= 3600.0:
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"{variable} must be seconds from 1 to 3600, not {text!r}", variable=variable
        ) from None
    return value


COMMANDS = [run]
