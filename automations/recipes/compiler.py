"""Load → validate → compile: a recipe file becomes a ``Recipe`` value or diagnostics.

The same function serves ``lint``, ``render``, ``test``, ``exec`` and the runner, so a recipe that
lints clean is exactly a recipe that runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from automations.conditions import STEP_FIELD, Condition, compile_expression, quote_step_refs
from automations.diagnostics import Diagnostic, Severity, drop_ignored, inline_ignores
from automations.model import Action, DbTableSpec, Recipe, TableTrigger, WebhookTrigger
from automations.recipes.actions import compile_actions
from automations.recipes.advice import (
    check_brace_mappings,
    quoted_column_advice,
    text_comparisons,
)
from automations.recipes.context import CompileContext
from automations.recipes.db_tables import compile_write_back
from automations.recipes.files import outside_directory, read_recipe_file
from automations.recipes.structure import check_structure, did_you_mean
from automations.recipes.testfiles import TEST_SUFFIXES, recipe_tests, sibling_tests
from automations.recipes.triggers import KnownColumns, compile_expr, compile_trigger
from automations.recipes.yamlsource import Path_, parse_yaml
from automations.templates import ColumnRef, Template, iter_refs
from automations.triggers.table_files import TableAccess

__all__ = [
    "LoadResult",
    "content_hash",
    "display_name",
    "internal_error",
    "iter_recipe_files",
    "link_name",
    "load_directory",
    "load_recipe",
    "load_recipe_text",
    "missing_variables",
    "recipe_of_tests",
    "table_reads",
]

RECIPE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class LoadResult:
    """A recipe file's outcome: the compiled recipe when it has no errors, and every finding."""

    file: str
    recipe: Recipe | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return self.recipe is not None


