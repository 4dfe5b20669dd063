"""Bounds on what one recipe file can make the loader build.

YAML aliases let a few hundred bytes stand for billions of values ("billion laughs": nine
anchors each repeating the previous one nine times), and an alias inside its own anchor stands
for an endless value. PyYAML's composer shares one node per anchor, so composing stays cheap;
it is turning the node graph into values that explodes. ``alias_overflow`` measures the value
*before* it is built, and ``locate_alias_overflow`` finds the alias to blame for the diagnostic.

The limits are far above any real recipe (the largest example recipe holds about 60 values and
nests 6 levels deep) and far below what hurts (10,000 values build in milliseconds):

- ``MAX_RECIPE_BYTES``: a recipe file is at most 256 KiB;
- ``MAX_ALIAS_NODES``: aliases may add at most 10,000 values to a file (each use of an anchor
  counts every value under it again);
- ``MAX_DEPTH``: mappings and lists nest at most 64 levels deep.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_RECIPE_BYTES",
    "alias_overflow",
    "locate_alias_overflow",
]

MAX_RECIPE_BYTES = 256 * 1024
MAX_ALIAS_NODES = 10_000
MAX_DEPTH = 64

_Scalar = yaml.ScalarNode


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value)


def alias_overflow(root: yaml.Node) -> str | None:
    """Why ``root``'s value is too big to build (``"cycle"`` or ``"expansion"``), else ``None``.

    One pass over the distinct nodes (iterative, so deep nesting cannot overflow the stack):
    the value's size is computed per node once, so a bomb is measured, never expanded.
    """
    sizes: dict[int, int] = {}
    written = 1  # the values as written: the root and one per edge (an alias counts one)
    open_nodes: set[int] = set()  # the current node's ancestors: an alias to one is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(
                1 if isinstance(c, _Scalar) else sizes[id(c)] for c in _children(node)
            )
            continue
        if isinstance(node, _Scalar) or key in sizes:
            continue
        if key in open_nodes:
            return "cycle"
        open_nodes.add(key)
        stack.append((node, True))
        children = _children(node)
        written += len(children)
        for child in children:
            if not isinstance(child, _Scalar):
                if id(child) in open_nodes:
                    return "cycle"
                stack.append((child, False))
    total = 1 if isinstance(root, _Scalar) else sizes[id(root)]
    return "expansion" if total - written > MAX_ALIAS_NODES else None


def locate_alias_overflow(text: str, loader: Any) -> tuple[int, int, str]:
    """The 1-based line and column of the alias that makes the file too big, and which anchor.

    Replays the parser's events (only for a file already known to overflow): each anchor's
    size is known when its node ends, so at each alias the values added so far are known, and
    an alias to an anchor still open is the cycle.
    """
    sizes: dict[str, int] = {}
    open_anchors: list[str | None] = []
    counts: list[int] = [0]
    added = 0
    first: tuple[int, int, str] | None = None
    for event in yaml.parse(text, Loader=loader):
        mark = event.start_mark
        where = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        if isinstance(event, yaml.AliasEvent):
            anchor = str(event.anchor)
            if first is None:
                first = (*where, anchor)
            if anchor in open_anchors:
                return (*where, anchor)
            size = sizes.get(anchor, 1)
            added += size - 1
            counts[-1] += size
            if added > MAX_ALIAS_NODES:
                return (*where, anchor)
        elif isinstance(event, yaml.ScalarEvent):
            counts[-1] += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            open_anchors.append(event.anchor)
            counts.append(1)
        elif isinstance(event, yaml.CollectionEndEvent):
            opened = open_anchors.pop()
            size = counts.pop()
            counts[-1] += size
            if opened is not None:
                sizes[opened] = size
    return first or (1, 1, "")
