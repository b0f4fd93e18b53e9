"""The auto-follow criteria language (F-FOLLOW-4): every operator of every type, boundaries, empty and
unreadable record values, validation errors and their paths, limits on both sides, previews, and
properties checked with hypothesis."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeds_server.domain.criteria import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    OPERATORS,
    OPS,
    TYPES,
    compile_criteria,
    criteria_to_text,
)
from feeds_server.errors import ValidationFailed

PRESENCE = ("is_empty", "is_not_empty")
TRUE_WHEN_EMPTY = ("is_empty", "neq", "not_in")


def cond(type_: str, op: str, value: Any = None, field: str = "f") -> dict[str, Any]:
    c: dict[str, Any] = {"field": field, "type": type_, "op": op}
    if op not in PRESENCE:
        c["value"] = value
    return c


def matches(c: dict[str, Any], value: Any) -> bool:
    return compile_criteria(c).matches({"f": value})


def refused(raw: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        compile_criteria(raw)
    assert info.value.code == "invalid_criteria"
    return info.value


# --- which operators each type accepts --------------------------------------------------------

ALLOWED = {
    "number": {"eq", "neq", "gt", "gte", "lt", "lte", "between", "in", "not_in", "is_empty", "is_not_empty"},
    "date": {"eq", "neq", "gt", "gte", "lt", "lte", "between", "in", "not_in", "is_empty", "is_not_empty"},
    "text": {"eq", "neq", "contains", "starts_with", "ends_with", "in", "not_in", "is_empty", "is_not_empty"},
    "boolean": {"eq", "neq", "is_empty", "is_not_empty"},
    "picklist": {"eq", "neq", "in", "not_in", "is_empty", "is_not_empty"},
}

SAMPLE = {"number": 5, "text": "acme", "date": "2027-01-15", "boolean": True, "picklist": "Hot"}


def sample_value(type_: str, op: str) -> Any:
    """A valid criteria value of the type for the operator."""
    if op == "between":
        return [SAMPLE[type_], SAMPLE[type_]]
    if op in ("in", "not_in"):
        return [SAMPLE[type_]]
    return SAMPLE[type_]


def test_the_operators_of_each_type_are_exactly_the_documented_ones():
    assert set(TYPES) == set(ALLOWED)
    assert {t: set(ops) for t, ops in OPS.items()} == ALLOWED
    assert set(OPERATORS) == set().union(*ALLOWED.values())


@pytest.mark.parametrize("type_,op", [(t, op) for t in TYPES for op in OPERATORS if op in ALLOWED[t]])
def test_every_allowed_operator_compiles_on_its_type(type_, op):
    assert compile_criteria(cond(type_, op, sample_value(type_, op))).fields == {"f"}


@pytest.mark.parametrize("type_,op", [(t, op) for t in TYPES for op in OPERATORS if op not in ALLOWED[t]])
def test_every_other_operator_is_refused_naming_the_path(type_, op):
    error = refused({"and": [cond("number", "gt", 1), cond(type_, op, sample_value(type_, op))]})
    assert error.details["path"] == "criteria.and[1].op"
    assert f"operator '{op}' is not allowed for type '{type_}'" in error.message


# --- every operator of every type, matching and not ------------------------------------------

# (type, op, criteria value, record value, expected)
CASES = [
    # number
    ("number", "eq", 5, 5, True), ("number", "eq", 5, 5.0, True), ("number", "eq", 5, "5", True), ("number", "eq", 5, 6, False),
    ("number", "neq", 5, 6, True), ("number", "neq", 5, 5, False), ("number", "neq", 5, "5.0", False),
    ("number", "gt", 5, 6, True), ("number", "gt", 5, 5, False), ("number", "gt", 5, 5.0001, True),
    ("number", "gte", 5, 5, True), ("number", "gte", 5, 4.99, False), ("number", "gte", 5, 6, True),
    ("number", "lt", 5, 4, True), ("number", "lt", 5, 5, False), ("number", "lt", 5, 4.9999, True),
    ("number", "lte", 5, 5, True), ("number", "lte", 5, 5.01, False), ("number", "lte", 5, -5, True),
    ("number", "between", [1, 3], 1, True), ("number", "between", [1, 3], 3, True), ("number", "between", [1, 3], 2.5, True),
    ("number", "between", [1, 3], 0.999, False), ("number", "between", [1, 3], 3.001, False), ("number", "between", [2, 2], 2, True),
    ("number", "in", [1, 2], 2, True), ("number", "in", [1, 2], 2.0, True), ("number", "in", [1, 2], 3, False),
    ("number", "not_in", [1, 2], 3, True), ("number", "not_in", [1, 2], 1, False),
    ("number", "gt", 50000, "84000.50", True), ("number", "gt", 50000, " 84000 ", True), ("number", "lt", 0, "-1e3", True),
    ("number", "gt", -1.5, -1.25, True), ("number", "eq", 10**30, 10**30, True),
    # text: case-insensitive everywhere
    ("text", "eq", "Hot", "hOT", True), ("text", "eq", "Hot", "Hotter", False), ("text", "eq", "straße", "STRASSE", True),
    ("text", "neq", "Hot", "cold", True), ("text", "neq", "Hot", "HOT", False),
    ("text", "contains", "acme", "The ACME corp", True), ("text", "contains", "acme", "Apex", False),
    ("text", "starts_with", "the", "The end", True), ("text", "starts_with", "end", "The end", False),
    ("text", "ends_with", "ltd", "Bletchley LTD", True), ("text", "ends_with", "gmbh", "Bletchley Ltd", False),
    ("text", "in", ["a", "b"], "B", True), ("text", "in", ["a", "b"], "c", False),
    ("text", "not_in", ["a", "b"], "c", True), ("text", "not_in", ["a", "b"], "A", False),
    ("text", "contains", "555", 5551234, True),
    # date: dates and date-times, compared on the day as written
    ("date", "eq", "2027-01-15", "2027-01-15", True), ("date", "eq", "2027-01-15", "2027-01-16", False),
    ("date", "eq", "2027-01-15", "2027-01-15T23:59:00Z", True), ("date", "eq", "2027-01-15", "2027-01-15T00:30:00+05:30", True),
    ("date", "eq", "2027-01-15", "2027-01-15 10:00:00", True), ("date", "eq", "2027-01-15", "2027-01-14T23:59:59-08:00", False),
    ("date", "eq", "2027-01-15", datetime(2027, 1, 15, 18, tzinfo=timezone.utc), True), ("date", "eq", "2027-01-15", date(2027, 1, 15), True),
    ("date", "neq", "2027-01-15", "2027-01-16", True), ("date", "neq", "2027-01-15", "2027-01-15T08:00:00", False),
    ("date", "gt", "2027-01-15", "2027-01-16", True), ("date", "gt", "2027-01-15", "2027-01-15T23:59:59", False),
    ("date", "gte", "2027-01-15", "2027-01-15", True), ("date", "gte", "2027-01-15", "2027-01-14", False),
    ("date", "lt", "2027-01-15", "2027-01-14", True), ("date", "lt", "2027-01-15", "2027-01-15", False),
    ("date", "lte", "2027-01-15", "2027-01-15T00:00:00", True), ("date", "lte", "2027-01-15", "2027-01-16", False),
    ("date", "between", ["2027-01-01", "2027-03-31"], "2027-01-01", True), ("date", "between", ["2027-01-01", "2027-03-31"], "2027-03-31T22:00:00Z", True),
    ("date", "between", ["2027-01-01", "2027-03-31"], "2026-12-31", False), ("date", "between", ["2027-01-01", "2027-03-31"], "2027-04-01", False),
    ("date", "in", ["2027-01-01", "2027-02-01"], "2027-02-01T09:00:00", True), ("date", "in", ["2027-01-01"], "2027-01-02", False),
    ("date", "not_in", ["2027-01-01"], "2027-01-02", True), ("date", "not_in", ["2027-01-01"], "2027-01-01", False),
    # boolean
    ("boolean", "eq", True, True, True), ("boolean", "eq", True, "true", True), ("boolean", "eq", False, "FALSE", True),
    ("boolean", "eq", False, True, False), ("boolean", "neq", True, False, True), ("boolean", "neq", True, True, False),
    # picklist: exact, as the CRM spells the option
    ("picklist", "eq", "Hot", "Hot", True), ("picklist", "eq", "Hot", "hot", False), ("picklist", "eq", "Hot", "Hot ", False),
    ("picklist", "neq", "Hot", "Cold", True), ("picklist", "neq", "Hot", "Hot", False), ("picklist", "neq", "Hot", "HOT", True),
    ("picklist", "in", ["Hot", "Warm"], "Warm", True), ("picklist", "in", ["Hot", "Warm"], "warm", False),
    ("picklist", "not_in", ["Hot"], "Warm", True), ("picklist", "not_in", ["Hot"], "Hot", False),
]


@pytest.mark.parametrize("type_,op,value,record,expected", CASES)
def test_operator_on_type(type_, op, value, record, expected):
    assert matches(cond(type_, op, value), record) is expected


@pytest.mark.parametrize("type_,op", [(t, op) for t in TYPES for op in OPS[t] if op not in PRESENCE])
def test_the_table_covers_every_operator_of_every_type_both_ways(type_, op):
    outcomes = {expected for t, o, _, _, expected in CASES if (t, o) == (type_, op)}
    assert outcomes == {True, False}


# --- empty and unreadable record values ------------------------------------------------------

EMPTY = [None, "", "   ", "\t\n", [], {}]


@pytest.mark.parametrize("type_,op", [(t, op) for t in TYPES for op in OPS[t]])
def test_on_an_empty_or_missing_field_only_is_empty_neq_and_not_in_hold(type_, op):
    expected = op in TRUE_WHEN_EMPTY
    c = compile_criteria(cond(type_, op, sample_value(type_, op)))
    assert c.matches({}) is expected
    assert c.matches({"other": 1}) is expected
    for empty in EMPTY:
        assert c.matches({"f": empty}) is expected, empty


UNREADABLE = {
    "number": ["lots", "1_000", "12,5", "nan", "inf", "1e999", True, float("nan"), float("inf"), [1], {"a": 1}],
    "text": [True, [1], {"a": "acme"}, object()],
    "date": ["soon", "15/01/2027", "2027-02-30", "2027-01-15Tnoon", "20270115", "20270115T1000", 20270115, True, [1]],
    "boolean": ["yes", 1, 0, "1", [True], {"a": True}],
    "picklist": [1, True, ["Hot"], {"Hot": 1}],
}


@pytest.mark.parametrize("type_,op", [(t, op) for t in TYPES for op in OPS[t]])
def test_a_value_not_readable_as_the_type_makes_any_condition_false(type_, op):
    c = compile_criteria(cond(type_, op, sample_value(type_, op)))
    not_c = compile_criteria({"not": cond(type_, op, sample_value(type_, op))})
    for value in UNREADABLE[type_]:
        assert c.matches({"f": value}) is False, value
        assert not_c.matches({"f": value}) is True, value


def test_huge_numbers_never_raise():
    huge = 10**5000
    assert matches(cond("number", "gt", 1), huge) is True
    assert matches(cond("number", "lt", 1.5), -huge) is True
    assert matches(cond("text", "contains", "1"), huge) is False
    assert matches(cond("number", "gt", 1), "9" * 5000) is False  # reads as inf: not a number


# --- groups ----------------------------------------------------------------------------------

GT5 = cond("number", "gt", 5, "a")
HOT = cond("picklist", "eq", "Hot", "b")


@pytest.mark.parametrize(
    "criteria,record,expected",
    [
        ({"and": [GT5, HOT]}, {"a": 6, "b": "Hot"}, True),
        ({"and": [GT5, HOT]}, {"a": 6, "b": "Cold"}, False),
        ({"and": [GT5, HOT]}, {"a": 4, "b": "Hot"}, False),
        ({"or": [GT5, HOT]}, {"a": 4, "b": "Hot"}, True),
        ({"or": [GT5, HOT]}, {"a": 6}, True),
        ({"or": [GT5, HOT]}, {"a": 4, "b": "Cold"}, False),
        ({"not": GT5}, {"a": 4}, True),
        ({"not": GT5}, {"a": 6}, False),
        ({"not": {"not": GT5}}, {"a": 6}, True),
        ({"and": [GT5]}, {"a": 6}, True),
        ({"or": [HOT]}, {"b": "Cold"}, False),
        ({"and": [{"or": [GT5, HOT]}, {"not": cond("text", "contains", "test", "c")}]}, {"a": 9, "c": "Acme"}, True),
        ({"and": [{"or": [GT5, HOT]}, {"not": cond("text", "contains", "test", "c")}]}, {"a": 9, "c": "TEST lead"}, False),
        ({"or": [{"and": [GT5, HOT]}, {"not": {"or": [GT5, HOT]}}]}, {"a": 1, "b": "Cold"}, True),
        ({"or": [{"and": [GT5, HOT]}, {"not": {"or": [GT5, HOT]}}]}, {"a": 9, "b": "Cold"}, False),
    ],
)
def test_and_or_not_nest(criteria, record, expected):
    assert compile_criteria(criteria).matches(record) is expected


def test_fields_lists_every_field_used():
    raw = {"and": [GT5, {"or": [HOT, {"not": cond("date", "is_empty", field="c")}]}, cond("number", "lt", 9, "a")]}
    assert compile_criteria(raw).fields == {"a", "b", "c"}


# --- validation errors and their paths -------------------------------------------------------

C = {"field": "f", "type": "number", "op": "gt", "value": 1}


@pytest.mark.parametrize(
    "raw,path,words",
    [
        ([], "criteria", "must be an object"),
        ("Amount > 5", "criteria", "must be an object"),
        (None, "criteria", "must be an object"),
        ({}, "criteria", "expected"),
        ({"xor": [C]}, "criteria", "expected"),
        ({"and": [C], "or": [C]}, "criteria", "exactly one"),
        ({"and": [C], "extra": 1}, "criteria.extra", "unknown key 'extra'"),
        ({"not": C, "field": "f"}, "criteria.field", "unknown key 'field'"),
        ({"and": []}, "criteria.and", "non-empty list"),
        ({"or": C}, "criteria.or", "non-empty list"),
        ({"and": [C, 7]}, "criteria.and[1]", "must be an object"),
        ({"not": []}, "criteria.not", "must be an object"),
        ({**C, "extra": 1}, "criteria.extra", "unknown key 'extra'"),
        ({"type": "number", "op": "gt", "value": 1}, "criteria.field", "is required"),
        ({"field": "f", "op": "gt", "value": 1}, "criteria.type", "is required"),
        ({"field": "f", "type": "number", "value": 1}, "criteria.op", "is required"),
        ({**C, "field": ""}, "criteria.field", "field name"),
        ({**C, "field": "   "}, "criteria.field", "field name"),
        ({**C, "field": "x" * 201}, "criteria.field", "field name"),
        ({**C, "field": 3}, "criteria.field", "must be a string"),
        ({**C, "type": "money"}, "criteria.type", "unknown type 'money'"),
        ({**C, "type": ["number"]}, "criteria.type", "must be a string"),
        ({**C, "op": "like"}, "criteria.op", "unknown operator 'like'"),
        ({"field": "f", "type": "number", "op": "gt"}, "criteria.value", "needs a value"),
        ({"field": "f", "type": "text", "op": "is_empty", "value": "x"}, "criteria.value", "takes no value"),
        ({"field": "f", "type": "text", "op": "is_not_empty", "value": None}, "criteria.value", "takes no value"),
        ({**C, "value": "5"}, "criteria.value", "must be a number"),
        ({**C, "value": True}, "criteria.value", "must be a number"),
        ({**C, "value": None}, "criteria.value", "must be a number"),
        ({**C, "value": float("inf")}, "criteria.value", "must be a number"),
        ({**C, "value": float("nan")}, "criteria.value", "must be a number"),
        ({**C, "value": [1]}, "criteria.value", "must be a number"),
        (cond("text", "eq", ""), "criteria.value", "non-blank"),
        (cond("text", "contains", "  "), "criteria.value", "non-blank"),
        (cond("text", "eq", 5), "criteria.value", "non-blank"),
        (cond("text", "eq", "a\x00b"), "criteria.value", "NUL"),
        (cond("picklist", "eq", ""), "criteria.value", "picklist option"),
        (cond("picklist", "in", ["Hot", 1]), "criteria.value[1]", "picklist option"),
        (cond("boolean", "eq", "true"), "criteria.value", "true or false"),
        (cond("boolean", "eq", 1), "criteria.value", "true or false"),
        (cond("date", "eq", "15/01/2027"), "criteria.value", "YYYY-MM-DD"),
        (cond("date", "eq", "2027-02-30"), "criteria.value", "YYYY-MM-DD"),
        (cond("date", "eq", "2027-01-15T10:00:00"), "criteria.value", "YYYY-MM-DD"),
        (cond("date", "eq", "20270115"), "criteria.value", "YYYY-MM-DD"),
        (cond("date", "eq", "2027-W03-5"), "criteria.value", "YYYY-MM-DD"),
        (cond("number", "between", [3, 1]), "criteria.value", "low must not be greater than high"),
        (cond("date", "between", ["2027-02-01", "2027-01-01"]), "criteria.value", "low must not be greater than high"),
        (cond("number", "between", [1]), "criteria.value", "[low, high]"),
        (cond("number", "between", [1, 2, 3]), "criteria.value", "[low, high]"),
        (cond("number", "between", 1), "criteria.value", "[low, high]"),
        (cond("number", "between", [1, "2"]), "criteria.value[1]", "must be a number"),
        (cond("date", "between", ["2027-01-01", "soon"]), "criteria.value[1]", "YYYY-MM-DD"),
        (cond("text", "in", []), "criteria.value", "non-empty list"),
        (cond("number", "not_in", 5), "criteria.value", "non-empty list"),
        (cond("number", "in", [1, 2, "3"]), "criteria.value[2]", "must be a number"),
        ({"or": [C, {"not": {"and": [C, {**C, "value": "x"}]}}]}, "criteria.or[1].not.and[1].value", "must be a number"),
    ],
)
def test_validation_errors_name_the_bad_part_and_say_what_is_wrong(raw, path, words):
    error = refused(raw)
    assert error.details["path"] == path
    assert words in error.message and error.message.startswith(f"{path}: ")


def test_a_prefix_places_errors_inside_a_larger_document():
    with pytest.raises(ValidationFailed) as info:
        compile_criteria({"and": [{**C, "op": "contains"}]}, path="rules[3].criteria")
    assert info.value.details["path"] == "rules[3].criteria.and[0].op"


# --- limits, on both sides --------------------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    """A tree `depth` levels deep: `not` around `not` … around one condition."""
    node: dict[str, Any] = C
    for _ in range(depth - 1):
        node = {"not": node}
    return node


def test_criteria_as_deep_as_the_limit_are_accepted_one_deeper_are_refused():
    compile_criteria(nested(MAX_DEPTH))
    error = refused(nested(MAX_DEPTH + 1))
    assert error.details["path"] == "criteria" + ".not" * MAX_DEPTH
    assert error.details["limit"] == MAX_DEPTH


def test_depth_counts_and_and_or_levels_too():
    node: dict[str, Any] = C
    for i in range(MAX_DEPTH - 1):
        node = {"and" if i % 2 else "or": [C, node]}
    compile_criteria(node)
    refused({"and": [node]})


def test_as_many_conditions_as_the_limit_are_accepted_one_more_is_refused():
    compile_criteria({"and": [C] * MAX_CONDITIONS})
    error = refused({"and": [C] * (MAX_CONDITIONS + 1)})
    assert error.details["path"] == f"criteria.and[{MAX_CONDITIONS}]"
    assert error.details["limit"] == MAX_CONDITIONS


def test_the_condition_limit_counts_across_branches():
    half = MAX_CONDITIONS // 2
    compile_criteria({"or": [{"and": [C] * half}, {"not": {"and": [C] * (MAX_CONDITIONS - half)}}]})
    refused({"or": [{"and": [C] * half}, {"not": {"and": [C] * (MAX_CONDITIONS - half + 1)}}]})


# --- previews --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw,text",
    [
        (
            {"and": [cond("number", "gt", 50000, "Amount"), cond("picklist", "in", ["Negotiation", "Closed Won"], "Stage")]},
            "Amount > 50000 and Stage in (Negotiation, Closed Won)",
        ),
        (cond("number", "gte", 1000000.0, "annual_revenue"), "Annual revenue ≥ 1000000"),
        (cond("number", "lte", 2.5, "Discount"), "Discount ≤ 2.5"),
        (cond("text", "contains", "acme", "Account_Name"), 'Account Name contains "acme"'),
        (cond("text", "starts_with", "VP", "Title"), 'Title starts with "VP"'),
        (cond("text", "ends_with", ".gov", "Email"), 'Email ends with ".gov"'),
        (cond("text", "neq", "x", "Name"), 'Name ≠ "x"'),
        (cond("date", "between", ["2027-01-01", "2027-03-31"], "Renewal Date"), "Renewal Date between 2027-01-01 and 2027-03-31"),
        (cond("date", "lt", "2027-01-01", "Closing Date"), "Closing Date < 2027-01-01"),
        (cond("boolean", "eq", False, "Auto Renew"), "Auto Renew = false"),
        (cond("picklist", "not_in", ["Cancelled"], "Status"), "Status not in (Cancelled)"),
        (cond("picklist", "is_empty", field="Lead Source"), "Lead Source is empty"),
        (cond("number", "is_not_empty", field="Amount"), "Amount is not empty"),
        ({"not": cond("number", "eq", 0, "Amount")}, "not (Amount = 0)"),
        (
            {"and": [{"or": [cond("picklist", "eq", "Hot", "Rating"), cond("number", "gte", 1000000, "Revenue")]}, cond("picklist", "is_not_empty", field="Source")]},
            "(Rating = Hot or Revenue ≥ 1000000) and Source is not empty",
        ),
        ({"or": [{"and": [cond("number", "gt", 1, "A")]}, cond("number", "lt", 0, "B")]}, "A > 1 or B < 0"),
    ],
)
def test_previews_read_as_english(raw, text):
    assert criteria_to_text(raw) == text


def test_no_preview_of_invalid_criteria():
    with pytest.raises(ValidationFailed) as info:
        criteria_to_text({"and": [cond("boolean", "gt", True)]})
    assert info.value.details["path"] == "criteria.and[0].op"


# --- properties -----------------------------------------------------------------------------

text_values = st.text(min_size=1, max_size=6).filter(lambda s: s.strip() and "\x00" not in s)
VALUES = {
    "number": st.one_of(st.integers(-1000, 1000), st.floats(-1000, 1000, allow_nan=False)),
    "text": text_values,
    "date": st.dates(date(2020, 1, 1), date(2030, 12, 31)).map(date.isoformat),
    "boolean": st.booleans(),
    "picklist": text_values,
}


@st.composite
def conditions(draw: Any, types: tuple[str, ...] = TYPES, field: str = "f") -> dict[str, Any]:
    type_ = draw(st.sampled_from(types))
    op = draw(st.sampled_from(OPS[type_]))
    values = VALUES[type_]
    if op in PRESENCE:
        return cond(type_, op, field=field)
    if op == "between":
        return cond(type_, op, sorted(draw(st.lists(values, min_size=2, max_size=2))), field)
    if op in ("in", "not_in"):
        return cond(type_, op, draw(st.lists(values, min_size=1, max_size=3)), field)
    return cond(type_, op, draw(values), field)


def trees(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """Valid criteria at most `depth` levels deep, on the fields f and g."""
    leaves = st.one_of(conditions(), conditions(field="g"))
    if depth == 1:
        return leaves
    inner = trees(depth - 1)
    return st.one_of(
        leaves,
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"and": items}),
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"or": items}),
        inner.map(lambda item: {"not": item}),
    )


# What a CRM might send: JSON of any shape, and strings that look like numbers, dates and booleans.
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=6,
)
typed_looking = st.one_of(
    st.sampled_from(["", " ", "true", "FALSE", "1e999", "-0", "nan", "2027-01-15", "2027-01-15T10:00:00Z", "2027-02-30", "1_000"]),
    st.integers().map(str),
    st.floats().map(str),
    st.dates().map(date.isoformat),
    st.datetimes().map(datetime.isoformat),
    st.datetimes(),
    st.dates(),
    st.just(10**5000),
)
record_values = st.one_of(json_values, typed_looking, *VALUES.values())
records = st.dictionaries(st.one_of(st.sampled_from(["f", "g"]), st.text(max_size=3)), record_values, max_size=4)


@given(trees(4), records)
def test_evaluation_never_raises_and_returns_a_bool(raw, record):
    assert compile_criteria(raw).matches(record) in (True, False)


@given(trees(3), records)
def test_not_inverts(raw, record):
    assert compile_criteria({"not": raw}).matches(record) is not compile_criteria(raw).matches(record)


@given(trees(3), records)
def test_and_or_of_a_criterion_with_itself_is_the_criterion(raw, record):
    expected = compile_criteria(raw).matches(record)
    assert compile_criteria({"and": [raw, raw]}).matches(record) is expected
    assert compile_criteria({"or": [raw, raw]}).matches(record) is expected


@given(trees(3), trees(3), records)
def test_de_morgan(a, b, record):
    left = compile_criteria({"not": {"and": [a, b]}}).matches(record)
    right = compile_criteria({"or": [{"not": a}, {"not": b}]}).matches(record)
    assert left is right


@given(st.data(), st.sampled_from(["number", "date"]), record_values)
def test_between_equals_gte_and_lte(data, type_, value):
    low, high = sorted(data.draw(st.lists(VALUES[type_], min_size=2, max_size=2)))
    between = matches(cond(type_, "between", [low, high]), value)
    both = compile_criteria({"and": [cond(type_, "gte", low), cond(type_, "lte", high)]}).matches({"f": value})
    assert between is both


@given(st.data(), st.sampled_from([t for t in TYPES if "in" in OPS[t]]), record_values)
def test_in_of_one_value_equals_eq(data, type_, value):
    x = data.draw(VALUES[type_])
    assert matches(cond(type_, "in", [x]), value) is matches(cond(type_, "eq", x), value)
    assert matches(cond(type_, "not_in", [x]), value) is matches(cond(type_, "neq", x), value)


@given(st.data(), st.sampled_from(TYPES))
def test_neq_is_not_eq_on_readable_or_empty_values(data, type_):
    """On unreadable values both are false (module docstring); on every other value they are opposites."""
    x = data.draw(VALUES[type_])
    value = data.draw(st.one_of(VALUES[type_], st.sampled_from(EMPTY)))
    assert matches(cond(type_, "neq", x), value) is not matches(cond(type_, "eq", x), value)


@given(st.sampled_from(TYPES), record_values)
def test_is_empty_and_is_not_empty_never_both_hold(type_, value):
    assert not (matches(cond(type_, "is_empty"), value) and matches(cond(type_, "is_not_empty"), value))
