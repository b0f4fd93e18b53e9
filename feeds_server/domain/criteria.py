"""The auto-follow rule criteria language (F-FOLLOW-4): validated and compiled once, evaluated on
every record create and edit.

Criteria are JSON: `{"and": [...]}`, `{"or": [...]}`, `{"not": {...}}`, and conditions
`{"field": "Amount", "type": "number", "op": "gt", "value": 50000}`. `compile_criteria` checks the
whole tree and turns it into closures, so evaluation neither parses nor validates.

| type | operators |
|---|---|
| number, date | eq, neq, gt, gte, lt, lte, between, in, not_in, is_empty, is_not_empty |
| text | eq, neq, contains, starts_with, ends_with, in, not_in, is_empty, is_not_empty (case-insensitive) |
| boolean | eq, neq, is_empty, is_not_empty |
| picklist | eq, neq, in, not_in, is_empty, is_not_empty (exact match) |

Evaluation never raises, whatever the CRM sends:

- A missing field, `null`, a blank string, `[]` or `{}` is *empty*. On an empty value `is_empty`
  holds, and so do `neq` and `not_in` ("not equal to X" is true of nothing); every other operator,
  `is_not_empty` included, is false.
- A value that cannot be read as the condition's type (`"abc"` for a number, `[1]` for a picklist)
  makes the condition false whatever the operator, `neq`, `not_in` and `is_not_empty` included: a
  typed condition is never satisfied by a value of another type. `{"not": ...}` of it is true.
- Readable values: numbers from int, float or a decimal string; text from str or a number (compared
  casefolded); dates from `YYYY-MM-DD`, an ISO datetime (its own calendar date, not shifted to UTC)
  or `date`/`datetime` objects; booleans from bool or "true"/"false"; picklist options from str,
  compared exactly as a CRM picklist does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from feeds_server import limits
from feeds_server.errors import ValidationFailed

# Sanity caps on one criteria tree (the spec sets none); they belong in limits.py eventually.
MAX_DEPTH = 8
MAX_CONDITIONS = 50

TYPES = ("number", "text", "date", "boolean", "picklist")

_EQUALITY = ("eq", "neq")
_ORDER = ("gt", "gte", "lt", "lte", "between")
_MEMBERSHIP = ("in", "not_in")
_TEXT_MATCH = ("contains", "starts_with", "ends_with")
_PRESENCE = ("is_empty", "is_not_empty")
OPERATORS = _EQUALITY + _ORDER + _MEMBERSHIP + _TEXT_MATCH + _PRESENCE

# The operators of each type; every other pair is refused when compiling.
OPS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "number": _EQUALITY + _ORDER + _MEMBERSHIP + _PRESENCE,
        "date": _EQUALITY + _ORDER + _MEMBERSHIP + _PRESENCE,
        "text": _EQUALITY + _TEXT_MATCH + _MEMBERSHIP + _PRESENCE,
        "boolean": _EQUALITY + _PRESENCE,
        "picklist": _EQUALITY + _MEMBERSHIP + _PRESENCE,
    }
)

# What `value` each operator takes: one value of the type, [low, high], a non-empty list, or none.
VALUE_SHAPES: Mapping[str, str] = MappingProxyType(
    {**dict.fromkeys(OPERATORS, "one"), "between": "pair", **dict.fromkeys(_MEMBERSHIP, "list"), **dict.fromkeys(_PRESENCE, "none")}
)

GROUP_KEYS = ("and", "or", "not")
CONDITION_KEYS = ("field", "type", "op", "value")
_TRUE_WHEN_EMPTY = frozenset({"is_empty", "neq", "not_in"})

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]
_ValueTest = Callable[[Any], bool]

_INVALID: Any = object()  # a record value that cannot be read as the condition's type
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True, eq=False)
class Criteria:
    """Compiled criteria. `fields` lets callers skip edits that touch none of them."""

    raw: Any
    fields: frozenset[str]
    _predicate: Predicate

    def matches(self, fields: Record) -> bool:
        """Never raises, whatever the record holds (see the module docstring)."""
        return self._predicate(fields)


def compile_criteria(raw: Any, path: str = "criteria") -> Criteria:
    """Validate all of `raw` and compile it. Errors carry `path`, e.g. `criteria.and[2].value`."""
    compiler = _Compiler()
    predicate = compiler.node(raw, path, 1)
    return Criteria(raw, frozenset(compiler.fields), predicate)


def _fail(path: str, message: str, **details: Any) -> ValidationFailed:
    # The path leads the message too: command-line tools print only the message.
    return ValidationFailed("invalid_criteria", f"{path}: {message}", path=path, **details)


# --- condition values (strict: exactly the type, or refused) ---------------------------------


def _parse_number(value: Any, path: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        raise _fail(path, "must be a number")
    return value


def _parse_text(value: Any, path: str) -> Any:
    return _parse_string(value, path, "must be a non-blank text (use is_empty for blanks)").casefold()


def _parse_picklist(value: Any, path: str) -> Any:
    return _parse_string(value, path, "must be a picklist option (a non-blank string)")


def _parse_string(value: Any, path: str, message: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, message)
    if "\x00" in value:
        raise _fail(path, "must not contain NUL characters")
    return value


def _parse_date(value: Any, path: str) -> Any:
    day = _iso_day(value) if isinstance(value, str) and _ISO_DAY.fullmatch(value) else _INVALID
    if day is _INVALID:
        raise _fail(path, "must be a date as YYYY-MM-DD")
    return day


def _parse_boolean(value: Any, path: str) -> Any:
    if not isinstance(value, bool):
        raise _fail(path, "must be true or false")
    return value


def _finite(value: int | float) -> bool:
    # math.isfinite overflows on a huge int; every int is finite.
    return isinstance(value, int) or math.isfinite(value)


# --- record values (lenient: read what can be read, `_INVALID` otherwise; never raise) -------


def _read_number(value: Any) -> Any:
    if isinstance(value, bool):
        return _INVALID
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _INVALID
    if isinstance(value, str) and "_" not in value:  # float() would read "1_000"
        return _number_from_text(value)
    return _INVALID


def _number_from_text(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return _INVALID
    return number if math.isfinite(number) else _INVALID  # "nan", "inf", "1e999"


def _read_text(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _INVALID
    try:
        return str(value).casefold()
    except ValueError:  # more digits than Python agrees to convert
        return _INVALID


def _read_picklist(value: Any) -> Any:
    return value if isinstance(value, str) else _INVALID


def _read_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower(), _INVALID)
    return _INVALID


def _read_date(value: Any) -> Any:
    if isinstance(value, str):
        return _day_of(value.strip())
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return _INVALID


def _day_of(text: str) -> Any:
    if len(text) == 10:
        return _iso_day(text)
    if len(text) < 11 or text[10] not in "T ":
        return _INVALID
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        return _INVALID


def _iso_day(text: str) -> Any:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return _INVALID


@dataclass(frozen=True)
class _Kind:
    parse: Callable[[Any, str], Any]
    read: Callable[[Any], Any]


_KINDS: Mapping[str, _Kind] = MappingProxyType(
    {
        "number": _Kind(_parse_number, _read_number),
        "text": _Kind(_parse_text, _read_text),
        "date": _Kind(_parse_date, _read_date),
        "boolean": _Kind(_parse_boolean, _read_boolean),
        "picklist": _Kind(_parse_picklist, _read_picklist),
    }
)


# --- operators: each builds a test of one read, non-empty record value -----------------------


def _value_test(op: str, kind: _Kind, value: Any, path: str) -> _ValueTest:
    if op == "between":
        return _between(kind, value, path)
    if op in _MEMBERSHIP:
        return _membership(op, kind, value, path)
    if op in _PRESENCE:
        holds = op == "is_not_empty"
        return lambda v: holds
    return _comparison(op, kind.parse(value, path))


def _comparison(op: str, x: Any) -> _ValueTest:
    tests: dict[str, _ValueTest] = {
        "eq": lambda v: v == x,
        "neq": lambda v: v != x,
        "gt": lambda v: v > x,
        "gte": lambda v: v >= x,
        "lt": lambda v: v < x,
        "lte": lambda v: v <= x,
        "contains": lambda v: x in v,
        "starts_with": lambda v: v.startswith(x),
        "ends_with": lambda v: v.endswith(x),
    }
    return tests[op]


def _between(kind: _Kind, value: Any, path: str) -> _ValueTest:
    if not isinstance(value, list) or len(value) != 2:
        raise _fail(path, "must be a list of two values [low, high]")
    low = kind.parse(value[0], f"{path}[0]")
    high = kind.parse(value[1], f"{path}[1]")
    if low > high:
        raise _fail(path, "low must not be greater than high")
    return lambda v: low <= v <= high


def _membership(op: str, kind: _Kind, value: Any, path: str) -> _ValueTest:
    if not isinstance(value, list) or not value:
        raise _fail(path, f"operator '{op}' needs a non-empty list of values")
    options = frozenset(kind.parse(item, f"{path}[{i}]") for i, item in enumerate(value))
    if op == "in":
        return options.__contains__
    return lambda v: v not in options


# --- the tree --------------------------------------------------------------------------------


def _condition(field: str, read: Callable[[Any], Any], test: _ValueTest, when_empty: bool) -> Predicate:
    def matches(record: Record) -> bool:
        raw = record.get(field)
        if _is_empty(raw):
            return when_empty
        value = read(raw)
        return value is not _INVALID and test(value)

    return matches


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value or value.isspace()
    return isinstance(value, list | dict) and not value


def _all(parts: tuple[Predicate, ...]) -> Predicate:
    def matches(record: Record) -> bool:
        for part in parts:
            if not part(record):
                return False
        return True

    return matches


def _any(parts: tuple[Predicate, ...]) -> Predicate:
    def matches(record: Record) -> bool:
        for part in parts:
            if part(record):
                return True
        return False

    return matches


def _not(part: Predicate) -> Predicate:
    return lambda record: not part(record)


class _Compiler:
    """One walk over the tree, counting conditions across all its branches."""

    def __init__(self) -> None:
        self.conditions = 0
        self.fields: set[str] = set()

    def node(self, raw: Any, path: str, depth: int) -> Predicate:
        if depth > MAX_DEPTH:
            raise _fail(path, f"criteria nest at most {MAX_DEPTH} levels deep", limit=MAX_DEPTH)
        if not isinstance(raw, dict):
            raise _fail(path, "must be an object: a condition, or one of 'and', 'or', 'not'")
        groups = [key for key in GROUP_KEYS if key in raw]
        if len(groups) > 1:
            raise _fail(path, "a group holds exactly one of 'and', 'or', 'not'")
        if groups:
            return self.group(raw, groups[0], path, depth)
        if not raw.keys() & set(CONDITION_KEYS):
            raise _fail(path, "expected 'and', 'or', 'not', or a condition with field, type and op")
        return self.condition(raw, path)

    def group(self, raw: dict[str, Any], key: str, path: str, depth: int) -> Predicate:
        _refuse_unknown_keys(raw, (key,), path)
        inner, inner_path = raw[key], f"{path}.{key}"
        if key == "not":
            return _not(self.node(inner, inner_path, depth + 1))
        if not isinstance(inner, list) or not inner:
            raise _fail(inner_path, "must be a non-empty list of criteria")
        parts = tuple(self.node(item, f"{inner_path}[{i}]", depth + 1) for i, item in enumerate(inner))
        if len(parts) == 1:
            return parts[0]
        return _all(parts) if key == "and" else _any(parts)

    def condition(self, raw: dict[str, Any], path: str) -> Predicate:
        _refuse_unknown_keys(raw, CONDITION_KEYS, path)
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise _fail(path, f"criteria hold at most {MAX_CONDITIONS} conditions", limit=MAX_CONDITIONS)
        field = _field_name(raw, path)
        type_ = _type_name(raw, path)
        op = _operator(raw, type_, path)
        if op in _PRESENCE and "value" in raw:
            raise _fail(f"{path}.value", f"operator '{op}' takes no value")
        if op not in _PRESENCE and "value" not in raw:
            raise _fail(f"{path}.value", f"operator '{op}' needs a value")
        kind = _KINDS[type_]
        test = _value_test(op, kind, raw.get("value"), f"{path}.value")
        self.fields.add(field)
        return _condition(field, kind.read, test, when_empty=op in _TRUE_WHEN_EMPTY)


def _refuse_unknown_keys(raw: dict[str, Any], allowed: tuple[str, ...], path: str) -> None:
    for key in raw:
        if key not in allowed:
            raise _fail(f"{path}.{key}", f"unknown key '{key}'")


def _string(raw: dict[str, Any], key: str, path: str) -> str:
    if key not in raw:
        raise _fail(f"{path}.{key}", "is required")
    if not isinstance(raw[key], str):
        raise _fail(f"{path}.{key}", "must be a string")
    return raw[key]


def _field_name(raw: dict[str, Any], path: str) -> str:
    name = _string(raw, "field", path)
    if not name.strip() or len(name) > limits.MAX_NAME_CHARS or "\x00" in name:
        raise _fail(f"{path}.field", f"must be a field name of 1 to {limits.MAX_NAME_CHARS} characters")
    return name


def _type_name(raw: dict[str, Any], path: str) -> str:
    type_ = _string(raw, "type", path)
    if type_ not in TYPES:
        raise _fail(f"{path}.type", f"unknown type '{type_}': must be one of {', '.join(TYPES)}")
    return type_


def _operator(raw: dict[str, Any], type_: str, path: str) -> str:
    op = _string(raw, "op", path)
    if op not in OPERATORS:
        raise _fail(f"{path}.op", f"unknown operator '{op}': must be one of {', '.join(OPERATORS)}")
    if op not in OPS[type_]:
        raise _fail(f"{path}.op", f"operator '{op}' is not allowed for type '{type_}'")
    return op


# --- previews --------------------------------------------------------------------------------

OP_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "eq": "=", "neq": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "between": "between",
        "in": "in", "not_in": "not in", "contains": "contains", "starts_with": "starts with",
        "ends_with": "ends with", "is_empty": "is empty", "is_not_empty": "is not empty",
    }
)


def criteria_to_text(raw: Any) -> str:
    """Readable English for previews: `Amount > 50000 and Stage in (Negotiation, Closed Won)`.

    Validates first: no preview is shown of criteria the server would refuse.
    """
    compile_criteria(raw)
    return _render(raw, nested=False)


def _render(node: dict[str, Any], nested: bool) -> str:
    if "not" in node:
        return f"not ({_render(node['not'], nested=False)})"
    if "and" in node or "or" in node:
        word = "and" if "and" in node else "or"
        return _render_group(word, node[word], nested)
    return _render_condition(node)


def _render_group(word: str, items: list[dict[str, Any]], nested: bool) -> str:
    if len(items) == 1:
        return _render(items[0], nested)
    text = f" {word} ".join(_render(item, nested=True) for item in items)
    return f"({text})" if nested else text


def _render_condition(node: dict[str, Any]) -> str:
    label, op, type_ = _label(node["field"]), node["op"], node["type"]
    value = node.get("value")
    if op in _PRESENCE:
        return f"{label} {OP_WORDS[op]}"
    if op == "between":
        return f"{label} between {_shown(type_, value[0])} and {_shown(type_, value[1])}"
    if op in _MEMBERSHIP:
        return f"{label} {OP_WORDS[op]} ({', '.join(_shown(type_, item) for item in value)})"
    return f"{label} {OP_WORDS[op]} {_shown(type_, value)}"


def _label(field: str) -> str:
    """`Lead_Source` reads as `Lead Source`, `amount` as `Amount`."""
    text = field.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _shown(type_: str, value: Any) -> str:
    if type_ == "boolean":
        return "true" if value else "false"
    if type_ == "text":
        return f'"{value}"'
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)
