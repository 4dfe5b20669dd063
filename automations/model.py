"""A compiled recipe: an immutable value.

The loader reads YAML, validates it and compiles it once into these frozen dataclasses
(JMESPath expressions compiled, templates pre-parsed). The runner swaps whole ``Recipe`` values on
hot reload and never mutates one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from automations.conditions import Condition
from automations.templates import Template

__all__ = [
    "Action",
    "DbTableSpec",
    "ExistingRows",
    "Missed",
    "Recipe",
    "RecipeTest",
    "ScheduleTrigger",
    "TableSpec",
    "TableTrigger",
    "Trigger",
    "VerifyScheme",
    "WebhookTrigger",
]


class ExistingRows(enum.Enum):
    """What to do with rows already in a table when the recipe is first activated."""

    #: Remember them as seen; only rows added later run.
    SKIP = "skip"
    #: Run every one of them once.
    RUN = "run"


class Missed(enum.Enum):
    """What to do with schedule fire times that passed while the runner was down."""

    #: Forget them; wait for the next fire time.
    SKIP = "skip"
    #: Run once (for the latest missed fire time), however many were missed.
    RUN_ONCE = "run_once"


class VerifyScheme(enum.Enum):
    """How an incoming webhook proves it comes from the provider."""

    #: Standard Webhooks (Loops, Quo's newer webhooks): webhook-id/-timestamp/-signature.
    STANDARD_WEBHOOKS = "standard-webhooks"
    #: Quo's legacy ``openphone-signature: hmac;1;<ts>;<sig>`` header.
    OPENPHONE = "openphone"
    #: A shared secret in a header the recipe names.
    TOKEN = "token"
    #: No verification (lint warns).
    NONE = "none"


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A CSV (header row) or JSONL table, identified row by row by ``key``."""

    path: Path
    key: str
    run_on_added: bool = True
    run_on_updated: bool = False
    existing_rows: ExistingRows = ExistingRows.SKIP
    columns: tuple[str, ...] | None = None
    #: The flood brake: more runs than this from one look at the table are recorded ``held``
    #: (0: no brake). A first activation with ``existing_rows: run`` is never held.
    flood_limit: int = 100
    #: The table columns the recipe reads (key, ``/Column`` references, conditions, ``columns:``
    #: expressions); ``None`` when it reads the whole row (``@``). An ``updated`` row runs when
    #: one of these changes, and a CSV header without one of them stops the recipe.
    reads: frozenset[str] | None = None
    #: The directories (symlinks resolved) the table file must be inside; empty: anywhere.
    roots: tuple[Path, ...] = ()
    #: The largest table file read, in bytes.
    max_bytes: int = 128 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DbTableSpec:
    """A table (or a query's result) in a SQLite file or a PostgreSQL database, identified row by
    row by ``key``. The same row rules as ``TableSpec``: ``run_on``, ``existing_rows``,
    ``columns``, ``flood_limit``, ``reads``."""

    #: As written in the recipe: a SQLite file (resolved against the recipe's folder) or a
    #: ``postgresql://`` URL; ``${NAME}`` parts are kept unexpanded (they are secrets) and are
    #: substituted only when connecting.
    database: str
    key: str
    #: The table read (``schema.table`` allowed); exactly one of ``table`` and ``query``.
    table: str | None = None
    #: A ``SELECT`` whose result is the table (read as a subquery).
    query: str | None = None
    #: A column that grows on every change (a timestamp, a sequence): rows are read from a
    #: cursor on it (and the key, for ties) instead of scanning the whole table.
    changed_by: str | None = None
    #: Seconds between two looks at the table.
    poll_s: float = 5.0
    run_on_added: bool = True
    run_on_updated: bool = False
    existing_rows: ExistingRows = ExistingRows.SKIP
    columns: tuple[str, ...] | None = None
    flood_limit: int = 100
    #: As ``TableSpec.reads``, without the ``write_back`` columns: a write-back never runs a
    #: row again.
    reads: frozenset[str] | None = None
    #: The columns ``write_back`` writes (never read for change detection).
    written: frozenset[str] = frozenset()
    #: The ``${NAME}`` variables in ``database`` (secrets).
    env_names: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TableTrigger:
    table: TableSpec | DbTableSpec
    kind: str = "table"


@dataclass(frozen=True, slots=True)
class WebhookTrigger:
    path: str
    scheme: VerifyScheme
    #: Name of the environment variable holding the secret (never the value).
    secret_env: str | None = None
    #: For ``token``: the header carrying the secret.
    header: str | None = None
    #: JMESPath over the body giving the delivery's identity, when set.
    event_id: Condition | None = None
    kind: str = "webhook"


@dataclass(frozen=True, slots=True)
class ScheduleTrigger:
    cron: str | None = None
    timezone: str = "UTC"
    every: timedelta | None = None
    missed: Missed = Missed.SKIP
    table: TableSpec | None = None
    kind: str = "schedule"


Trigger = TableTrigger | WebhookTrigger | ScheduleTrigger


@dataclass(frozen=True, slots=True)
class Action:
    """One step: ``kind`` is ``quo.send_sms`` etc.; ``params`` the templated vendor body."""

    kind: str
    id: str
    params: Template
    condition: Condition | None = None
    line: int = 0
    #: The ids of the earlier steps whose responses this step reads (``/@step`` in its
    #: parameters, ``@step`` in its ``only_run_if``): it can be rendered only after they ran.
    #: Empty for a step that needs nothing but the row.
    reads_steps: frozenset[str] = frozenset()
    #: Also record this step's response under this id (the steps of a ``quo.upsert_contact``
    #: answer for the upsert's own id: whichever of update and create ran).
    response_as: str | None = None


@dataclass(frozen=True, slots=True)
class RecipeTest:
    """A sample event and what the recipe must do with it (``automations test``)."""

    name: str
    event: Any
    #: Expected condition result, if stated.
    expect_condition: bool | None = None
    #: Expected requests, each matched as a subset against the rendered one at the same index.
    expect_requests: tuple[Any, ...] | None = None
    env: tuple[tuple[str, str], ...] = ()
    line: int = 0
    #: The file the test is written in (the recipe, or its ``NAME.test.yaml``), as displayed.
    file: str = ""
    #: ``(step id, response body)``: what earlier steps answer in this test (nothing is sent).
    responses: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Recipe:
    """A validated, compiled recipe."""

    name: str
    source: Path
    #: The first 16 hex digits of the SHA-256 of the file's text: which exact version ran.
    content_hash: str
    trigger: Trigger
    actions: tuple[Action, ...]
    description: str = ""
    condition: Condition | None = None
    #: ``columns:`` (name, JMESPath) pairs; when set, the row is exactly these columns.
    columns: tuple[tuple[str, Condition], ...] | None = None
    #: Default region for phone numbers without a country code.
    phone_region: str = "US"
    tests: tuple[RecipeTest, ...] = field(default_factory=tuple)
    #: Names of every ``${ENV}`` the recipe references.
    env_names: frozenset[str] = field(default_factory=frozenset)
    #: The file's text as compiled (kept by hash in the audit: which version ran).
    text: str = field(default="", repr=False)
    #: ``write_back:`` (column, template) pairs: written into the row (a database table's) by
    #: key once the run has finished; templates see the row, ``/@step`` responses and ``/@error``.
    write_back: tuple[tuple[str, Template], ...] = ()
