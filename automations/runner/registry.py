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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from automations.diagnostics import Diagnostic, Severity
from automations.model import Recipe, WebhookTrigger
from automations.recipes.compiler import (
    LoadResult,
    content_hash,
    display_name,
    internal_error,
    iter_recipe_files,
    link_name,
    load_recipe_text,
)
from automations.recipes.files import outside_directory, read_recipe_file
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

    def webhook(self, path: str) -> Recipe | None:
        return self._hooks.get(path)  # type: ignore[attr-defined, no-any-return]

    def errors(self) -> dict[str, list[Diagnostic]]:
        return {
            f: [d for d in ds if d.is_error]
            for f, ds in self.diagnostics.items()
            if any(d.is_error for d in ds)
        }


def _conflict(recipe: Recipe, chosen: dict[str, Recipe], file: str) -> Diagnostic | None:
    for other in chosen.values():
        if other.name == recipe.name:
            return Diagnostic(
                display_name(Path(file)),
                1,
                1,
                Severity.ERROR,
                "DUP001",
                f'recipe name "{recipe.name}" is already used by '
                f"{display_name(other.source)}; this file was not loaded",
            )
        if (
            isinstance(recipe.trigger, WebhookTrigger)
            and isinstance(other.trigger, WebhookTrigger)
            and recipe.trigger.path == other.trigger.path
        ):
            return Diagnostic(
                display_name(Path(file)),
                1,
                1,
                Severity.ERROR,
                "DUP002",
                f"webhook path {recipe.trigger.path} is already served by "
                f"{display_name(other.source)}; this file was not loaded",
            )
    return None


def reload(
    current: RecipeSet,
    directory: Path,
    env: Mapping[str, str],
    load: Load = load_recipe_text,
    tables: TableAccess | None = None,
) -> RecipeSet:
    """The next recipe set for ``directory`` (see the module docstring). Table files must be
    inside ``directory`` (or where ``tables`` allows)."""
    if tables is None:
        tables = TableAccess.for_recipes(directory, env)
    texts: dict[str, str] = {}
    chosen: dict[str, Recipe] = {}
    diags: dict[str, tuple[Diagnostic, ...]] = {}
    running: dict[str, tuple[Diagnostic, ...]] = {}
    within = Path(os.path.realpath(directory))
    for f in iter_recipe_files([directory]):
        file = str(f.resolve())
        refused = outside_directory(f, within, link_name(f), "recipe file", real=Path(file))
        if refused is not None:
            diags[refused.file] = (refused,)
            continue
        text = read_recipe_file(f, display_name(Path(file)))
        if isinstance(text, str):
            texts[file] = text
        elif os.path.lexists(f):  # unreadable: report it, keep the last good version
            diags[text.file] = (text,)
            if file in current.by_file:
                chosen[file] = current.by_file[file]
                running[file] = current.running_diagnostics.get(file, ())
        # else: gone between listing and reading (a rename): a deleted file
    pending: list[tuple[str, Recipe, tuple[Diagnostic, ...]]] = []
    for file, text in sorted(texts.items()):
        old = current.by_file.get(file)
        name = display_name(Path(file))
        if old is not None and old.content_hash == content_hash(text):
            chosen[file] = old
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
            pending.append((file, result.recipe, result.diagnostics))
        elif old is not None:
            chosen[file] = old  # keep the last good version running
            running[file] = current.running_diagnostics.get(file, ())
    for file, recipe, found in pending:
        conflict = _conflict(recipe, {f: r for f, r in chosen.items() if f != file}, file)
        if conflict is None:
            chosen[file] = recipe
            running[file] = found
        else:
            name = display_name(Path(file))
            diags[name] = (*diags[name], conflict)
            old = current.by_file.get(file)
            if old is not None and _conflict(old, chosen, file) is None:
                chosen[file] = old
                running[file] = current.running_diagnostics.get(file, ())
    return RecipeSet(_frozen(chosen), MappingProxyType(diags), MappingProxyType(running))
