"""Compile a database table trigger (``trigger.table.database``) and a recipe's ``write_back``.

Without a database at hand lint checks what the recipe says: the key, ``changed_by`` and every
referenced column against ``columns:`` when it is given, a query that is one ``SELECT``, a
password pasted into the URL (SEC001), ``write_back`` only on a database ``table``. With
``lint --connect`` (``CompileContext.connect``) it also opens the database and checks that the
table (or query) can be read and has the key, ``changed_by``, every referenced column and every
``write_back`` column (DBT001, DBT004, REF001, TBL002).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from automations.errors import TableDatabaseError
from automations.model import DbTableSpec, ExistingRows, TableTrigger, Trigger
from automations.recipes.context import CompileContext
from automations.recipes.structure import did_you_mean
from automations.recipes.yamlsource import Path_
from automations.templates import ColumnRef, EnvRef, StepRef, Template, iter_refs, parse_template
from automations.triggers.schedule import parse_every
from automations.triggers.table_db import (
    connect,
    env_names,
    is_postgres_url,
    shown_database,
)
from automations.triggers.table_files import outside_problem

if TYPE_CHECKING:
    from automations.recipes.triggers import KnownColumns

__all__ = [
    "ERROR_STEP",
    "check_connected",
    "compile_db_table",
    "compile_write_back",
    "connected_columns",
    "shown_table",
]

#: ``/@error`` in a ``write_back`` template: the run's error (null when it succeeded).
ERROR_STEP = "error"
_SELECT = re.compile(r"\s*(select|with)\b", re.IGNORECASE)


def _poll(ctx: CompileContext, path: Path_, raw: Any) -> float:
    if raw is None:
        return 5.0
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return max(float(raw), 0.1)
    if isinstance(raw, str):
        try:
            return parse_every(raw).total_seconds()
        except ValueError as exc:
            ctx.report(path, "SCD003", str(exc))
    return 5.0


def _database(ctx: CompileContext, path: Path_, text: str) -> str:
    """The database as compiled: a URL as written, a SQLite path made absolute (unless it starts
    with a variable); SEC001 for a password written into the URL, TBL003 for a SQLite file
    outside the recipes directory."""
    if is_postgres_url(text):
        try:
            password = urlsplit(text).password
        except ValueError:
            password = None
        if password and not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", password):
            ctx.report(
                path,
                "SEC001",
                "a password is pasted into the database URL; put it in an environment variable "
                "and write it as ${DB_PASSWORD} (postgresql://user:${DB_PASSWORD}@host/db), or "
                "give the whole URL as ${DATABASE_URL}",
            )
        return text
    if text.startswith("${"):
        return text
    file = ctx.base_dir / text
    problem = outside_problem(file, ctx.tables.roots) if "${" not in text else None
    if problem is not None:
        ctx.report(path, "TBL003", f"database file {text} is not allowed: {problem}")
    return os.path.realpath(file) if "${" not in text else str(file)


def compile_db_table(ctx: CompileContext, path: Path_, raw: dict[str, Any]) -> DbTableSpec:
    """The trigger's spec (``reads`` and ``written`` are filled in by the compiler)."""
    run_on = raw.get("run_on", ["added"])
    run_on = run_on if isinstance(run_on, list) else ["added"]
    explicit = raw.get("columns")
    flood = raw.get("flood_limit", 100)
    query = raw.get("query") if isinstance(raw.get("query"), str) else None
    if query is not None and (not _SELECT.match(query) or ";" in query.strip().rstrip(";")):
        ctx.report(
            (*path, "query"),
            "DBT002",
            "query must be one SELECT (or WITH ... SELECT) statement, without ';' inside: it is "
            "read as a subquery, select ... from (your query)",
        )
    text = str(raw.get("database", ""))
    changed_by = raw.get("changed_by")
    return DbTableSpec(
        database=_database(ctx, (*path, "database"), text) if text else "",
        key=str(raw.get("key", "")),
        table=raw.get("table") if isinstance(raw.get("table"), str) else None,
        query=query,
        changed_by=changed_by if isinstance(changed_by, str) and changed_by else None,
        poll_s=_poll(ctx, (*path, "poll"), raw.get("poll")),
        run_on_added="added" in run_on,
        run_on_updated="updated" in run_on,
        existing_rows=ExistingRows.RUN if raw.get("existing_rows") == "run" else ExistingRows.SKIP,
        columns=tuple(str(c) for c in explicit) if isinstance(explicit, list) else None,
        flood_limit=flood if isinstance(flood, int) and not isinstance(flood, bool) else 100,
        env_names=env_names(text),
    )


