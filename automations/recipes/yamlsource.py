"""YAML with positions: parse a recipe file into plain values plus where each one was written.

PyYAML's C composer builds the node tree (fast); we build the values ourselves so that duplicate
keys and non-string keys become diagnostics instead of being silently resolved, and so that every
key and value keeps its 1-based line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from automations.diagnostics import Diagnostic, Severity

__all__ = ["Path_", "Positions", "SourceDoc", "parse_yaml"]

try:  # the C composer is an order of magnitude faster; fall back when libyaml is missing
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

Path_ = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_CONSTRUCT = yaml.SafeLoader("")  # only its scalar constructors are used


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


def _diag(file: str, mark: Any, code: str, message: str) -> Diagnostic:
    return Diagnostic(file, mark.line + 1, mark.column + 1, Severity.ERROR, code, message)


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.pos = Positions()
        self.diags: list[Diagnostic] = []
        self.plus_numbers: list[Path_] = []

    def build(self, node: yaml.Node, path: Path_) -> Any:
        mark = node.start_mark
        self.pos.values[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        assert isinstance(node, yaml.MappingNode)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            km = key_node.start_mark
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                self.diags.append(
                    _diag(
                        self.file,
                        km,
                        "YAML003",
                        f"key {shown!r} is not a string (YAML reads it as "
                        f"{key_node.tag.rsplit(':', 1)[-1]}); quote it: \"{shown}\"",
                    )
                )
                continue
            key = key_node.value
            if key in out:
                first = self.pos.keys[(*path, key)]
                self.diags.append(
                    _diag(
                        self.file,
                        km,
                        "YAML002",
                        f'duplicate key "{key}" (first defined at line {first[0]}); '
                        "remove one of them",
                    )
                )
                continue
            self.pos.keys[(*path, key)] = (km.line + 1, km.column + 1)
            out[key] = self.build(value_node, (*path, key))
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
            return _CONSTRUCT.construct_yaml_int(node)
        if tag == _FLOAT:
            return _CONSTRUCT.construct_yaml_float(node)
        # timestamps, binary and custom tags stay as the text the author wrote
        return node.value


def parse_yaml(text: str, file: str) -> SourceDoc:
    """Parse one YAML document. Syntax errors become a ``YAML001`` diagnostic with position."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or "invalid YAML"
        context = f" {exc.context}" if exc.context else ""
        msg = f"YAML syntax error: {problem}{context}; check indentation and quoting"
        d = Diagnostic(file, line, col, Severity.ERROR, "YAML001", msg)
        return SourceDoc(file, text, None, Positions(), [d])
    except yaml.YAMLError as exc:
        d = Diagnostic(file, 1, 1, Severity.ERROR, "YAML001", f"YAML error: {exc}")
        return SourceDoc(file, text, None, Positions(), [d])
    builder = _Builder(file)
    value = None if node is None else builder.build(node, ())
    return SourceDoc(file, text, value, builder.pos, builder.diags, builder.plus_numbers)
