"""Compile a recipe's ``trigger:`` into a trigger value, reporting what is wrong with it."""

from __future__ import annotations

import enum
import os
import re
import zoneinfo
from pathlib import Path
from typing import Any, TypeVar

from jmespath.exceptions import ParseError

from automations.conditions import Condition, compile_expression
from automations.diagnostics import Severity
from automations.errors import TableFileError
from automations.model import (
    DbTableSpec,
    ExistingRows,
    Missed,
    ScheduleTrigger,
    TableSpec,
    TableTrigger,
    Trigger,
    VerifyScheme,
    WebhookTrigger,
)
from automations.recipes.context import CompileContext
from automations.recipes.db_tables import (
    check_connected,
    compile_db_table,
    connected_columns,
    shown_table,
)
from automations.recipes.structure import did_you_mean
from automations.recipes.tables import read_columns
from automations.recipes.yamlsource import Path_
from automations.triggers.schedule import parse_every, validate_cron
from automations.triggers.table_files import outside_problem
from automations.triggers.table_records import table_format

__all__ = ["KnownColumns", "compile_expr", "compile_trigger"]

_ENV_ONLY = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}\Z")
_BARE_ENV = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)\Z")


E = TypeVar("E", bound=enum.Enum)


def _enum(cls: type[E], value: Any, default: E) -> E:
    """``cls(value)``, or ``default`` when the value is invalid (the schema check reported it)."""
    try:
        return cls(value)
    except ValueError:
        return default


class KnownColumns:
    """The columns a row can have, when they can be known before running."""

    def __init__(
        self, names: list[str] | None, source: str, severity: Severity, *, text: bool = False
    ) -> None:
        self.names = names
        #: Every value is text (a CSV file's): a comparison with a number is never true.
        self.text = text
        self.source = source
        #: Unknown columns are errors when the list is authoritative (CSV header, explicit
        #: ``columns``), warnings when it was read from a JSONL file's first record.
        self.severity = severity
        #: A database table's own columns, when ``lint --connect`` read them (``write_back``
        #: columns are checked against them).
        self.table_columns: list[str] | None = None


def compile_expr(ctx: CompileContext, path: Path_, source: Any) -> Condition | None:
    if not isinstance(source, str):
        return None
    try:
        return compile_expression(source)
    except ParseError as exc:
        where = exc.lex_position if isinstance(exc.lex_position, int) else 0
        ctx.report(
            path,
            "EXP001",
            f"invalid JMESPath: {exc.msg} near {exc.token_value!r}; "
            "quote column names with spaces (\"First Name\") and compare strings with '...'",
            offset=where,
        )
    except Exception as exc:  # jmespath raises a few other kinds for lexer errors
        ctx.report(path, "EXP001", f"invalid JMESPath: {exc}")
    return None


