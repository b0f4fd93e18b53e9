"""The auto-follow criteria language (F-FOLLOW-4): every operator of every type, validation paths,
and properties checked with hypothesis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeds_server.domain.criteria import MAX_CONDITIONS, MAX_DEPTH, OPS, TYPES, compile_criteria, criteria_to_text
from feeds_server.domain.rulefile import parse_rule_file
from feeds_server.errors import ValidationFailed


def cond(type_, op, value=None, field="f"):  # type: ignore[no-untyped-def]
    c = {"field": field, "type": type_, "op": op}
    if value is not None:
        c["value"] = value
    return c


def m(c, value) -> bool:  # type: ignore[no-untyped-def]
    return compile_criteria(c).matches({"f": value})


# (type, op, criteria value, record value, expected)
CASES = [
    ("number", "eq", 5, 5, True), ("number", "eq", 5, "5", True), ("number", "eq", 5, 6, False),
    ("number", "neq", 5, 6, True), ("number", "neq", 5, None, True), ("number", "neq", 5, 5, False),
    ("number", "gt", 5, 6, True), ("number", "gt", 5, 5, False), ("number", "gte", 5, 5, True), ("number", "gte", 5, 4.99, False),
    ("number", "lt", 5, 4, True), ("number", "lt", 5, 5, False), ("number", "lte", 5, 5, True), ("number", "lte", 5, 5.01, False),
    ("number", "between", [1, 3], 1, True), ("number", "between", [1, 3], 3, True), ("number", "between", [1, 3], 3.5, False),
    ("number", "in", [1, 2], 2, True), ("number", "in", [1, 2], 3, False), ("number", "not_in", [1, 2], 3, True),
    ("number", "gt", 5, "many", False), ("number", "gt", 5, True, False),
    ("text", "eq", "Hot", "hOT", True), ("text", "neq", "Hot", "cold", True), ("text", "contains", "acme", "The ACME corp", True),
    ("text", "contains", "acme", "Apex", False), ("text", "starts_with", "the", "The end", True), ("text", "ends_with", "ltd", "Bletchley LTD", True),
    ("text", "in", ["a", "b"], "B", True), ("text", "not_in", ["a", "b"], "c", True), ("text", "eq", "x", None, False),
    ("date", "eq", "2027-01-15", "2027-01-15", True), ("date", "eq", "2027-01-15", "2027-01-15T23:59:00Z", True),
    ("date", "gt", "2027-01-15", "2027-01-16", True), ("date", "gt", "2027-01-15", "2027-01-15", False),
    ("date", "gte", "2027-01-15", "2027-01-15", True), ("date", "lt", "2027-01-15", "2027-01-14", True), ("date", "lte", "2027-01-15", "2027-01-16", False),
    ("date", "between", ["2027-01-01", "2027-03-31"], "2027-03-31", True), ("date", "between", ["2027-01-01", "2027-03-31"], "2027-04-01", False),
    ("date", "in", ["2027-01-01"], "2027-01-01", True), ("date", "not_in", ["2027-01-01"], "2027-01-02", True), ("date", "eq", "2027-01-15", "soon", False),
    ("boolean", "eq", True, True, True), ("boolean", "eq", True, "true", True), ("boolean", "eq", False, True, False), ("boolean", "neq", True, False, True),
    ("picklist", "eq", "Hot", "Hot", True), ("picklist", "eq", "Hot", "hot", False), ("picklist", "neq", "Hot", "Cold", True),
    ("picklist", "in", ["Hot", "Warm"], "Warm", True), ("picklist", "not_in", ["Hot"], "Warm", True), ("picklist", "not_in", ["Hot"], "Hot", False),
]


@pytest.mark.parametrize("type_,op,value,record,expected", CASES)
def test_operator_on_type(type_, op, value, record, expected):
    assert m(cond(type_, op, value), record) is expected


@pytest.mark.parametrize("type_", TYPES)
def test_is_empty_and_is_not_empty_on_every_type(type_):
    for empty in (None, "", "  ", [], {}):
        assert m(cond(type_, "is_empty"), empty) is True
        assert m(cond(type_, "is_not_empty"), empty) is False
    assert compile_criteria(cond(type_, "is_empty")).matches({}) is True


ALL_OPS = sorted({op for ops in OPS.values() for op in ops})


@pytest.mark.parametrize("type_", TYPES)
@pytest.mark.parametrize("op", ALL_OPS)
def test_operators_not_allowed_for_a_type_are_refused_naming_the_path(type_, op):
    if op in OPS[type_]:
        return
    with pytest.raises(ValidationFailed) as info:
        compile_criteria({"and": [cond(type_, op, 1)]})
    assert info.value.details["path"] == "criteria.and[0].op"


@pytest.mark.parametrize(
    "raw,path",
    [
        ({"and": []}, "criteria.and"),
        ({"or": [{"field": "f", "type": "colour", "op": "eq", "value": 1}]}, "criteria.or[0].type"),
        ({"not": {"field": "", "type": "text", "op": "eq", "value": "x"}}, "criteria.not.field"),
        ({"field": "f", "type": "number", "op": "eq", "value": "5"}, "criteria.value"),
        ({"field": "f", "type": "number", "op": "between", "value": [3, 1]}, "criteria.value"),
        ({"field": "f", "type": "number", "op": "between", "value": [1]}, "criteria.value"),
        ({"field": "f", "type": "date", "op": "eq", "value": "15/01/2027"}, "criteria.value"),
        ({"field": "f", "type": "text", "op": "in", "value": []}, "criteria.value"),
        ({"field": "f", "type": "text", "op": "is_empty", "value": "x"}, "criteria.value"),
        ({"field": "f", "type": "text", "op": "eq"}, "criteria.value"),
        ({"field": "f", "type": "text", "op": "eq", "value": "x", "extra": 1}, "criteria.extra"),
        ({"xor": []}, "criteria"),
        ([], "criteria"),
    ],
)
def test_validation_errors_name_the_bad_part(raw, path):
    with pytest.raises(ValidationFailed) as info:
        compile_criteria(raw)
    assert info.value.details["path"] == path and info.value.code == "invalid_criteria"


def test_depth_and_size_limits_on_both_sides():
    node = cond("number", "gt", 1)
    deep = node
    for _ in range(MAX_DEPTH - 1):
        deep = {"not": deep}
    compile_criteria(deep)
    with pytest.raises(ValidationFailed):
        compile_criteria({"not": deep})
    compile_criteria({"and": [node] * MAX_CONDITIONS})
    with pytest.raises(ValidationFailed):
        compile_criteria({"and": [node] * (MAX_CONDITIONS + 1)})


def test_rendering_reads_as_english():
    raw = {"and": [cond("number", "gt", 50000, "Amount"), cond("picklist", "in", ["A", "B"], "Stage")]}
    assert criteria_to_text(raw) == "Amount > 50000 and Stage in (A, B)"


numbers = st.one_of(st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False))
values = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20), st.lists(st.integers(), max_size=2))


@given(st.integers(-100, 100), st.integers(-100, 100), st.integers(-100, 100))
def test_between_equals_gte_and_lte(low, high, x):
    if low > high:
        low, high = high, low
    between = compile_criteria(cond("number", "between", [low, high])).matches({"f": x})
    both = compile_criteria({"and": [cond("number", "gte", low), cond("number", "lte", high)]}).matches({"f": x})
    assert between == both


@given(st.integers(-100, 100), values)
def test_not_inverts_and_in_of_one_equals_eq(target, value):
    c = cond("number", "eq", target)
    assert compile_criteria({"not": c}).matches({"f": value}) is not compile_criteria(c).matches({"f": value})
    assert compile_criteria(cond("number", "in", [target])).matches({"f": value}) == compile_criteria(c).matches({"f": value})
    assert compile_criteria({"and": [c, c]}).matches({"f": value}) == compile_criteria(c).matches({"f": value})


@given(st.dictionaries(st.text(max_size=5), values, max_size=5), st.sampled_from(TYPES))
def test_evaluation_never_raises_on_any_record(record, type_):
    sample = {"number": 1, "text": "a", "date": "2027-01-01", "boolean": True, "picklist": "a"}[type_]
    for op in OPS[type_]:
        value = None if op.startswith("is_") else [sample] if op in ("in", "not_in") else [sample, sample] if op == "between" else sample
        compile_criteria(cond(type_, op, value, field="a")).matches(record)


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "rules" / "examples").glob("*.json")), ids=lambda p: p.name)
def test_example_rule_files_are_valid(path):
    assert parse_rule_file(json.loads(path.read_text()))


def test_rule_file_errors_carry_the_path():
    bad = {"version": 1, "rules": [{"name": "x", "module": "Deals", "criteria": {"or": [cond("boolean", "gt", 1)]}}]}
    with pytest.raises(ValidationFailed) as info:
        parse_rule_file(bad)
    assert info.value.details["path"] == "rules[0].criteria.or[0].op"
    with pytest.raises(ValidationFailed) as info:
        parse_rule_file({"version": 1, "rules": [{"name": "x", "module": "Deals", "criteria": cond("text", "is_empty"), "followers": {"people": []}}]})
    assert info.value.details["path"] == "rules[0].followers.people"


def test_schema_describes_the_file_format():
    schema = json.loads((ROOT / "rules" / "schema.json").read_text())
    assert schema["required"] == ["version", "rules"] and "criteria" in schema["$defs"]
    assert set(schema["$defs"]["condition"]["properties"]["op"]["enum"]) == set(ALL_OPS)
