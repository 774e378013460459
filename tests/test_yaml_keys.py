"""A mapping key given twice is refused; a merge's keys may still be overridden (pure)."""

from __future__ import annotations

import pytest
import yaml

from telemetry.yamlkeys import DuplicateKeyError, load_once


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a: 1\nb:\n  c: 1\n  c: 2\n", "line 4, column 3"),
        ("l:\n  - {a: 1, a: 1}\n", "line 2, column 12"),
        ("x: &x {k: 1, k: 2}\ny: *x\n", "line 1, column 14"),
        ("a: 1\n'a': 2\n", "line 2, column 1"),
    ],
)
def test_a_key_given_twice_in_one_mapping_is_refused(text: str, where: str) -> None:
    with pytest.raises(DuplicateKeyError, match=where):
        load_once(text)
    assert isinstance(DuplicateKeyError("x"), yaml.YAMLError)  # told as YAML that is not right


def test_merged_keys_may_be_overridden_and_keys_of_other_types_are_other_keys() -> None:
    text = "base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  x: 3\nn: {1: a, '1': b}\n"
    assert load_once(text) == {
        "base": {"x": 1, "y": 2},
        "thing": {"x": 3, "y": 2},
        "n": {1: "a", "1": "b"},
    }


def test_the_check_sees_the_node_before_any_value_is_made() -> None:
    seen: list[yaml.Node] = []
    assert load_once("a: [1, 2]\n", seen.append) == {"a": [1, 2]}
    assert isinstance(seen[0], yaml.MappingNode)
    assert load_once("") is None
