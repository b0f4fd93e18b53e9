"""Hierarchies (roles, territories): cycle checks and walks over a parent map."""

from __future__ import annotations

from collections.abc import Mapping

from feeds_server.errors import ValidationFailed


def check_new_parent(parents: Mapping[int, int | None], node: int, new_parent: int | None) -> None:
    """Refuse a parent that is the node itself or one of its descendants (that would make a cycle)."""
    seen: set[int] = set()
    current = new_parent
    while current is not None and current not in seen:
        if current == node:
            raise ValidationFailed("hierarchy_cycle", "a node cannot be placed under itself or its descendants", field="parent_id")
        seen.add(current)
        current = parents.get(current)


def descendants(parents: Mapping[int, int | None], root: int) -> set[int]:
    """Every node below `root` (not `root` itself)."""
    children: dict[int, list[int]] = {}
    for node, parent in parents.items():
        if parent is not None:
            children.setdefault(parent, []).append(node)
    out: set[int] = set()
    stack = list(children.get(root, []))
    while stack:
        node = stack.pop()
        if node in out:
            continue
        out.add(node)
        stack.extend(children.get(node, []))
    return out
