"""The auto-follow rule criteria language (F-FOLLOW-4): validated and compiled once, evaluated on
every record create and edit.

Criteria are JSON: `{"and": [...]}`, `{"or": [...]}`, `{"not": {...}}`, and conditions
`{"field": "Amount", "type": "number", "op": "gt", "value": 50000}`.

| type | operators |
|---|---|
| number, date | eq, neq, gt, gte, lt, lte, between, in, not_in, is_empty, is_not_empty |
| text | eq, neq, contains, starts_with, ends_with, in, not_in, is_empty, is_not_empty (case-insensitive) |
| boolean | eq, neq, is_empty, is_not_empty |
| picklist | eq, neq, in, not_in, is_empty, is_not_empty (exact match) |

A missing, null or empty value is "empty": every comparison on it is false except `is_empty`, and
`neq` / `not_in`, which hold ("not X" is true of nothing). A value that cannot be read as the
condition's type makes the condition false; evaluation never raises.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from feeds_server.errors import ValidationFailed

MAX_DEPTH = 8
MAX_CONDITIONS = 50

TYPES = ("number", "text", "date", "boolean", "picklist")
_COMPARE = ("eq", "neq", "gt", "gte", "lt", "lte", "between", "in", "not_in", "is_empty", "is_not_empty")
OPS: dict[str, tuple[str, ...]] = {
    "number": _COMPARE,
    "date": _COMPARE,
    "text": ("eq", "neq", "contains", "starts_with", "ends_with", "in", "not_in", "is_empty", "is_not_empty"),
    "boolean": ("eq", "neq", "is_empty", "is_not_empty"),
    "picklist": ("eq", "neq", "in", "not_in", "is_empty", "is_not_empty"),
}
OP_WORDS = {
    "eq": "=", "neq": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "between": "between", "in": "in",
    "not_in": "not in", "contains": "contains", "starts_with": "starts with", "ends_with": "ends with",
    "is_empty": "is empty", "is_not_empty": "is not empty",
}

Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class Criteria:
    """Compiled criteria: `matches(fields)` is a tree of closures, no parsing at evaluation time."""

    raw: Any
    fields: frozenset[str]
    _predicate: Predicate

    def matches(self, fields: Mapping[str, Any]) -> bool:
        return self._predicate(fields)


def _fail(path: str, message: str) -> ValidationFailed:
    return ValidationFailed("invalid_criteria", f"{path}: {message}", path=path)


# --- reading values as a type (None when it cannot be read) ---------------------------------
def _as_number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


def _as_date(v: Any) -> date | None:
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    if not isinstance(v, str) or len(v) < 10:
        return None
    try:
        return date.fromisoformat(v[:10]) if len(v) == 10 else datetime.fromisoformat(v.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _as_text(v: Any) -> str | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (str, int, float)):
        return str(v).casefold()
    return None


def _as_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in {"true", "false"}:
        return v.lower() == "true"
    return None


def _as_pick(v: Any) -> str | None:
    return v if isinstance(v, str) else None


READERS: dict[str, Callable[[Any], Any]] = {
    "number": _as_number, "date": _as_date, "text": _as_text, "boolean": _as_bool, "picklist": _as_pick,
}


def is_empty(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, (list, dict)) and not v)


# --- compiling -------------------------------------------------------------------------------
def compile_criteria(raw: Any, path: str = "criteria") -> Criteria:
    counter = [0]
    fields: set[str] = set()
    predicate = _compile(raw, path, 1, counter, fields)
    return Criteria(raw, frozenset(fields), predicate)


def _compile(node: Any, path: str, depth: int, counter: list[int], fields: set[str]) -> Predicate:
    if depth > MAX_DEPTH:
        raise _fail(path, f"nested deeper than {MAX_DEPTH} levels")
    if not isinstance(node, dict):
        raise _fail(path, "must be an object")
    keys = set(node)
    for combinator in ("and", "or"):
        if keys == {combinator}:
            items = node[combinator]
            if not isinstance(items, list) or not items:
                raise _fail(f"{path}.{combinator}", "must be a non-empty list")
            parts = [_compile(item, f"{path}.{combinator}[{i}]", depth + 1, counter, fields) for i, item in enumerate(items)]
            if combinator == "and":
                return lambda f, parts=parts: all(p(f) for p in parts)
            return lambda f, parts=parts: any(p(f) for p in parts)
    if keys == {"not"}:
        inner = _compile(node["not"], f"{path}.not", depth + 1, counter, fields)
        return lambda f: not inner(f)
    if "field" in keys or "op" in keys:
        counter[0] += 1
        if counter[0] > MAX_CONDITIONS:
            raise _fail(path, f"more than {MAX_CONDITIONS} conditions")
        return _condition(node, path, fields)
    raise _fail(path, "expected and / or / not, or a condition with field, type and op")


def _condition(node: dict[str, Any], path: str, fields: set[str]) -> Predicate:
    unknown = set(node) - {"field", "type", "op", "value"}
    if unknown:
        raise _fail(f"{path}.{sorted(unknown)[0]}", "unknown key")
    field, type_, op = node.get("field"), node.get("type"), node.get("op")
    if not isinstance(field, str) or not field.strip() or len(field) > 100:
        raise _fail(f"{path}.field", "must be a field name")
    if type_ not in TYPES:
        raise _fail(f"{path}.type", f"must be one of {', '.join(TYPES)}")
    if op not in OPS[type_]:
        raise _fail(f"{path}.op", f"operator {op!r} is not allowed for type {type_!r}")
    fields.add(field)
    read = READERS[type_]
    if op in ("is_empty", "is_not_empty"):
        if "value" in node:
            raise _fail(f"{path}.value", f"{op} takes no value")
        want_empty = op == "is_empty"
        return lambda f: is_empty(f.get(field)) is want_empty
    if "value" not in node:
        raise _fail(f"{path}.value", "missing")
    value = node["value"]
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise _fail(f"{path}.value", "must be a non-empty list")
        options = {_typed(v, type_, read, f"{path}.value[{i}]") for i, v in enumerate(value)}
        if op == "in":
            return lambda f: (v := _read(f, field, read)) is not None and v in options
        return lambda f: (v := _read(f, field, read)) is None or v not in options
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise _fail(f"{path}.value", "must be [low, high]")
        low, high = (_typed(v, type_, read, f"{path}.value[{i}]") for i, v in enumerate(value))
        if low > high:
            raise _fail(f"{path}.value", "low must not be above high")
        return lambda f: (v := _read(f, field, read)) is not None and low <= v <= high
    target = _typed(value, type_, read, f"{path}.value")
    if op == "neq":
        return lambda f: (v := _read(f, field, read)) is None or v != target
    compare = {
        "eq": lambda v: v == target, "gt": lambda v: v > target, "gte": lambda v: v >= target,
        "lt": lambda v: v < target, "lte": lambda v: v <= target,
        "contains": lambda v: target in v, "starts_with": lambda v: v.startswith(target), "ends_with": lambda v: v.endswith(target),
    }[op]
    return lambda f: (v := _read(f, field, read)) is not None and compare(v)


def _read(fields: Mapping[str, Any], name: str, read: Callable[[Any], Any]) -> Any:
    value = fields.get(name)
    return None if is_empty(value) else read(value)


def _typed(value: Any, type_: str, read: Callable[[Any], Any], path: str) -> Any:
    """A criteria value must already be of its type (no guessing): numbers as numbers, dates as YYYY-MM-DD."""
    ok = {
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "date": isinstance(value, str) and len(value) == 10 and read(value) is not None,
        "text": isinstance(value, str) and bool(value),
        "boolean": isinstance(value, bool),
        "picklist": isinstance(value, str) and bool(value),
    }[type_]
    if not ok:
        raise _fail(path, f"must be a {type_} value" + (" (YYYY-MM-DD)" if type_ == "date" else ""))
    return read(value)


def criteria_to_text(raw: Any) -> str:
    """A readable rendering for previews: `Amount > 50000 and Stage in (Negotiation, Proposal)`."""
    if "and" in raw or "or" in raw:
        word = "and" if "and" in raw else "or"
        return f" {word} ".join(f"({criteria_to_text(c)})" if ("and" in c or "or" in c) else criteria_to_text(c) for c in raw[word])
    if "not" in raw:
        return f"not ({criteria_to_text(raw['not'])})"
    value = raw.get("value")
    shown = "" if "value" not in raw else (
        f" ({', '.join(map(str, value))})" if raw["op"] in ("in", "not_in") else f" {value[0]} and {value[1]}" if raw["op"] == "between" else f" {value}"
    )
    return f"{raw['field']} {OP_WORDS[raw['op']]}{shown}"
