"""The set of recipes a runner serves, reloaded as whole values.

``RecipeSet`` is immutable. ``reload`` builds the next set from the directory: a file whose text
is unchanged keeps its exact ``Recipe`` value; a changed file that compiles replaces its recipe; a
changed file with errors keeps the last good version (its diagnostics are reported); a deleted
file's recipe is dropped. A file that cannot be read (not UTF-8, too large, not a regular file)
or whose loading raises anything at all is a changed file with errors: it is reported and its last
good version keeps running. A file saved back to its running version reports that version's
diagnostics again, so errors of a broken edit in between do not linger. A file that resolves
(symlinks followed) outside the directory is not read at all (``IO002``, an error on that file):
no version of it runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from automations.diagnostics import Diagnostic, Severity
from automations.model import Recipe, WebhookTrigger
from automations.recipes.compiler import (
    RECIPE_SUFFIXES,
    LoadResult,
    content_hash,
    display_name,
    internal_error,
    iter_recipe_files,
    link_name,
    load_recipe_text,
)
from automations.recipes.files import outside_directory, read_recipe_file
from automations.recipes.testfiles import TEST_SUFFIXES
from automations.triggers.table_files import TableAccess

__all__ = ["Load", "RecipeSet", "reload"]

log = logging.getLogger("automations.runner")

#: Compiles one file's text (``load_recipe_text``'s signature); a parameter so tests can make
#: loading fail in ways no recipe does today.
Load = Callable[..., LoadResult]


def _frozen(d: dict[str, Recipe]) -> Mapping[str, Recipe]:
    return MappingProxyType(d)


@dataclass(frozen=True)
class RecipeSet:
    #: Recipe by source file (absolute path).
    by_file: Mapping[str, Recipe] = field(default_factory=lambda: _frozen({}))
    #: Diagnostics (errors and warnings) by display file name, from the latest load of each file.
    diagnostics: Mapping[str, tuple[Diagnostic, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    #: Diagnostics (warnings) of the version that runs, by source file (absolute path): what a
    #: file saved back to that version reports.
    running_diagnostics: Mapping[str, tuple[Diagnostic, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def __post_init__(self) -> None:
        # lookups on the hot path (every webhook, every run) are precomputed once per set
        names = {r.name: r for r in self.by_file.values()}
        hooks = {
            r.trigger.path: r
            for r in self.by_file.values()
            if isinstance(r.trigger, WebhookTrigger)
        }
        object.__setattr__(self, "_names", MappingProxyType(names))
        object.__setattr__(self, "_hooks", MappingProxyType(hooks))

    @property
    def by_name(self) -> Mapping[str, Recipe]:
        return self._names  # type: ignore[attr-defined, no-any-return]

    @property
    def hooks(self) -> Mapping[str, Recipe]:
        """The webhook recipes by path."""
        return self._hooks  # type: ignore[attr-defined, no-any-return]

    def webhook(self, path: str) -> Recipe | None:
        return self._hooks.get(path)  # type: ignore[attr-defined, no-any-return]

    def errors(self) -> dict[str, list[Diagnostic]]:
        return {
            f: [d for d in ds if d.is_error]
            for f, ds in self.diagnostics.items()
            if any(d.is_error for d in ds)
        }


class _Taken:
    """The names and webhook paths of the recipes chosen so far, indexed: checking a recipe
    against them costs the same with ten recipes or ten thousand (a scan of every chosen recipe
    per loaded file made start-up quadratic: 18.6 s for 10,000 recipes)."""

    def __init__(self, chosen: dict[str, Recipe]) -> None:
        self.chosen = chosen
        self.names: dict[str, str] = {}
        self.paths: dict[str, str] = {}
        for file, recipe in chosen.items():
            self.add(file, recipe)

    def choose(self, file: str, recipe: Recipe) -> None:
        """``recipe`` is the one ``file`` runs (replacing what it ran)."""
        self.drop(file)
        self.chosen[file] = recipe
        self.add(file, recipe)

    def add(self, file: str, recipe: Recipe) -> None:
        self.names[recipe.name] = file
        if isinstance(recipe.trigger, WebhookTrigger):
            self.paths[recipe.trigger.path] = file

    def drop(self, file: str) -> None:
        """``file`` runs nothing (for now)."""
        old = self.chosen.pop(file, None)
        if old is None:
            return
        if self.names.get(old.name) == file:
            del self.names[old.name]
        if isinstance(old.trigger, WebhookTrigger) and self.paths.get(old.trigger.path) == file:
            del self.paths[old.trigger.path]

    def conflict(self, recipe: Recipe, file: str) -> Diagnostic | None:
        """A ``DUP001``/``DUP002`` error if another chosen file has ``recipe``'s name or webhook
        path (the first such file in the order chosen, the name checked first)."""
        by_name = self.names.get(recipe.name)
        by_path = None
        if isinstance(recipe.trigger, WebhookTrigger):
            by_path = self.paths.get(recipe.trigger.path)
        by_name = None if by_name == file else by_name
        by_path = None if by_path == file else by_path
        if by_name is not None and by_path is not None and by_path != by_name:
            order = list(self.chosen)  # rare: two files conflict, one each way
            if order.index(by_path) < order.index(by_name):
                by_name = None
        if by_name is not None:
            return Diagnostic(
                display_name(Path(file)),
                1,
                1,
                Severity.ERROR,
                "DUP001",
                f'recipe name "{recipe.name}" is already used by '
                f"{display_name(self.chosen[by_name].source)}; this file was not loaded",
            )
        if by_path is not None:
            assert isinstance(recipe.trigger, WebhookTrigger)
            return Diagnostic(
                display_name(Path(file)),
                1,
                1,
                Severity.ERROR,
                "DUP002",
                f"webhook path {recipe.trigger.path} is already served by "
                f"{display_name(self.chosen[by_path].source)}; this file was not loaded",
            )
        return None


def reload(
    current: RecipeSet,
    directory: Path,
    env: Mapping[str, str],
    load: Load = load_recipe_text,
    tables: TableAccess | None = None,
    changed: Sequence[str] | None = None,
) -> RecipeSet:
    """The next recipe set for ``directory`` (see the module docstring). Table files must be
    inside ``directory`` (or where ``tables`` allows).

    ``changed`` names the files that changed since ``current`` (what the runner's watcher saw):
    when it names only recipe files inside ``directory`` and ``current`` has no errors, only
    those files are read again (saving one of 10,000 recipes costs one file, not a walk of the
    folder). Anything else (a folder, a table, a link, a set with errors) reloads everything."""
    if tables is None:
        tables = TableAccess.for_recipes(directory, env)
    scan = None if changed is None else _changed_only(current, directory, changed)
    if scan is None:
        scan = _scan(current, directory)
    texts, chosen, diags, running = scan
    taken = _Taken(chosen)
    pending: list[tuple[str, Recipe, tuple[Diagnostic, ...]]] = []
    for file, text in sorted(texts.items()):
        old = current.by_file.get(file)
        name = _shown(file)
        if old is not None and old.content_hash == content_hash(text):
            taken.choose(file, old)
            running[file] = diags[name] = current.running_diagnostics.get(file, ())
            continue
        try:
            result = load(
                text,
                name,
                base_dir=Path(file).parent,
                env=env,
                source=Path(file),
                with_tests=False,
                tables=tables,
            )
        except Exception as exc:  # a bug must not stop the other files, nor hot reload
            log.exception("loading %s failed unexpectedly", name)
            result = LoadResult(name, None, (internal_error(name, exc),))
        diags[name] = result.diagnostics
        if result.recipe is not None:
            taken.drop(file)  # a changed file's old version leaves room for its new one
            pending.append((file, result.recipe, result.diagnostics))
        elif old is not None:
            taken.choose(file, old)  # keep the last good version running
            running[file] = current.running_diagnostics.get(file, ())
    for file, recipe, found in pending:
        conflict = taken.conflict(recipe, file)
        if conflict is None:
            taken.choose(file, recipe)
            running[file] = found
        else:
            name = _shown(file)
            diags[name] = (*diags[name], conflict)
            old = current.by_file.get(file)
            if old is not None and taken.conflict(old, file) is None:
                taken.choose(file, old)
                running[file] = current.running_diagnostics.get(file, ())
    return RecipeSet(_frozen(chosen), MappingProxyType(diags), MappingProxyType(running))


_Scan = tuple[
    dict[str, str],
    dict[str, Recipe],
    dict[str, tuple[Diagnostic, ...]],
    dict[str, tuple[Diagnostic, ...]],
]


def _scan(current: RecipeSet, directory: Path) -> _Scan:
    """Every recipe file of ``directory`` read: (texts by file, recipes kept, diagnostics,
    running diagnostics)."""
    texts: dict[str, str] = {}
    chosen: dict[str, Recipe] = {}
    diags: dict[str, tuple[Diagnostic, ...]] = {}
    running: dict[str, tuple[Diagnostic, ...]] = {}
    within = Path(os.path.realpath(directory))
    inside = str(within).rstrip(os.sep) + os.sep
    for f in iter_recipe_files([directory]):
        # resolved once (realpath's stats are a third of loading 10,000 recipes); the names
        # shown are built from that by string work alone
        file = os.path.realpath(f)
        if not file.startswith(inside):
            refused = outside_directory(f, within, link_name(f), "recipe file", real=Path(file))
            if refused is not None:
                diags[refused.file] = (refused,)
                continue
        text = read_recipe_file(f, _shown(file))
        if isinstance(text, str):
            texts[file] = text
        elif os.path.lexists(f):  # unreadable: report it, keep the last good version
            diags[text.file] = (text,)
            if file in current.by_file:
                chosen[file] = current.by_file[file]
                running[file] = current.running_diagnostics.get(file, ())
        # else: gone between listing and reading (a rename): a deleted file
    return texts, chosen, diags, running


def _changed_only(current: RecipeSet, directory: Path, changed: Sequence[str]) -> _Scan | None:
    """``_scan`` for the ``changed`` files alone, the others kept as they are in ``current``;
    ``None`` when that cannot be told apart from a full scan (see ``reload``)."""
    if any(d.is_error for ds in current.diagnostics.values() for d in ds):
        return None  # a file refused for a conflict may load once another file changes
    within = os.path.realpath(directory) + os.sep
    texts: dict[str, str] = {}
    chosen = dict(current.by_file)
    diags = dict(current.diagnostics)
    running = dict(current.running_diagnostics)
    for path in changed:
        if not path.endswith(RECIPE_SUFFIXES):
            return None
        if path.endswith(TEST_SUFFIXES):
            continue  # test files are not the runner's
        parent, base = os.path.split(os.path.abspath(path))
        if os.path.islink(path) or os.path.islink(parent):
            return None
        file = os.path.join(os.path.realpath(parent), base)
        if not file.startswith(within):
            return None
        if not os.path.lexists(file):  # deleted (or renamed away)
            if file not in chosen and _shown(file) in diags:
                return None
            chosen.pop(file, None)
            running.pop(file, None)
            diags.pop(_shown(file), None)
            continue
        if not os.path.isfile(file):
            return None
        text = read_recipe_file(Path(file), _shown(file))
        if not isinstance(text, str):
            return None  # unreadable: the full scan reports it
        texts[file] = text
    return texts, chosen, diags, running


def _shown(real: str) -> str:
    """``display_name`` of a path already resolved, without resolving it again."""
    return link_name(Path(real))
