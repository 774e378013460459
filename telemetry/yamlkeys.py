"""YAML read with every mapping's keys given once.

YAML itself lets a later key silently replace an earlier one: a sensor written with
`no_data_s: 10` and, further down, `no_data_s: 3600`, or a second `tenants:` block pasted into a
file, loaded as the last one alone and passed `hazardhub check` (helper-126). A configuration is
refused instead, naming both lines. Keys brought in by a merge (`<<: *defaults`) may be
overridden, as YAML means them to be.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["DuplicateKeyError", "duplicate_key", "load_once"]

# libyaml's safe loader when PyYAML has it (several times faster on a large configuration)
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.YAMLError):
    """A mapping gives one key twice."""


def _where(node: yaml.Node) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"


def duplicate_key(root: yaml.Node) -> DuplicateKeyError | None:
    """The first mapping key of `root`'s graph given twice in its mapping, as an error naming
    both places; None when every key is given once. Each node is seen once (an alias is the
    same node again), without recursion."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], yaml.Node] = {}
            for key, value in node.value:
                stack.extend((key, value))
                if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE:
                    continue
                name = (key.tag, key.value)
                if name in first:
                    return DuplicateKeyError(
                        f"{_where(key)}: the key {key.value!r} is given twice in one mapping"
                        f" (first at {_where(first[name])}); YAML would keep the last one"
                        " alone: keep one"
                    )
                first[name] = key
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return None


def load_once(text: str, check: Any = None) -> Any:
    """YAML to plain data with a safe loader (no Python objects); raises yaml.YAMLError for
    text that is not YAML, DuplicateKeyError for a key given twice in a mapping. `check`, when
    given, is called with the composed root node before any value is made (it may raise)."""
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        error = duplicate_key(node)
        if error is not None:
            raise error
        if check is not None:
            check(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()
