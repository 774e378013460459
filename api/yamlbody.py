"""YAML request bodies read with a bound on what their aliases expand to.

A YAML alias repeats the node of its anchor: nine lists of nine aliases of the list before,
eight deep, is 400 bytes that load as 43 million values, and checking them held the hub's event
loop for most of a minute. The node graph is composed first (an alias is the same node again,
so this is as cheap as the text); its size once expanded is counted over the graph, each shared
node once; a document over `MAX_NODES` (or whose aliases loop) is refused before any value is
made. A document without aliases is never refused: the request body limit (1 MiB) holds fewer
nodes than that.
"""

from __future__ import annotations

from typing import Any

import yaml

from telemetry.yamlkeys import load_once

__all__ = ["MAX_NODES", "YamlTooLargeError", "load_yaml"]

MAX_NODES = 1 << 19  # the most nodes a 1 MiB body holds written out ("1," a node)


class YamlTooLargeError(ValueError):
    """The document expands, through its aliases, to more than `limit` nodes (or loops)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the YAML document expands through its aliases (*name) to more than {limit} nodes;"
            " write the repeated parts out"
        )
        self.limit = limit


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def expanded_size(root: yaml.Node, limit: int) -> int:
    """The number of nodes of `root` with every alias written out, counted up to `limit + 1`
    (more is not told apart; nor is a loop, an alias inside its own anchor). No recursion: a
    deep document does not reach Python's stack limit."""
    over = limit + 1
    size: dict[int, int] = {}
    open_: set[int] = set()  # nodes whose children are being counted: reaching one is a loop
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, counted = stack.pop()
        key = id(node)
        kids = _children(node)
        if counted:
            open_.discard(key)
            size[key] = min(over, 1 + sum(size[id(k)] for k in kids))
            continue
        if key in size:
            continue
        if key in open_:
            return over
        open_.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in size)
    return size[id(root)]


def load_yaml(text: str, max_nodes: int = MAX_NODES) -> Any:
    """YAML to plain data with a safe loader (no Python objects). Raises yaml.YAMLError for
    text that is not YAML or gives a mapping key twice, YamlTooLargeError for a document over
    `max_nodes` expanded."""

    def bounded(node: yaml.Node) -> None:
        if expanded_size(node, max_nodes) > max_nodes:
            raise YamlTooLargeError(max_nodes)

    return load_once(text, bounded)
