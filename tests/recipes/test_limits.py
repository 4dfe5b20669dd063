"""Hostile recipe files: every limit is a diagnostic with a position, never an exception.

Before the limits, the 666-byte billion-laughs file made lint allocate until MemoryError, an
alias inside its own anchor and 900 levels of nesting raised RecursionError, and a 5,000-digit
integer raised ValueError: each printed a traceback and stopped the runner's reload.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import yaml

from automations.recipes.compiler import load_recipe, load_recipe_text
from automations.recipes.files import read_recipe_file
from automations.recipes.yamllimits import MAX_ALIAS_NODES, MAX_DEPTH, MAX_RECIPE_BYTES
from automations.recipes.yamlsource import _ALIAS, parse_yaml
from tests.recipes.conftest import ENV, codes

HOSTILE = Path(__file__).resolve().parents[1] / "hostile"


def _bomb(levels: int, width: int) -> str:
    """``levels`` anchors, each a list of ``width`` aliases of the previous one."""
    lines = ["l1: &l1 [" + ",".join(["lol"] * width) + "]"]
    for n in range(2, levels + 1):
        lines.append(f"l{n}: &l{n} [" + ",".join([f"*l{n - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_one_diagnostic_at_the_alias_that_crosses_the_limit() -> None:
    text = (HOSTILE / "billion_laughs.yaml").read_text("utf-8")
    doc = parse_yaml(text, "bomb.yaml")
    assert doc.value is None
    # lol2 adds 10 x 9 values, lol3 10 x 110 (1,190 so far); each *lol3 adds 1,110 more, and the
    # 8th on line 4 (column 13 + 7 x 6 + 1) brings the total to 10,070
    assert codes(tuple(doc.diagnostics)) == [("LIM001", 4, 56)]
    assert "more than 10,000 values (here *lol3)" in doc.diagnostics[0].message


def test_aliases_just_under_the_limit_build_in_full() -> None:
    # 1 + 100 values under l1; each of 99 aliases adds 100: 9,900 added, within 10,000
    text = "l1: &l1 [" + ",".join(["x"] * 100) + "]\nl2: [" + ",".join(["*l1"] * 99) + "]\n"
    doc = parse_yaml(text, "ok.yaml")
    assert doc.diagnostics == []
    assert len(doc.value["l2"]) == 99
    assert doc.value["l2"][98] == ["x"] * 100
    over = text.replace("*l1]", "*l1,*l1,*l1]")  # 101 aliases: 10,100 added
    assert [d.code for d in parse_yaml(over, "over.yaml").diagnostics] == ["LIM001"]
    assert MAX_ALIAS_NODES == 10_000


def test_alias_inside_its_own_anchor_is_an_endless_value() -> None:
    doc = parse_yaml("name: x\nvalue: &loop [1, {again: *loop}]\n", "cycle.yaml")
    assert codes(tuple(doc.diagnostics)) == [("LIM001", 2, 26)]
    assert "endless value" in doc.diagnostics[0].message


def test_a_recipe_reusing_a_block_through_an_alias_compiles() -> None:
    text = textwrap.dedent(
        """\
        name: twice
        trigger: {schedule: {cron: "0 9 * * *"}}
        actions:
          - http.request: &ping {method: POST, url: "https://x.example/ping", json: {a: 1}}
          - http.request: *ping
        """
    )
    result = load_recipe_text(text, "r.yaml", base_dir=Path("."), env=ENV)
    assert result.diagnostics == ()
    assert result.recipe is not None
    assert len(result.recipe.actions) == 2


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1, 900, 5000, 100_000])
def test_flow_nesting(depth: int) -> None:
    text = "name: x\nvalue: " + "[" * depth + "]" * depth + "\n"
    doc = parse_yaml(text, "deep.yaml")
    if depth < MAX_DEPTH:
        assert doc.diagnostics == []
        return
    # the root mapping is level 1, "value" level 2: the 64th "[" (column 7 + 64) is level 65;
    # past 1,000 levels libyaml stops first, at its own limit
    where = (2, 71) if depth <= 1000 else (2, 1007)
    assert codes(tuple(doc.diagnostics)) == [("LIM002", *where)]
    assert doc.value is None


def test_block_nesting_reports_the_first_value_too_deep() -> None:
    text = (HOSTILE / "deep_block_nesting.yaml").read_text("utf-8")
    assert codes(tuple(parse_yaml(text, "d.yaml").diagnostics)) == [("LIM002", 66, 129)]


def test_integer_too_long_to_read() -> None:
    doc = parse_yaml("name: big\nvalue: " + "9" * 5000 + "\nok: 12\n", "big.yaml")
    assert codes(tuple(doc.diagnostics)) == [("LIM004", 2, 8)]
    assert "5000 digits" in doc.diagnostics[0].message
    assert doc.value["ok"] == 12


def test_text_over_the_size_limit() -> None:
    text = "name: x\ndescription: " + "x" * MAX_RECIPE_BYTES + "\n"
    assert codes(tuple(parse_yaml(text, "big.yaml").diagnostics)) == [("LIM003", 1, 1)]


# -- reading the file ---------------------------------------------------------------------------


def test_file_over_the_size_limit_is_not_read_past_it(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"name: x\n" + b"#" * MAX_RECIPE_BYTES)
    d = read_recipe_file(path, "big.yaml")
    assert not isinstance(d, str)
    assert (d.code, d.line, d.column) == ("LIM003", 1, 1)
    assert "256 KiB" in d.message


def test_non_utf8_byte_is_located(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_bytes("name: x\ndescription: héllo \xff\n".encode("latin-1"))
    result = load_recipe(path, ENV)
    assert result.recipe is None
    # line 2: "description: h" is 14 characters, the "é" (0xe9 in Latin-1) is the 15th
    assert codes(result.diagnostics) == [("IO001", 2, 15)]
    assert "byte 0xe9 is not UTF-8" in result.diagnostics[0].message


def test_column_counts_characters_before_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_bytes("name: x\n# naïve \xff\n".encode() + b"\xff\n")
    d = read_recipe_file(path, "r.yaml")
    assert not isinstance(d, str)
    assert (d.code, d.line, d.column) == ("IO001", 3, 1)  # "\xff" as text is UTF-8: fine


def test_line_endings_read_as_text_mode_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_bytes(b"name: x\r\ntrigger: y\rz: 1\n")
    assert read_recipe_file(path, "r.yaml") == path.read_text("utf-8")


def test_fifo_is_not_opened_for_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "r.yaml"
    os.mkfifo(fifo)  # nobody writes: a blocking read would never return
    result = load_recipe(fifo, ENV)
    assert codes(result.diagnostics) == [("IO001", 1, 1)]
    assert "FIFO" in result.diagnostics[0].message


def test_sibling_test_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        'name: r\ntrigger: {schedule: {every: 1m}}\nactions:\n  - http.request: {method: POST, url: "https://x.example/a"}\n'
    )
    (tmp_path / "r.test.yaml").write_bytes(b"tests:\n  - name: caf\xe9\n")
    result = load_recipe(tmp_path / "r.yaml", ENV)
    assert [(d.file.rsplit("/", 1)[-1], d.code, d.line, d.column) for d in result.diagnostics] == [
        ("r.test.yaml", "IO001", 2, 14)
    ]


def test_the_alias_check_is_skipped_only_where_no_alias_can_be() -> None:
    # the check runs when the text has "*" followed by a character an anchor name can start
    # with; libyaml takes an alias for every such character and nothing else
    for c in [chr(i) for i in range(33, 127)] + ["é", "٣", "ß"]:
        text = f"a: &{c}x [1]\nb: *{c}x\n"
        try:
            node = yaml.compose(text, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            continue
        assert node.value[0][1] is node.value[1][1]  # an alias: the anchored node, shared
        assert _ALIAS.search(text), c
    for text in ('cron: "* * * * *"', 'cron: "*/5 * * * *"', "only_run_if: items[*].x"):
        assert not _ALIAS.search(text)
