"""The set of recipes a runner serves, reloaded as whole values.

``RecipeSet`` is immutable. ``reload`` builds the next set from the directory: a file whose text
is unchanged keeps its exact ``Recipe`` value; a changed file that compiles replaces its recipe; a
changed file with errors keeps the last good version (its diagnostics are reported); a deleted
file's recipe is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from automations.diagnostics import Diagnostic, Severity
from automations.model import Recipe, WebhookTrigger
from automations.recipes.compiler import (
    content_hash,
    display_name,
    iter_recipe_files,
    load_recipe_text,
)

__all__ = ["RecipeSet", "reload"]


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


def reload(current: RecipeSet, directory: Path, env: Mapping[str, str]) -> RecipeSet:
    """The next recipe set for ``directory`` (see the module docstring)."""
    texts: dict[str, str] = {}
    for f in iter_recipe_files([directory]):
        try:
            texts[str(f.resolve())] = f.read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # mid-rename or unreadable: the next change event reloads it
    chosen: dict[str, Recipe] = {}
    diags: dict[str, tuple[Diagnostic, ...]] = {}
    pending: list[tuple[str, Recipe]] = []
    for file, text in sorted(texts.items()):
        old = current.by_file.get(file)
        name = display_name(Path(file))
        if old is not None and old.content_hash == content_hash(text):
            chosen[file] = old
            diags[name] = current.diagnostics.get(name, ())
            continue
        result = load_recipe_text(
            text, name, base_dir=Path(file).parent, env=env, source=Path(file), with_tests=False
        )
        diags[name] = result.diagnostics
        if result.recipe is not None:
            pending.append((file, result.recipe))
        elif old is not None:
            chosen[file] = old  # keep the last good version running
    for file, recipe in pending:
        conflict = _conflict(recipe, {f: r for f, r in chosen.items() if f != file}, file)
        if conflict is None:
            chosen[file] = recipe
        else:
            name = display_name(Path(file))
            diags[name] = (*diags[name], conflict)
            old = current.by_file.get(file)
            if old is not None and _conflict(old, chosen, file) is None:
                chosen[file] = old
    return RecipeSet(_frozen(chosen), MappingProxyType(diags))
