"""Hot reload as values: unchanged files keep their recipe, broken edits keep the last good one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from automations.recipes.compiler import LoadResult, load_recipe_text
from automations.runner.registry import RecipeSet, reload

HOOK = """name: {name}
trigger:
  webhook: {{path: {path}, verify: {{scheme: none}}}}
actions:
  - http.request: {{method: POST, url: "https://x.example/a"}}
"""


def _write(d: Path, file: str, name: str, path: str) -> None:
    (d / file).write_text(HOOK.format(name=name, path=path))


def test_reload_keeps_unchanged_values(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "a", "/a")
    _write(tmp_path, "b.yaml", "b", "/b")
    first = reload(RecipeSet(), tmp_path, {})
    assert set(first.by_name) == {"a", "b"}
    _write(tmp_path, "b.yaml", "b", "/b2")
    second = reload(first, tmp_path, {})
    assert second.by_name["a"] is first.by_name["a"]
    assert second.by_name["b"] is not first.by_name["b"]
    assert second.webhook("/b") is None
    assert second.webhook("/b2") is second.by_name["b"]


def test_broken_edit_keeps_last_good_version(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "a", "/a")
    first = reload(RecipeSet(), tmp_path, {})
    (tmp_path / "a.yaml").write_text("name: a\ntrigger: {webhook: {path: /a}}\nactions: [\n")
    second = reload(first, tmp_path, {})
    assert second.by_name["a"] is first.by_name["a"]
    errors = second.errors()
    assert list(errors) == ["a.yaml"] or next(iter(errors)).endswith("a.yaml")
    assert [d.code for d in next(iter(errors.values()))] == ["YAML001"]


def test_deleted_file_drops_its_recipe(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "a", "/a")
    first = reload(RecipeSet(), tmp_path, {})
    (tmp_path / "a.yaml").unlink()
    second = reload(first, tmp_path, {})
    assert dict(second.by_name) == {}
    assert second.webhook("/a") is None


def test_conflicting_new_file_is_not_loaded(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "a", "/a")
    first = reload(RecipeSet(), tmp_path, {})
    _write(tmp_path, "z.yaml", "z", "/a")
    second = reload(first, tmp_path, {})
    assert set(second.by_name) == {"a"}
    codes = [d.code for ds in second.errors().values() for d in ds]
    assert codes == ["DUP002"]


def _codes(found: RecipeSet) -> dict[str, list[tuple[str, int, int]]]:
    return {
        Path(f).name: [(d.code, d.line, d.column) for d in ds]
        for f, ds in found.diagnostics.items()
        if ds
    }


def test_non_utf8_save_keeps_last_good_version_and_says_where(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "a", "/a")
    first = reload(RecipeSet(), tmp_path, {})
    # re-saved by an editor in Latin-1: one byte that is not UTF-8 (it used to vanish: 404)
    (tmp_path / "a.yaml").write_bytes(HOOK.format(name="a", path="/a").encode() + b"# caf\xe9\n")
    second = reload(first, tmp_path, {})
    assert second.webhook("/a") is first.by_name["a"]
    assert _codes(second) == {"a.yaml": [("IO001", 6, 6)]}


def test_errors_clear_when_the_file_is_saved_back_to_the_running_version(tmp_path: Path) -> None:
    # issue 10: /healthz kept the broken edit's error after the file was fixed back
    _write(tmp_path, "a.yaml", "a", "/a")
    first = reload(RecipeSet(), tmp_path, {})
    good = (tmp_path / "a.yaml").read_text()
    (tmp_path / "a.yaml").write_text(good.replace("path: /a", "path: a"))
    broken = reload(first, tmp_path, {})
    assert [c for c, _, _ in _codes(broken)["a.yaml"]] == ["SCH004", "SEC002"]
    (tmp_path / "a.yaml").write_text(good)
    fixed = reload(broken, tmp_path, {})
    assert fixed.by_name["a"] is first.by_name["a"]
    assert fixed.errors() == {}
    assert _codes(fixed) == {"a.yaml": [("SEC002", 3, 40)]}  # the running version's warning


def test_saved_back_version_reports_its_own_warnings_again(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "a", "/a")
    first = reload(RecipeSet(), tmp_path, {})
    assert _codes(first) == {"a.yaml": [("SEC002", 3, 40)]}  # verify: none is a warning
    good = (tmp_path / "a.yaml").read_text()
    (tmp_path / "a.yaml").write_text(good + "bogus: 1\n")
    broken = reload(first, tmp_path, {})
    assert [c for c, _, _ in _codes(broken)["a.yaml"]] == ["SEC002", "SCH001"]
    (tmp_path / "a.yaml").write_text(good)
    assert _codes(reload(broken, tmp_path, {})) == {"a.yaml": [("SEC002", 3, 40)]}


def test_an_unexpected_exception_in_one_file_keeps_its_last_good_version(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "a", "/a")
    _write(tmp_path, "b.yaml", "b", "/b")
    first = reload(RecipeSet(), tmp_path, {})

    def load(text: str, name: str, **kw: Any) -> LoadResult:
        if name.endswith("a.yaml"):
            raise KeyError("a bug in the loader")
        return load_recipe_text(text, name, **kw)

    _write(tmp_path, "a.yaml", "a", "/a2")
    _write(tmp_path, "b.yaml", "b", "/b2")
    second = reload(first, tmp_path, {}, load)
    assert second.by_name["a"] is first.by_name["a"]  # still on /a
    assert second.webhook("/b2") is second.by_name["b"]  # the other file reloaded
    errors = {Path(f).name: ds for f, ds in second.errors().items()}
    assert [(d.code, d.line, d.column) for d in errors["a.yaml"]] == [("INT001", 1, 1)]
    assert "KeyError: 'a bug in the loader'" in errors["a.yaml"][0].message
    # once loading works again, the same text loads and the error is gone
    third = reload(second, tmp_path, {})
    assert third.webhook("/a2") is third.by_name["a"]
    assert third.errors() == {}


def test_billion_laughs_saved_over_a_recipe_keeps_the_last_good_version(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "a", "/a")
    first = reload(RecipeSet(), tmp_path, {})
    bomb = Path(__file__).resolve().parents[1] / "hostile" / "billion_laughs.yaml"
    (tmp_path / "a.yaml").write_bytes(bomb.read_bytes())
    second = reload(first, tmp_path, {})
    assert second.webhook("/a") is first.by_name["a"]
    assert _codes(second) == {"a.yaml": [("LIM001", 4, 56)]}


def test_a_recipe_linked_from_outside_is_an_error_and_the_others_run(tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    _write(recipes, "a.yaml", "a", "/a")
    (tmp_path / "private.yaml").write_text(HOOK.format(name="private", path="/private"))
    os.symlink("../private.yaml", recipes / "private.yaml")
    found = reload(RecipeSet(), recipes, {})
    assert set(found.by_name) == {"a"}
    assert found.webhook("/private") is None
    assert _codes(found) == {"a.yaml": [("SEC002", 3, 40)], "private.yaml": [("IO002", 1, 1)]}
    assert list(found.errors()) == [f"{recipes}/private.yaml"]
    # the link replaced by the file itself: it loads on the next reload
    (recipes / "private.yaml").unlink()
    (tmp_path / "private.yaml").rename(recipes / "private.yaml")
    again = reload(found, recipes, {})
    assert set(again.by_name) == {"a", "private"}
    assert again.errors() == {}