def _table(ctx: CompileContext, path: Path_, raw: dict[str, Any]) -> tuple[TableSpec, KnownColumns]:
    declared = str(raw.get("path", ""))
    file = ctx.base_dir / declared
    run_on = raw.get("run_on", ["added"])
    run_on = run_on if isinstance(run_on, list) else ["added"]
    explicit = raw.get("columns")
    flood = raw.get("flood_limit", 100)
    spec = TableSpec(
        path=Path(os.path.realpath(file)),  # Path.resolve() without its extra stat()
        key=str(raw.get("key", "")),
        run_on_added="added" in run_on,
        run_on_updated="updated" in run_on,
        existing_rows=_enum(ExistingRows, raw.get("existing_rows"), ExistingRows.SKIP),
        columns=tuple(explicit) if isinstance(explicit, list) else None,
        flood_limit=flood if isinstance(flood, int) and not isinstance(flood, bool) else 100,
        roots=ctx.tables.roots,
        max_bytes=ctx.tables.max_bytes,
    )
    csv = file.suffix.lower() == ".csv"
    refused = _refused(ctx, (*path, "path"), declared, file, spec.path)
    if isinstance(explicit, list):
        known = KnownColumns(
            [str(c) for c in explicit], "the table's columns", Severity.ERROR, text=csv
        )
    elif refused:
        known = KnownColumns(None, "", Severity.WARNING)
    else:
        try:
            names, how = read_columns(file, ctx.tables)
        except TableFileError as exc:
            ctx.report((*path, "path"), "TBL004", f"cannot use table {declared}: {exc}")
            names, how = None, ""
            refused = True
        if refused:
            known = KnownColumns(None, how, Severity.WARNING)
        elif names is None:
            ctx.report(
                (*path, "path"),
                "TBL001",
                f"cannot read the columns of {raw.get('path')}: {how}; "
                "/Column references are not checked (list them in columns: to check them)",
                severity=Severity.WARNING,
            )
            known = KnownColumns(None, how, Severity.WARNING)
        elif how == "header":
            known = KnownColumns(
                names, f"the header of {raw.get('path')}", Severity.ERROR, text=csv
            )
        else:
            src = f"the first record of {raw.get('path')}"
            known = KnownColumns(names, src, Severity.WARNING)
    if known.names is not None and spec.key and spec.key not in known.names:
        ctx.report(
            (*path, "key"),
            "TBL002",
            f'key column "{spec.key}" is not in {known.source}'
            f"{did_you_mean(spec.key, known.names)}",
            severity=known.severity,
        )
    return spec, known


def _db_table(
    ctx: CompileContext, path: Path_, raw: dict[str, Any]
) -> tuple[DbTableSpec, KnownColumns]:
    spec = compile_db_table(ctx, path, raw)
    connected = connected_columns(ctx, path, spec)
    if spec.columns is not None:
        known = KnownColumns(list(spec.columns), "the table's columns", Severity.ERROR)
    elif connected is not None:
        known = KnownColumns(connected, shown_table(spec), Severity.ERROR)
    else:
        known = KnownColumns(None, "", Severity.WARNING)
    known.table_columns = connected
    if connected is not None:
        check_connected(ctx, path, spec, connected, shown_table(spec))
        if spec.key and spec.key not in connected:
            ctx.report(
                (*path, "key"),
                "TBL002",
                f'key column "{spec.key}" is not in {shown_table(spec)}'
                f"{did_you_mean(spec.key, connected)}",
            )
    elif known.names is not None and spec.key and spec.key not in known.names:
        ctx.report(
            (*path, "key"),
            "TBL002",
            f'key column "{spec.key}" is not in {known.source}'
            f"{did_you_mean(spec.key, known.names)}",
        )
    if (
        known.names is not None
        and spec.changed_by is not None
        and spec.changed_by not in known.names
        and connected is None
    ):
        ctx.report(
            (*path, "changed_by"),
            "DBT004",
            f'changed_by column "{spec.changed_by}" is not in {known.source}'
            f"{did_you_mean(spec.changed_by, known.names)}",
        )
    return spec, known


def _refused(ctx: CompileContext, at: Path_, declared: str, file: Path, real: Path) -> bool:
    """Report (and say ``True``) when the table path may not be read at all: outside the
    recipes directory (TBL003), or a link to a file that is not .csv / .jsonl (TBL004)."""
    if not declared:
        return True  # the schema check reported it
    problem = outside_problem(file, ctx.tables.roots)
    if problem is not None:
        ctx.report(at, "TBL003", f"table path {declared} is not allowed: {problem}")
        return True
    if real.name != file.name:
        try:
            table_format(real)
        except ValueError:
            ctx.report(
                at,
                "TBL004",
                f"table path {declared} links to {real.name}, which is not a .csv or .jsonl "
                "file (the format comes from the real file's name); link to a file named "
                "*.csv or *.jsonl",
            )
            return True
    return False


