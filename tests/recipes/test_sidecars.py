"""``NAME.test.yaml`` sidecars as pre-commit passes them: alone, beside their recipe, orphaned."""

from __future__ import annotations

from pathlib import Path

import pytest

from automations.recipes.compiler import iter_recipe_files, load_directory

RECIPE = """name: r
trigger:
  table: {path: data/leads.csv, key: Email}
actions:
  - http.request: {method: POST, url: "https://x.example/", json: {e: /Email}}
"""
TESTS = """tests:
  - name: posts the email
    row: {Email: a@example.com}
    expect:
      requests: [{body: {e: a@example.com}}]
"""


@pytest.fixture
def recipes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "recipes"
    (d / "data").mkdir(parents=True)
    (d / "data" / "leads.csv").write_text("Email\n")
    (d / "r.yaml").write_text(RECIPE)
    (d / "r.test.yaml").write_text(TESTS)
    return d


def test_a_sidecar_passed_alone_stands_for_its_recipe(recipes: Path) -> None:
    [result] = load_directory([Path("recipes/r.test.yaml")], {})
    assert result.file == "recipes/r.yaml"
    assert result.diagnostics == ()
    assert result.recipe is not None
    [test] = result.recipe.tests
    assert (test.name, test.file, test.line) == ("posts the email", "recipes/r.test.yaml", 2)


def test_a_recipe_named_twice_is_checked_once(recipes: Path) -> None:
    paths = [Path("recipes/r.yaml"), Path("recipes/r.test.yaml"), recipes, recipes / "r.yaml"]
    assert [str(p) for p in iter_recipe_files(paths)] == ["recipes/r.yaml"]
    results = load_directory(paths, {})
    # no DUP001 against itself
    assert [(r.file, r.diagnostics) for r in results] == [("recipes/r.yaml", ())]


def test_an_orphan_sidecar_named_explicitly_is_an_error(recipes: Path) -> None:
    (recipes / "r.yaml").rename(recipes / "renamed.yaml")
    [result] = load_directory([Path("recipes/r.test.yaml")], {})
    assert result.recipe is None
    assert [(d.file, d.line, d.column, d.code) for d in result.diagnostics] == [
        ("recipes/r.test.yaml", 1, 1, "TST001")
    ]
    assert "r.yaml (or r.yml)" in result.diagnostics[0].message
    # a directory walk (the runner's too) still skips it
    assert [r.file for r in load_directory([recipes], {})] == ["recipes/renamed.yaml"]


def test_a_yml_recipe_owns_its_sidecar(recipes: Path) -> None:
    (recipes / "r.yaml").rename(recipes / "r.yml")
    [result] = load_directory([Path("recipes/r.test.yaml")], {})
    assert result.file == "recipes/r.yml"
    assert result.recipe is not None and len(result.recipe.tests) == 1


def test_an_unreadable_sidecar_is_io001_not_a_traceback(recipes: Path) -> None:
    (recipes / "r.test.yaml").write_bytes(b"tests: [\xff\xfe]\n")
    [result] = load_directory([Path("recipes/r.yaml")], {})
    assert [(d.file, d.code) for d in result.diagnostics] == [("recipes/r.test.yaml", "IO001")]
