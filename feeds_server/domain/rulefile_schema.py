"""`rules/schema.json`, the JSON Schema of rule files for editors and linters, generated from the
models of domain/rulefile.py and the operator tables of domain/criteria.py.

Regenerate the committed file after changing either:

    .venv/bin/python -m feeds_server.domain.rulefile_schema > rules/schema.json

tests/unit/test_rulefile_schema.py fails while the committed file differs from this output.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from feeds_server.domain.criteria import GROUP_KEYS, OPERATORS, OPS, TYPES, VALUE_SHAPES
from feeds_server.domain.rulefile import NameText, RuleFile

REGENERATE = ".venv/bin/python -m feeds_server.domain.rulefile_schema > rules/schema.json"

_HEAD = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://feeds-server.example/rules/schema.json",
    "title": "feeds_server auto-follow rule file",
    "description": (
        "Auto-follow rules that `feeds-server rules apply --org SLUG FILE` copies into an org. Followers are named "
        "(users by email; roles, groups and territories by name) so one file fits many orgs. The server checks more "
        "than this schema can: criteria at most 8 levels deep with at most 50 conditions, between's low <= high, "
        "names listed twice in another case, no duplicate rule names in a module, at most 5 rules per module."
    ),
}
# The models' names in `$defs`, and the names the schema has always given them.
_DEFS = {"RuleSpec": "rule", "NamedFollowers": "followers"}

# How criteria.py reads a condition's value of each type (`_parse_number` …).
_VALUE_DEFS: dict[str, dict[str, Any]] = {
    "number": {"type": "number"},
    "text": {"type": "string", "minLength": 1, "pattern": "\\S"},
    "date": {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
}
_VALUES: dict[str, dict[str, Any]] = {
    "number": {"$ref": "#/$defs/number"},
    "text": {"$ref": "#/$defs/text"},
    "date": {"$ref": "#/$defs/date"},
    "boolean": {"type": "boolean"},
    "picklist": {"$ref": "#/$defs/text"},
}
_DESCRIPTIONS = {
    "text": "Compared case-insensitively.",
    "date": "Values as YYYY-MM-DD; record values may be dates or ISO date-times (compared on their date).",
    "picklist": "Options compared exactly, as the CRM spells them.",
}


def rule_file_schema() -> dict[str, Any]:
    """The schema of a whole rule file, `$defs` in a stable order."""
    schema = _tidy(RuleFile.model_json_schema())
    found = schema.pop("$defs")
    del schema["description"]  # RuleFile's docstring, for Python readers; _HEAD has the file's
    defs = {"name": _tidy(TypeAdapter(NameText).json_schema())}
    defs |= {name: found[model] for model, name in _DEFS.items()}
    return {**_HEAD, **schema, "$defs": defs | _criteria_defs()}


def render() -> str:
    """The file's exact text."""
    return json.dumps(rule_file_schema(), indent=2) + "\n"


def _tidy(node: Any) -> Any:
    """Refs under the schema's own names, and no titles: pydantic titles every model and field after
    its Python name, noise for a reader of the file."""
    if isinstance(node, list):
        return [_tidy(v) for v in node]
    if not isinstance(node, dict):
        return node
    if "x-ref" in node:
        return {"$ref": f"#/$defs/{node['x-ref']}"}
    if "$ref" in node:
        model = node["$ref"].removeprefix("#/$defs/")
        return {**node, "$ref": f"#/$defs/{_DEFS.get(model, model)}"}
    return {k: _tidy(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}


def _criteria_defs() -> dict[str, Any]:
    groups = [_group(key) for key in GROUP_KEYS]
    defs: dict[str, Any] = {
        "criteria": {"description": "A group (and / or / not) or a condition.", "oneOf": [*groups, {"$ref": "#/$defs/condition"}]},
        "condition": {
            "type": "object",
            "required": ["field", "type", "op"],
            "additionalProperties": False,
            "properties": {
                "field": {"$ref": "#/$defs/name"},
                "type": {"enum": list(TYPES)},
                "op": {"enum": list(OPERATORS)},
                "value": {
                    "description": "Absent for is_empty / is_not_empty; [low, high] for between; "
                    "a non-empty list for in / not_in; otherwise one value of the type"
                },
            },
            "oneOf": [{"$ref": f"#/$defs/{type_}Condition"} for type_ in TYPES],
        },
        "noValue": {"not": {"required": ["value"]}},
        **_VALUE_DEFS,
    }
    for type_ in TYPES:
        defs[f"{type_}Condition"] = _condition(type_)
    return defs


def _group(key: str) -> dict[str, Any]:
    inner: dict[str, Any] = {"$ref": "#/$defs/criteria"}
    if key != "not":
        inner = {"type": "array", "minItems": 1, "items": inner}
    return {"type": "object", "required": [key], "additionalProperties": False, "properties": {key: inner}}


def _condition(type_: str) -> dict[str, Any]:
    """One option per value shape, each naming the operators of `type_` that take it."""
    value = _VALUES[type_]
    shapes: dict[str, list[str]] = {}
    for op in OPS[type_]:
        shapes.setdefault(VALUE_SHAPES[op], []).append(op)
    options = []
    for shape in ("one", "pair", "list", "none"):
        ops = shapes.get(shape)
        if not ops:
            continue
        op_schema = {"const": ops[0]} if len(ops) == 1 else {"enum": ops}
        if shape == "none":
            options.append({"$ref": "#/$defs/noValue", "properties": {"op": op_schema}})
            continue
        value_schema = {
            "one": value,
            "pair": {"type": "array", "minItems": 2, "maxItems": 2, "items": value},
            "list": {"type": "array", "minItems": 1, "items": value},
        }[shape]
        options.append({"required": ["value"], "properties": {"op": op_schema, "value": value_schema}})
    out: dict[str, Any] = {"properties": {"type": {"const": type_}}, "oneOf": options}
    if type_ in _DESCRIPTIONS:
        out = {"description": _DESCRIPTIONS[type_], **out}
    return out


if __name__ == "__main__":
    print(render(), end="")