def _webhook(ctx: CompileContext, path: Path_, raw: dict[str, Any]) -> WebhookTrigger:
    verify = raw.get("verify")
    verify = verify if isinstance(verify, dict) else {}  # the schema check reported it
    scheme = _enum(VerifyScheme, verify.get("scheme"), VerifyScheme.NONE)
    secret = verify.get("secret")
    secret_env: str | None = None
    vpath = (*path, "verify")
    if scheme is VerifyScheme.NONE:
        ctx.report(
            (*vpath, "scheme"),
            "SEC002",
            "webhook deliveries are not verified: anyone who knows the URL can trigger this "
            "recipe; use standard-webhooks, openphone or token",
            severity=Severity.WARNING,
        )
    elif secret is None:
        ctx.report(
            vpath,
            "SCH002",
            f"verify needs a secret for scheme {scheme.value}: secret: ${{WEBHOOK_SECRET}}",
            at_key=True,
        )
    elif isinstance(secret, str):
        m = _ENV_ONLY.match(secret)
        bare = _BARE_ENV.match(secret)
        if m:
            secret_env = m.group(1)
        elif bare:
            ctx.report(
                (*vpath, "secret"),
                "ENV003",
                f"${bare.group(1)} without braces is the text ${bare.group(1)}, not the "
                f"variable; environment variables are written ${{{bare.group(1)}}}",
            )
        else:
            ctx.report(
                (*vpath, "secret"),
                "SEC001",
                "a secret is pasted into the recipe; put it in an environment variable and "
                "write secret: ${WEBHOOK_SECRET}",
            )
    if scheme is VerifyScheme.TOKEN and not verify.get("header"):
        ctx.report(
            vpath, "SCH002", "scheme token needs header: the header carrying the token", at_key=True
        )
    event_id = compile_expr(ctx, (*path, "event_id"), raw.get("event_id"))
    return WebhookTrigger(
        path=str(raw.get("path", "")),
        scheme=scheme,
        secret_env=secret_env,
        header=verify.get("header"),
        event_id=event_id,
    )


def _schedule(
    ctx: CompileContext, path: Path_, raw: dict[str, Any]
) -> tuple[ScheduleTrigger, KnownColumns]:
    tz = raw.get("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(str(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        ctx.report(
            (*path, "timezone"),
            "SCD002",
            f'unknown time zone "{tz}"; use an IANA name such as America/New_York or UTC',
        )
        tz = "UTC"
    cron = raw.get("cron")
    if isinstance(cron, str) and (problem := validate_cron(cron, str(tz))):
        ctx.report((*path, "cron"), "SCD001", problem)
    every = None
    if isinstance(raw.get("every"), str):
        try:
            every = parse_every(raw["every"])
        except ValueError as exc:
            ctx.report((*path, "every"), "SCD003", str(exc))
    fire_columns = ["fired_at", "fired_date"]
    known = KnownColumns(fire_columns, "the schedule (fired_at, fired_date)", Severity.ERROR)
    table = None
    if isinstance(raw.get("table"), dict):
        table, known = _table(ctx, (*path, "table"), raw["table"])
        if known.names is not None:
            known.names = [*known.names, *fire_columns]
    trig = ScheduleTrigger(
        cron=cron if isinstance(cron, str) else None,
        timezone=str(tz),
        every=every,
        missed=_enum(Missed, raw.get("missed"), Missed.SKIP),
        table=table,
    )
    return trig, known


def compile_trigger(ctx: CompileContext, raw: Any) -> tuple[Trigger | None, KnownColumns]:
    """The trigger value (``None`` when the structure is too broken to build one)."""
    unknown = KnownColumns(None, "", Severity.WARNING)
    if not isinstance(raw, dict) or len(raw) != 1:
        return None, unknown
    kind, body = next(iter(raw.items()))
    if not isinstance(body, dict):
        return None, unknown
    path: Path_ = ("trigger", kind)
    if kind == "table" and "database" in body:
        db_spec, known = _db_table(ctx, path, body)
        return TableTrigger(db_spec), known
    if kind == "table":
        spec, known = _table(ctx, path, body)
        return TableTrigger(spec), known
    if kind == "webhook":
        return _webhook(ctx, path, body), unknown
    if kind == "schedule":
        return _schedule(ctx, path, body)
    return None, unknown
