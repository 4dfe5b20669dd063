"""Recipe and test files found by walking a directory must resolve inside it (``IO002``): a link
committed into the recipes folder is never read; a file named explicitly is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from automations.formats import format_text
from automations.recipes.compiler import LoadResult, load_directory

HOOK = """name: {name}
trigger:
  webhook: {{path: /{name}, verify: {{scheme: none}}}}
actions:
  - http.request: {{method: POST, url: "https://x.example/a"}}
"""

#: Text of the file outside: its first line must never be shown.
SECRET_LINE = "name: private  # PRIVATE-LINE-7f3a"

TESTS = """tests:
  - name: posts
    row: {email: a@example.com}
    expect: {requests: 1}
"""


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``recipes/`` with one good recipe, and ``outside/`` with a recipe and a test file."""
    monkeypatch.chdir(tmp_path)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "good.yaml").write_text(HOOK.format(name="good"))
    outside = tmp_path / "outside"
    outside.mkdir()
    rest = HOOK.format(name="private").split("\n", 1)[1]
    (outside / "private.yaml").write_text(SECRET_LINE + "\n" + rest)
    (outside / "private.test.yaml").write_text(TESTS)
    return recipes


def _found(results: list[LoadResult]) -> dict[str, list[tuple[str, str, int, int]]]:
    return {
        r.file: [(d.code, d.file, d.line, d.column) for d in r.diagnostics if d.is_error]
        for r in results
    }


def test_a_recipe_linked_from_outside_is_not_read(tree: Path) -> None:
    os.symlink("../outside/private.yaml", tree / "private.yaml")
    results = load_directory([tree], {})
    assert _found(results) == {
        "recipes/good.yaml": [],
        "recipes/private.yaml": [("IO002", "recipes/private.yaml", 1, 1)],
    }
    refused = next(r for r in results if r.file == "recipes/private.yaml")
    assert refused.recipe is None
    real = tree.parent / "outside" / "private.yaml"
    assert refused.diagnostics[0].message == (
        f"recipe file private.yaml is not read: it resolves to {real}, outside the recipes "
        "directory; move the file into it (or pass the directory that holds it)"
    )
    # no snippet: printing one would read the file
    text = format_text([d for r in results for d in r.diagnostics if d.is_error])
    assert "PRIVATE-LINE" not in text
    assert text.startswith("recipes/private.yaml:1:1: error: recipe file private.yaml")


def test_a_linked_directory_pointing_outside_is_not_read(tree: Path) -> None:
    os.symlink("../outside", tree / "linked")
    results = load_directory([tree], {})
    # Python before 3.13 does not walk into a linked directory; later ones must refuse it
    assert all(r.recipe is None or r.recipe.name == "good" for r in results)


def test_a_link_inside_the_directory_is_read(tree: Path) -> None:
    (tree / "store").mkdir()
    (tree / "store" / "other.txt").write_text(HOOK.format(name="other"))
    os.symlink("store/other.txt", tree / "other.yaml")
    results = load_directory([tree], {})
    assert sorted(r.recipe.name for r in results if r.recipe is not None) == ["good", "other"]
    assert [d for r in results for d in r.diagnostics if d.is_error] == []


def test_a_recipe_named_on_the_command_line_is_read_wherever_it_is(tree: Path) -> None:
    os.symlink("../outside/private.yaml", tree / "private.yaml")
    results = load_directory([tree / "private.yaml"], {})
    assert [r.recipe.name for r in results if r.recipe is not None] == ["private"]
    # its test file beside it (in its own folder) is read too
    assert results[0].recipe is not None and len(results[0].recipe.tests) == 1


def test_a_test_file_linked_from_outside_is_not_read(tree: Path) -> None:
    os.symlink("../outside/private.test.yaml", tree / "good.test.yaml")
    results = load_directory([tree], {})
    assert _found(results) == {"recipes/good.yaml": [("IO002", "recipes/good.test.yaml", 1, 1)]}
    good = results[0]
    assert good.recipe is not None and good.recipe.tests == ()  # the recipe itself compiles
    assert good.diagnostics[-1].message.startswith(
        "test file good.test.yaml is not read: it resolves to "
    )


def test_a_named_recipes_test_file_must_be_in_its_folder(tree: Path) -> None:
    os.symlink("../outside/private.test.yaml", tree / "good.test.yaml")
    results = load_directory([tree / "good.yaml"], {})
    assert _found(results) == {"recipes/good.yaml": [("IO002", "recipes/good.test.yaml", 1, 1)]}