def connected_columns(ctx: CompileContext, path: Path_, spec: DbTableSpec) -> list[str] | None:
    """Under ``lint --connect``: the columns of the table (or query), or ``None`` (and DBT001)
    when it cannot be read."""
    if not ctx.connect or not spec.database or (spec.table is None) == (spec.query is None):
        return None
    where = (*path, "table" if spec.table is not None else "query")
    conn = None
    try:
        conn = connect(spec.database, ctx.env, table=spec.table, query=spec.query)
        conn.open()
    except TableDatabaseError as exc:
        if conn is not None:
            conn.close()
        ctx.report((*path, "database"), "DBT001", f"cannot check the table: {exc}")
        return None
    try:
        return conn.columns()
    except TableDatabaseError as exc:
        ctx.report(where, "DBT001", f"{exc}; check the name and that the user may read it")
        return None
    finally:
        conn.close()


def check_connected(
    ctx: CompileContext, path: Path_, spec: DbTableSpec, names: list[str], shown_table: str
) -> None:
    """DBT004 for ``changed_by`` when the connected table lacks it."""
    if spec.changed_by is not None and spec.changed_by not in names:
        ctx.report(
            (*path, "changed_by"),
            "DBT004",
            f'changed_by column "{spec.changed_by}" is not in {shown_table}'
            f"{did_you_mean(spec.changed_by, names)}",
        )


def compile_write_back(
    ctx: CompileContext,
    raw: Any,
    trigger: Trigger | None,
    known: KnownColumns,
    steps: list[str],
    env: set[str],
) -> tuple[tuple[str, Template], ...]:
    """``write_back:`` as (column, template) pairs (``known``: the row's columns, and under
    ``--connect`` the table's), with its findings: only on a database table
    (DBT003) with ``table:`` (DBT005), never the key (DBT006), ``/@step`` naming a step of the
    recipe or ``/@error`` (REF002), and under ``--connect`` each column in the table (DBT004)."""
    if not isinstance(raw, dict):
        return ()
    spec = trigger.table if isinstance(trigger, TableTrigger) else None
    if not isinstance(spec, DbTableSpec):
        kind = "a file table (CSV, JSONL)" if spec is not None else "this trigger"
        ctx.report(
            ("write_back",),
            "DBT003",
            f"write_back writes into a database table's row; {kind} cannot be written back: "
            "remove write_back, or keep the rows in a SQLite or PostgreSQL table "
            "(trigger.table.database)",
            at_key=True,
        )
        return ()
    if spec.table is None:
        ctx.report(
            ("write_back",),
            "DBT005",
            "write_back needs trigger.table.table: the rows of a query cannot be written back; "
            "name the table the query reads",
            at_key=True,
        )
    out: list[tuple[str, Template]] = []
    known_steps = [*steps, ERROR_STEP]
    for column, value in raw.items():
        name = str(column)
        at: Path_ = ("write_back", column)
        if name == spec.key:
            ctx.report(
                at,
                "DBT006",
                f'write_back cannot write the key column "{name}": it finds the row by it',
                at_key=True,
            )
            continue
        table_columns = known.table_columns
        if table_columns is not None and name not in table_columns:
            ctx.report(
                at,
                "DBT004",
                f'write_back column "{name}" is not in {spec.table}'
                f"{did_you_mean(name, table_columns)}; add it to the table first",
                at_key=True,
            )

        def bad_ref(rel: Path_, msg: str, _at: Path_ = at) -> None:
            ctx.report((*_at, *rel), "REF003", f"invalid reference: {msg}")

        tpl = parse_template(value, bad_ref)
        for rpath, ref in iter_refs(tpl, at):
            if isinstance(ref, StepRef) and ref.step not in known_steps:
                ctx.report(
                    rpath,
                    "REF002",
                    f'"/@{ref.step}" does not name a step of this recipe'
                    f"{did_you_mean(ref.step, known_steps)}; write_back reads any step's "
                    "response (/@id.field) and the run's error (/@error)",
                    needle="/@" + ref.step,
                )
            elif isinstance(ref, EnvRef):
                env.add(ref.name)
            elif (
                isinstance(ref, ColumnRef)
                and known.names is not None
                and ref.column not in known.names
            ):
                ctx.report(
                    rpath,
                    "REF001",
                    f'unknown column "{ref.column}"{did_you_mean(ref.column, known.names)}; '
                    f"columns come from {known.source}",
                    severity=known.severity,
                    needle="/" + ref.column,
                )
        out.append((name, tpl))
    return tuple(out)


def shown_table(spec: DbTableSpec) -> str:
    what = f"table {spec.table}" if spec.table is not None else "the query's result"
    return f"{what} in {shown_database(spec.database)}"