def content_hash(text: str) -> str:
    """A recipe version's identity: the first 64 bits of the SHA-256 of its text, in hex (kept
    on every run, so short; ample to tell one recipe's versions apart)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def display_name(path: Path) -> str:
    """The path as a user should see it: relative to the working directory when inside it."""
    return _display_name(path, Path(os.path.realpath(path)))


def link_name(path: Path) -> str:
    """``path`` as a user should see it, a link named as itself (not as what it points to)."""
    return _display_name(path, Path(os.path.abspath(path)))


def _display_name(path: Path, resolved: Path) -> str:
    cwd = _resolved_dir(os.getcwd())
    if cwd == os.sep:
        return str(resolved)[1:] or "."
    text = str(resolved)
    if text == cwd:
        return "."
    if text.startswith(cwd + os.sep):
        return text[len(cwd) + 1 :]
    return str(path)


@lru_cache(maxsize=8)
def _resolved_dir(cwd: str) -> str:
    # resolved once per working directory, not once per file
    return str(Path(cwd).resolve())


def _plus_numbers(ctx: CompileContext) -> None:
    for path in ctx.doc.plus_numbers:
        text = ctx.line_text(ctx.doc.positions.of_value(path)[0]) or ""
        col = ctx.doc.positions.of_value(path)[1] - 1
        token = text[col:].split()[0].rstrip(",]}") if text[col:].strip() else "+..."
        ctx.report(
            path,
            "YAML004",
            f'YAML reads {token} as a number, losing the "+"; quote it: "{token}"',
        )


def _columns(ctx: CompileContext, raw: Any) -> tuple[tuple[str, Condition], ...] | None:
    if not isinstance(raw, dict):
        return None
    out: list[tuple[str, Condition]] = []
    for name, expr in raw.items():
        cond = compile_expr(ctx, ("columns", name), expr)
        if cond is not None:
            out.append((name, cond))
    return tuple(out)


@lru_cache(maxsize=1024)
def condition_fields(source: str) -> tuple[str, ...]:
    """Top-level field names the (valid) JMESPath expression ``source`` reads from the row.

    By source text: recipes repeat their conditions, and jmespath keeps the parsed ones."""
    fields: list[str] = []
    tree: Any = compile_expression(source).parsed.parsed
    stack: list[tuple[dict[str, Any], bool]] = [(tree, True)]
    while stack:
        node, top = stack.pop()
        kind = node.get("type")
        children = node.get("children", [])
        if kind == "field" and top:
            fields.append(str(node["value"]))
        elif kind in (
            "subexpression",
            "index_expression",
            "projection",
            "filter_projection",
            "value_projection",
            "flatten",
        ):
            # only the left side reads the row; the rest reads what it selected
            if children:
                stack.append((children[0], top))
                for c in children[1:]:
                    stack.append((c, False))
        elif kind not in ("current", "literal", "expref"):
            stack.extend((c, top) for c in children if isinstance(c, dict))
    return tuple(fields)


@lru_cache(maxsize=1024)
def _reads_whole_row(source: str) -> bool:
    """Whether the expression uses the row itself (``@``, ``keys(@)``) rather than fields of
    it, where the row is the current node."""
    tree: Any = compile_expression(source).parsed.parsed
    stack: list[tuple[dict[str, Any], bool]] = [(tree, True)]
    while stack:
        node, top = stack.pop()
        kind = node.get("type")
        children = [c for c in node.get("children", []) if isinstance(c, dict)]
        if kind == "current" and top:
            return True
        if kind in _SELECTING:
            if children:
                stack.append((children[0], top))
                stack.extend((c, False) for c in children[1:])
        elif kind not in ("literal", "expref"):
            stack.extend((c, top) for c in children)
    return False


_SELECTING = (
    "subexpression",
    "index_expression",
    "projection",
    "filter_projection",
    "value_projection",
    "flatten",
)


def _check_condition_columns(
    ctx: CompileContext, path: Path_, cond: Condition | None, known: KnownColumns
) -> None:
    if cond is None or known.names is None:
        return
    key = str(path[-1])
    for name in condition_fields(cond.source):
        # ``null`` / ``true`` / ``false`` unquoted are field names in JMESPath that are never
        # set, so ``Phone != null`` works as people expect; they are not typos.
        if name.startswith(STEP_FIELD):
            continue  # an earlier step's response (checked with the steps)
        if name not in known.names and name not in ("null", "true", "false"):
            advice = quoted_column_advice(cond.source, name, key)
            if advice is not None:
                ctx.report(path, "EXP002", advice, needle=json.dumps(name))
                continue
            ctx.report(
                path,
                "REF001",
                f'unknown column "{name}" in condition{did_you_mean(name, known.names)}; '
                f"columns come from {known.source}",
                severity=known.severity,
                needle=name,
            )
    if known.text:
        for name, op, number in text_comparisons(cond, known.names):
            ctx.report(
                path,
                "EXP003",
                f"{name} comes from a CSV file, where every value is text: {name} {op} "
                f"`{number}` compares text with a number, which is never true, so every row "
                f"would be skipped; convert it: to_number({name}) {op} `{number}`",
                needle=name,
            )


def load_recipe_text(
    text: str,
    file: str,
    *,
    base_dir: Path,
    env: Mapping[str, str] | None = None,
    source: Path | None = None,
    with_tests: bool = True,
    tables: TableAccess | None = None,
    within: Path | None = None,
    connect: bool = False,
) -> LoadResult:
    """Compile recipe ``text``. ``file`` is the name used in diagnostics; relative table paths
    resolve against ``base_dir``. A ``NAME.test.yaml`` beside ``source`` is read and checked
    unless ``with_tests`` is false (the runner has no use for tests); its findings are reported
    but do not stop the recipe from compiling. ``tables`` says where table files may be
    (default: inside ``base_dir``; the runner and lint pass the recipes directory). The test
    file must resolve inside ``within`` (default: ``source``'s folder). ``connect``: open database
    tables to check them (``lint --connect``)."""
    env = os.environ if env is None else env
    doc = parse_yaml(text, file)
    if tables is None:
        tables = TableAccess.for_recipes(base_dir, env)
    ctx = CompileContext(doc, base_dir, env, tables=tables, connect=connect)
    ctx.diagnostics.extend(doc.diagnostics)
    if doc.value is None and doc.diagnostics:
        return LoadResult(file, None, tuple(doc.diagnostics))
    _plus_numbers(ctx)
    check_brace_mappings(ctx)
    ctx.diagnostics.extend(check_structure(doc))
    # an action's body is checked against the vendor's schema once its structure is right, so
    # one mistake is reported once
    error_lines = {d.line for d in ctx.diagnostics if d.is_error}
    raw = doc.value if isinstance(doc.value, dict) else {}
    trigger, known = compile_trigger(ctx, raw.get("trigger"))
    columns = _columns(ctx, raw.get("columns"))
    if columns is not None:
        known = KnownColumns([n for n, _ in columns], "columns:", Severity.ERROR)
    condition = compile_expr(ctx, ("only_run_if",), raw.get("only_run_if"))
    _check_condition_columns(ctx, ("only_run_if",), condition, known)
    env_names: set[str] = set()
    if isinstance(trigger, WebhookTrigger) and trigger.secret_env:
        env_names.add(trigger.secret_env)
    if isinstance(trigger, TableTrigger) and isinstance(trigger.table, DbTableSpec):
        env_names.update(trigger.table.env_names)  # secrets in the database URL
    actions = compile_actions(ctx, raw.get("actions"), known, env_names, error_lines=error_lines)
    steps = [s for a in actions for s in (a.id, a.response_as) if s is not None]
    write_back = compile_write_back(ctx, raw.get("write_back"), trigger, known, steps, env_names)
    raw_actions = raw.get("actions")
    for i, item in enumerate(raw_actions if isinstance(raw_actions, list) else []):
        if isinstance(item, dict) and isinstance(item.get("only_run_if"), str):
            for a in actions:
                cond_source = quote_step_refs(item["only_run_if"])
                if a.condition is not None and a.condition.source == cond_source:
                    _check_condition_columns(ctx, ("actions", i, "only_run_if"), a.condition, known)
                    break
    for name in sorted(env_names):
        if name not in env:
            ctx.diagnostics.append(
                Diagnostic(
                    file,
                    *_env_position(ctx, name),
                    Severity.WARNING,
                    "ENV001",
                    f"environment variable {name} is not set here; runs will fail until it is "
                    "(dry runs and previews show ${" + name + "})",
                )
            )
    _check_provider_keys(ctx, actions, env)
    _check_resent_on_update(ctx, trigger, raw.get("actions"))
    tests = recipe_tests(ctx, raw.get("tests"))
    file_diags: list[Diagnostic] = []  # a test file's findings: reported, not the recipe's own
    if source is not None and with_tests and "tests" not in raw:
        folder = source.parent if within is None else within
        tests, file_diags = sibling_tests(source, ctx, display_name, Path(os.path.realpath(folder)))
    # a schema's words at the place of an unquoted {/Column} or a $NAME: said better there
    taught = {(d.line, d.column) for d in ctx.diagnostics if d.code in _TEACHES and d.is_error}
    if taught:
        ctx.diagnostics = [
            d
            for d in ctx.diagnostics
            if d.code not in _SAID_BETTER or (d.line, d.column) not in taught
        ]
    ignored = inline_ignores(text)
    if ignored:
        ctx.diagnostics = drop_ignored(ctx.diagnostics, lines=ignored)
    diags = tuple(sorted(ctx.diagnostics, key=lambda d: (d.line, d.column, d.code)))
    if ctx.has_errors or trigger is None:
        return LoadResult(file, None, (*diags, *file_diags))
    if isinstance(trigger, TableTrigger):
        reads = table_reads(trigger.table.key, columns, condition, actions, write_back)
        if isinstance(trigger.table, DbTableSpec):
            # what write_back writes is never a change: writing back does not run the row again
            written = frozenset(name for name, _ in write_back)
            reads = None if reads is None else reads - written
            trigger = TableTrigger(replace(trigger.table, reads=reads, written=written))
        else:
            trigger = TableTrigger(replace(trigger.table, reads=reads))
    recipe = Recipe(
        name=str(raw["name"]),
        source=source or Path(file),
        content_hash=content_hash(text),
        trigger=trigger,
        actions=actions,
        description=str(raw.get("description") or ""),
        condition=condition,
        columns=columns,
        phone_region=str(raw.get("phone_region") or "US"),
        tests=tests,
        env_names=frozenset(env_names),
        text=text,
        write_back=write_back,
    )
    return LoadResult(file, recipe, (*diags, *file_diags))


#: Findings that explain a mistake the schemas also report, less clearly, at the same place
#: (``_SAID_BETTER``): those are dropped.
_TEACHES = frozenset({"YAML006", "ENV003"})
_SAID_BETTER = frozenset({"SCH003", "SCH004", "VND001"})

#: The API key variables each provider's actions need (any one of them).
_PROVIDER_KEYS = {
    "quo": ("QUO_API_KEY", "MATON_API_KEY"),
    "loops": ("LOOPS_API_KEY",),
}


def missing_variables(recipe: Recipe, env: Mapping[str, str]) -> list[str]:
    """The variables ``recipe`` needs for real runs that ``env`` lacks (``ENV001``, ``ENV002``):
    a provider key as ``QUO_API_KEY or MATON_API_KEY`` when none of its names is set."""
    out = sorted(n for n in recipe.env_names if n not in env)
    for provider in sorted({a.kind.partition(".")[0] for a in recipe.actions}):
        names = _PROVIDER_KEYS.get(provider)
        if names is not None and not any(env.get(n) for n in names):
            out.append(" or ".join(names))
    return out


def _check_provider_keys(
    ctx: CompileContext, actions: tuple[Action, ...], env: Mapping[str, str]
) -> None:
    """A warning (once per provider) when the provider's API key is not set where lint runs."""
    warned: set[str] = set()
    for i, action in enumerate(actions):
        provider = action.kind.partition(".")[0]
        names = _PROVIDER_KEYS.get(provider)
        if names is None or provider in warned or any(env.get(n) for n in names):
            continue
        warned.add(provider)
        ctx.report(
            ("actions", i),
            "ENV002",
            f"{action.kind} needs {' or '.join(names)}, which is not set here; real runs fail "
            "until it is (dry runs and previews work without it)",
            severity=Severity.WARNING,
            at_key=True,
        )


#: Quo actions with no idempotency key: each run creates or sends again.
_NOT_IDEMPOTENT = {
    "quo.create_contact": "creates another contact (Quo allows duplicates): use quo.upsert_contact",
    "quo.send_sms": "sends another text: gate it with only_run_if, or use run_on: [added]",
}


def _check_resent_on_update(ctx: CompileContext, trigger: Any, raw_actions: Any) -> None:
    """A warning when a table recipe re-runs on changed rows and a step is not idempotent."""
    table = getattr(trigger, "table", None)
    if table is None or not table.run_on_updated or not isinstance(raw_actions, list):
        return
    for i, item in enumerate(raw_actions):
        for kind in item if isinstance(item, dict) else ():
            if kind in _NOT_IDEMPOTENT:
                ctx.report(
                    ("actions", i, kind),
                    "IDP001",
                    f"{kind} runs again each time a row changes (run_on: [updated]) and each "
                    f"run {_NOT_IDEMPOTENT[kind]}",
                    severity=Severity.WARNING,
                    at_key=True,
                )


def _env_position(ctx: CompileContext, name: str) -> tuple[int, int]:
    needle = "${" + name + "}"
    for i, line in enumerate(ctx.doc.text.splitlines(), 1):
        col = line.find(needle)
        if col >= 0:
            return i, col + 1
    return 1, 1


def load_recipe(
    path: Path,
    env: Mapping[str, str] | None = None,
    *,
    tables: TableAccess | None = None,
    within: Path | None = None,
    connect: bool = False,
) -> LoadResult:
    """Compile the recipe file at ``path`` (tables inside its folder, unless ``tables``). With
    ``within`` (a resolved directory: the one ``path`` was found in), the recipe and its test
    file are read only if they resolve inside it (``IO002``); without, its test file must
    resolve inside the recipe's own folder."""
    source = Path(os.path.realpath(path))  # Path.resolve() without its extra stat()
    if within is not None:
        refused = outside_directory(path, within, link_name(path), "recipe file", real=source)
        if refused is not None:
            return LoadResult(refused.file, None, (refused,))
    name = _display_name(path, source)
    text = read_recipe_file(path, name)
    if isinstance(text, Diagnostic):
        return LoadResult(name, None, (text,))
    try:
        return load_recipe_text(
            text,
            name,
            base_dir=path.parent,
            env=env,
            source=source,
            tables=tables,
            within=source.parent if within is None else within,
            connect=connect,
        )
    except Exception as exc:  # a bug in one file's checks must not stop lint of the others
        return LoadResult(name, None, (internal_error(name, exc),))


def internal_error(name: str, exc: Exception) -> Diagnostic:
    """``INT001``: loading the file ``name`` raised ``exc``, which no recipe should make it do."""
    return Diagnostic(
        name,
        1,
        1,
        Severity.ERROR,
        "INT001",
        f"loading this file failed unexpectedly ({exc.__class__.__name__}: {exc}); this is a "
        "bug: please report it with the file",
    )


def recipe_of_tests(path: Path) -> Path | None:
    """The recipe a ``NAME.test.yaml`` sidecar belongs to (``NAME.yaml`` or ``NAME.yml`` beside
    it), ``None`` when there is none; ``path`` itself when it is not a sidecar."""
    if not path.name.endswith(TEST_SUFFIXES):
        return path
    stem = path.name[: -len(".test" + path.suffix)]
    for suffix in RECIPE_SUFFIXES:
        recipe = path.with_name(stem + suffix)
        if recipe.is_file():
            return recipe
    return None


def iter_recipe_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Recipe files under ``paths`` (recursively, skipping ``*.test.yaml`` sidecars), each once.

    A sidecar named explicitly (as pre-commit names the files a commit changes) stands for its
    recipe, so its tests are checked in context; one without a recipe is yielded as itself for
    ``load_directory`` to report."""
    seen: set[str] = set()
    for p in paths:
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix in RECIPE_SUFFIXES and f.is_file())
            files = [f for f in files if not f.name.endswith(TEST_SUFFIXES)]
        else:
            files = [recipe_of_tests(p) or p]
        for f in files:
            key = os.path.abspath(f)  # string work only: realpath's stats cost 4% of a lint
            if key not in seen:
                seen.add(key)
                yield f


def load_directory(
    paths: Iterable[Path],
    env: Mapping[str, str] | None = None,
    *,
    tables_outside: Iterable[Path] = (),
    connect: bool = False,
) -> list[LoadResult]:
    """Compile every recipe under ``paths`` and check what spans files: duplicate recipe
    names and two webhook recipes on one path. The tables of the recipes under a directory must
    be inside it (or inside one of ``tables_outside``); a single file's, inside its folder."""
    env = os.environ if env is None else env
    paths = list(paths)
    outside = tuple(tables_outside)
    roots = {
        os.path.abspath(p): TableAccess.for_recipes(p, env, outside) for p in paths if p.is_dir()
    }

    def access(f: Path) -> TableAccess:
        full = os.path.abspath(f)
        for root, found in roots.items():
            if full.startswith(root.rstrip(os.sep) + os.sep):
                return found
        return TableAccess.for_recipes(f.parent, env, outside)

    def walked(f: Path) -> Path | None:
        # a file found by walking a directory must resolve inside it; one named is read
        full = os.path.abspath(f)
        if full in named:
            return None
        for root, real in resolved.items():
            if full.startswith(root.rstrip(os.sep) + os.sep):
                return real
        return None

    named = {os.path.abspath(p) for p in paths if not p.is_dir()}
    resolved = {root: Path(os.path.realpath(root)) for root in roots}
    results = [
        load_recipe(f, env, tables=access(f), within=walked(f), connect=connect)
        if recipe_of_tests(f) is not None
        else _orphan_tests(f)
        for f in iter_recipe_files(paths)
    ]
    return cross_check(results)


def _orphan_tests(path: Path) -> LoadResult:
    name = display_name(path)
    stem = path.name[: -len(".test" + path.suffix)]
    d = Diagnostic(
        name,
        1,
        1,
        Severity.ERROR,
        "TST001",
        f"test file without a recipe: its tests run against {stem}.yaml (or {stem}.yml) in "
        "the same directory, which does not exist; rename it after its recipe",
    )
    return LoadResult(name, None, (d,))


def table_reads(
    key: str,
    columns: tuple[tuple[str, Condition], ...] | None,
    condition: Condition | None,
    actions: tuple[Action, ...],
    write_back: tuple[tuple[str, Template], ...] = (),
) -> frozenset[str] | None:
    """The table columns a recipe reads (``None``: the whole row, through ``@``): its key and,
    with ``columns:``, what those expressions read (the rest of the recipe reads their
    results); otherwise every ``/Column`` reference (in its actions and ``write_back``) and
    what the conditions read."""
    exprs: list[Condition] = []
    names = {key}
    if columns is not None:
        exprs.extend(expr for _, expr in columns)
    else:
        exprs.extend(c for c in (condition, *(a.condition for a in actions)) if c is not None)
        templates = [action.params for action in actions] + [t for _, t in write_back]
        for template in templates:
            names.update(r.column for _, r in iter_refs(template) if isinstance(r, ColumnRef))
    for expr in exprs:
        if _reads_whole_row(expr.source):
            return None
        # unquoted null / true / false are fields in JMESPath that are never set (see
        # _check_condition_columns), and @step reads an earlier step's response: not columns
        names.update(
            f
            for f in condition_fields(expr.source)
            if f not in _NOT_COLUMNS and not f.startswith(STEP_FIELD)
        )
    return frozenset(names)


_NOT_COLUMNS = frozenset({"null", "true", "false"})


def cross_check(results: list[LoadResult]) -> list[LoadResult]:
    names: dict[str, str] = {}
    hooks: dict[str, str] = {}
    out = []
    for r in results:
        extra: list[Diagnostic] = []
        rec = r.recipe
        if rec is not None:
            if rec.name in names:
                extra.append(
                    _at_key(
                        r,
                        "name",
                        "DUP001",
                        f'recipe name "{rec.name}" is already used by {names[rec.name]}; '
                        "names must be unique",
                    )
                )
            else:
                names[rec.name] = r.file
            path = getattr(rec.trigger, "path", None)
            if rec.trigger.kind == "webhook" and isinstance(path, str):
                if path in hooks:
                    extra.append(
                        _at_key(
                            r,
                            "trigger",
                            "DUP002",
                            f"webhook path {path} is already served by {hooks[path]}; "
                            "give each webhook recipe its own path",
                        )
                    )
                else:
                    hooks[path] = r.file
        if extra:
            r = LoadResult(
                r.file,
                None,
                tuple(sorted((*r.diagnostics, *extra), key=lambda d: (d.line, d.column))),
            )
        out.append(r)
    return out


def _at_key(r: LoadResult, key: str, code: str, message: str) -> Diagnostic:
    assert r.recipe is not None
    lines = r.recipe.text.splitlines()  # the text compiled, not the file read again
    line = next((i for i, text in enumerate(lines, 1) if text.startswith(key + ":")), 1)
    return Diagnostic(r.file, line, 1, Severity.ERROR, code, message)
