"""Hot reload as values: unchanged files keep their recipe, broken edits keep the last good one."""

from __future__ import annotations

from pathlib import Path

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
