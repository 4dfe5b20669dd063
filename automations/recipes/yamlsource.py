"""YAML with positions: parse a recipe file into plain values plus where each one was written.

PyYAML's C composer builds the node tree (fast); we build the values ourselves so that duplicate
keys and non-string keys become diagnostics instead of being silently resolved, and so that every
key and value keeps its 1-based line and column.

A file is measured before it is built (``yamllimits``): aliases that would expand into more than
``MAX_ALIAS_NODES`` values, or into an endless value, nesting deeper than ``MAX_DEPTH``, text
over ``MAX_RECIPE_BYTES`` and integers too long to read are diagnostics, never a MemoryError,
RecursionError or ValueError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from automations.diagnostics import Diagnostic, Severity
from automations.recipes.yamllimits import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    MAX_RECIPE_BYTES,
    alias_overflow,
    locate_alias_overflow,
)

__all__ = ["Path_", "Positions", "SourceDoc", "parse_yaml", "tab_diagnostics"]

try:  # the C composer is an order of magnitude faster; fall back when libyaml is missing
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _BaseLoader = yaml.SafeLoader

Path_ = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_CONSTRUCT = yaml.SafeLoader("")  # only its scalar constructors are used


#: Where an alias could be: "*" then an anchor name's first character (libyaml and PyYAML take
#: only ASCII letters, digits, "_" and "-"). Cron fields ("* * * * *", "*/5") and JMESPath
#: projections ("[*]") do not match, so most files skip the alias check.
_ALIAS = re.compile(r"\*[\w-]")

#: Tags of plain scalars by their text, as the resolver found them (bounded below).
_PLAIN_TAGS: dict[str, str] = {}
_MAX_PLAIN_TAGS = 4096


class _Loader(_BaseLoader):  # type: ignore[misc]
    """The safe loader, resolving each distinct plain scalar's tag once.

    The C composer calls back into the Python resolver for every node, and the regular
    expressions behind ``resolve`` were a fifth of the parse. No path resolver is ever added to
    this class, so the answers are ``Resolver.resolve``'s without them: a mapping or a sequence
    has the default tag, a quoted scalar is text, and a plain scalar's tag depends on its text.
    """

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is not yaml.ScalarNode:
            return _MAP if kind is yaml.MappingNode else _SEQ
        if not implicit[0]:
            return _STR  # quoted (or tagged "!"): text
        tag = _PLAIN_TAGS.get(value)
        if tag is None:
            if len(_PLAIN_TAGS) >= _MAX_PLAIN_TAGS:
                _PLAIN_TAGS.clear()
            tag = _PLAIN_TAGS[value] = super().resolve(kind, value, implicit)
        return tag

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass  # only path resolvers need it

    def ascend_resolver(self) -> None:
        pass


@dataclass(slots=True)
class Positions:
    """1-based (line, column) of each value and each mapping key, by path."""

    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def of_value(self, path: Path_) -> tuple[int, int]:
        """Where the value at ``path`` starts, or its nearest written ancestor."""
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, (1, 1))

    def of_key(self, path: Path_) -> tuple[int, int]:
        """Where the key naming ``path`` starts (falls back to the value's position)."""
        return self.keys.get(path) or self.of_value(path)


@dataclass(slots=True)
class SourceDoc:
    """A parsed file: its value (``None`` when unparseable), positions and findings so far."""

    file: str
    text: str
    value: Any
    positions: Positions
    diagnostics: list[Diagnostic]
    #: Paths of integers written with a leading ``+`` (YAML 1.1 reads ``+1555...`` as a number).
    plus_numbers: list[Path_] = field(default_factory=list)
    #: Paths of ``{/Column}`` written without quotes (YAML reads a one-key mapping) and the key.
    brace_refs: list[tuple[Path_, str]] = field(default_factory=list)


def _diag(file: str, mark: Any, code: str, message: str) -> Diagnostic:
    return Diagnostic(file, mark.line + 1, mark.column + 1, Severity.ERROR, code, message)


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.pos = Positions()
        self.diags: list[Diagnostic] = []
        self.plus_numbers: list[Path_] = []
        self.brace_refs: list[tuple[Path_, str]] = []
        self.too_deep = False

    def build(self, node: yaml.Node, path: Path_) -> Any:
        mark = node.start_mark
        self.pos.values[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if len(path) >= MAX_DEPTH:
            if not self.too_deep:  # once per file: the deepest point says it all
                self.too_deep = True
                self.diags.append(_too_deep(self.file, mark.line + 1, mark.column + 1))
            return None
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        assert isinstance(node, yaml.MappingNode)
        return self.mapping(node, path)

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        values, keys = self.pos.values, self.pos.keys
        if node.flow_style and len(node.value) == 1:
            k, v = node.value[0]
            if (
                isinstance(k, yaml.ScalarNode)
                and k.value.startswith("/")
                and isinstance(v, yaml.ScalarNode)
                and v.tag == _NULL
                and v.value == ""
            ):
                self.brace_refs.append((path, k.value))
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            km = key_node.start_mark
            if key_node.tag != _STR or not isinstance(key_node, yaml.ScalarNode):
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                self.diags.append(
                    _diag(
                        self.file,
                        km,
                        "YAML003",
                        f"key {shown!r} is not a string (YAML reads it as "
                        f'{key_node.tag.rsplit(":", 1)[-1]}); quote it: "{shown}"',
                    )
                )
                continue
            key = key_node.value
            at = (*path, key)
            if key in out:
                self.diags.append(
                    _diag(
                        self.file,
                        km,
                        "YAML002",
                        f'duplicate key "{key}" (first defined at line {keys[at][0]}); '
                        "remove one of them",
                    )
                )
                continue
            keys[at] = (km.line + 1, km.column + 1)
            if value_node.tag == _STR and isinstance(value_node, yaml.ScalarNode):
                # most values are text: skip the generic dispatch (a third of the build time)
                vm = value_node.start_mark
                values[at] = (vm.line + 1, vm.column + 1)
                out[key] = value_node.value
            else:
                out[key] = self.build(value_node, at)
        return out

    def scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        tag = node.tag
        if tag == _STR:
            return node.value
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return _CONSTRUCT.construct_yaml_bool(node)
        if tag == _INT:
            if node.value.startswith("+"):
                self.plus_numbers.append(path)
            try:
                return _CONSTRUCT.construct_yaml_int(node)
            except ValueError:  # more digits than Python converts (4,300)
                self.diags.append(
                    _diag(
                        self.file,
                        node.start_mark,
                        "LIM004",
                        f"this number has {len(node.value)} digits, too many to read; "
                        "quote it if it is text",
                    )
                )
                return node.value
        if tag == _FLOAT:
            return _CONSTRUCT.construct_yaml_float(node)
        # timestamps, binary and custom tags stay as the text the author wrote
        return node.value


_MAX_TAB_LINES = 5


def tab_diagnostics(text: str, file: str, error_line: int) -> list[Diagnostic]:
    """``YAML005`` for each line up to ``error_line`` indented with tab characters (the YAML
    error such a file gets never says "tab"); empty when no indentation holds a tab."""
    out: list[Diagnostic] = []
    for number, line in enumerate(text.splitlines()[:error_line], 1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        tabs = [i + 1 for i, c in enumerate(indent) if c == "\t"]
        if not tabs:
            continue
        where = f"column {tabs[0]}" if len(tabs) == 1 else f"columns {', '.join(map(str, tabs))}"
        count = "a tab character" if len(tabs) == 1 else f"{len(tabs)} tab characters"
        out.append(
            Diagnostic(
                file,
                number,
                tabs[0],
                Severity.ERROR,
                "YAML005",
                f"line {number} is indented with {count} (at {where}); YAML indentation must "
                "be spaces: replace each tab with spaces (2 per level, as in the lines around "
                "it), or set your editor to insert spaces",
            )
        )
        if len(out) == _MAX_TAB_LINES:
            break
    return out


def _too_deep(file: str, line: int, column: int) -> Diagnostic:
    return Diagnostic(
        file,
        line,
        column,
        Severity.ERROR,
        "LIM002",
        f"values nest more than {MAX_DEPTH} levels deep here, the limit for a recipe; "
        "flatten the structure",
    )


def _failed(file: str, text: str, d: Diagnostic) -> SourceDoc:
    return SourceDoc(file, text, None, Positions(), [d])


def parse_yaml(text: str, file: str) -> SourceDoc:
    """Parse one YAML document. Syntax errors become a ``YAML001`` diagnostic with position
    (``YAML005`` when lines are indented with tabs); a file over the limits (module docstring)
    a ``LIM`` one."""
    if len(text) * 4 > MAX_RECIPE_BYTES and len(text.encode("utf-8")) > MAX_RECIPE_BYTES:
        msg = f"the recipe is larger than {MAX_RECIPE_BYTES // 1024} KiB, the limit; split it"
        return _failed(file, text, Diagnostic(file, 1, 1, Severity.ERROR, "LIM003", msg))
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or "invalid YAML"
        if "maximum nesting depth" in problem:  # libyaml's own bound (1,000 levels)
            return _failed(file, text, _too_deep(file, line, col))
        context = f" {exc.context}" if exc.context else ""
        tabs = tab_diagnostics(text, file, line) if "\t" in text else []
        if tabs:  # the parser's message never says "tab"
            return SourceDoc(file, text, None, Positions(), tabs)
        msg = f"YAML syntax error: {problem}{context}; check indentation and quoting"
        d = Diagnostic(file, line, col, Severity.ERROR, "YAML001", msg)
        return _failed(file, text, d)
    except yaml.YAMLError as exc:
        d = Diagnostic(file, 1, 1, Severity.ERROR, "YAML001", f"YAML error: {exc}")
        return _failed(file, text, d)
    except RecursionError:  # pragma: no cover - only the pure-Python composer recurses
        return _failed(file, text, _too_deep(file, 1, 1))
    if node is not None and _ALIAS.search(text):  # else the file has no alias at all
        overflow = alias_overflow(node)
        if overflow is not None:
            return _failed(file, text, _alias_diagnostic(file, text, overflow))
    builder = _Builder(file)
    value = None if node is None else builder.build(node, ())
    if builder.too_deep:
        return _failed(file, text, builder.diags[-1])
    return SourceDoc(
        file, text, value, builder.pos, builder.diags, builder.plus_numbers, builder.brace_refs
    )


def _alias_diagnostic(file: str, text: str, overflow: str) -> Diagnostic:
    line, column, anchor = locate_alias_overflow(text, _Loader)
    if overflow == "cycle":
        message = (
            f"alias *{anchor} is inside the value its anchor &{anchor} names, which makes an "
            "endless value; repeat the values instead"
        )
    else:
        message = (
            f"aliases expand to more than {MAX_ALIAS_NODES:,} values (here *{anchor}), the "
            "limit for a recipe; a recipe needs far fewer: repeat fewer anchors or write the "
            "values out"
        )
    return Diagnostic(file, line, column, Severity.ERROR, "LIM001", message)
