"""Rule files (`rules/`): the examples are valid, errors name the bad part, and the JSON Schema for
editors says the same as the server (F-FOLLOW-4 … F-FOLLOW-6)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from feeds_server import limits
from feeds_server.domain.criteria import OPERATORS, OPS, TYPES, compile_criteria, criteria_to_text
from feeds_server.domain.rulefile import MAX_MODULE_CHARS, NamedFollowers, RuleSpec, parse_rule_file
from feeds_server.errors import FeedsError, LimitExceeded, ValidationFailed

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "rules" / "examples").glob("*.json"))
SCHEMA = json.loads((ROOT / "rules" / "schema.json").read_text(encoding="utf-8"))

CRITERIA = {"field": "Amount", "type": "number", "op": "gt", "value": 50000}


def rule(**overrides: Any) -> dict[str, Any]:
    return {"name": "Big deals", "module": "Deals", "criteria": CRITERIA, **overrides}


def file_of(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "rules": list(rules)}


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def error_of(data: Any) -> FeedsError:
    with pytest.raises(FeedsError) as info:
        parse_rule_file(data)
    return info.value


# --- the examples ----------------------------------------------------------------------------


def test_the_promised_examples_exist():
    names = {path.name for path in EXAMPLES}
    assert {"high-value-deals.json", "hot-leads.json", "key-accounts.json", "renewals-due.json"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_parses_and_its_criteria_compile_and_read_as_text(path):
    specs = parse_rule_file(load(path))
    assert specs
    for spec in specs:
        assert compile_criteria(spec.criteria).fields
        assert criteria_to_text(spec.criteria)


@pytest.mark.parametrize(
    "example,module,record,expected",
    [
        ("high-value-deals.json", "Deals", {"Amount": 84000, "Stage": "Negotiation/Review"}, True),
        ("high-value-deals.json", "Deals", {"Amount": 50000, "Stage": "Negotiation/Review"}, False),
        ("high-value-deals.json", "Deals", {"Amount": 84000, "Stage": "Qualification"}, False),
        ("hot-leads.json", "Leads", {"Rating": "Hot", "Lead Source": "Webinar"}, True),
        ("hot-leads.json", "Leads", {"Rating": "Warm", "Annual Revenue": 1000000, "Lead Source": "Web"}, True),
        ("hot-leads.json", "Leads", {"Rating": "Hot"}, False),
        ("key-accounts.json", "Accounts", {"Industry": "Manufacturing", "Employees": 1200, "Account Type": "Customer"}, True),
        ("key-accounts.json", "Accounts", {"Industry": "Manufacturing", "Employees": 5001}, False),
        ("renewals-due.json", "Subscriptions", {"Renewal Date": "2027-03-31T18:00:00Z", "Auto Renew": False, "Status": "Active"}, True),
        ("renewals-due.json", "Subscriptions", {"Renewal Date": "2027-04-01", "Auto Renew": False, "Status": "Active"}, False),
    ],
)
def test_the_first_rule_of_each_example_matches_what_its_name_says(example, module, record, expected):
    spec = parse_rule_file(load(ROOT / "rules" / "examples" / example))[0]
    assert spec.module == module
    assert compile_criteria(spec.criteria).matches(record) is expected


def test_the_high_value_deals_example_has_the_owners_superior_role_follow():
    spec = parse_rule_file(load(ROOT / "rules" / "examples" / "high-value-deals.json"))[0]
    assert spec.followers.owner_superior_role and spec.followers.creator


# --- what a parsed file holds ----------------------------------------------------------------


def test_a_rule_without_followers_is_followed_by_its_creator_alone():
    (spec,) = parse_rule_file(file_of(rule()))
    assert spec == RuleSpec("Big deals", "Deals", CRITERIA, NamedFollowers(), "")
    assert spec.followers == NamedFollowers(creator=True)


def test_names_are_trimmed_and_emails_normalized():
    followers = {"users": [" Maya.Patel@Acme.Example "], "roles": [" VP Sales "], "groups": ["Leadership"], "territories": ["EMEA"]}
    (spec,) = parse_rule_file(file_of(rule(name="  Big deals ", module=" Deals", followers=followers, description="why")))
    assert (spec.name, spec.module, spec.description) == ("Big deals", "Deals", "why")
    assert spec.followers == NamedFollowers(
        users=("maya.patel@acme.example",), roles=("VP Sales",), groups=("Leadership",), territories=("EMEA",)
    )


def test_a_schema_key_is_allowed_for_editors():
    assert parse_rule_file({"$schema": "../schema.json", **file_of(rule())})


def test_five_rules_per_module_are_accepted_the_sixth_is_refused():
    """F-FOLLOW-6: one creator applies the whole file."""
    five = [rule(name=f"Deals {i}") for i in range(limits.MAX_RULES_PER_MODULE_PER_CREATOR)]
    five_more = [rule(name=f"Leads {i}", module="Leads") for i in range(limits.MAX_RULES_PER_MODULE_PER_CREATOR)]
    assert len(parse_rule_file(file_of(*five, *five_more))) == 2 * limits.MAX_RULES_PER_MODULE_PER_CREATOR
    error = error_of(file_of(*five, *five_more, rule(name="one too many")))
    assert isinstance(error, LimitExceeded) and error.code == "too_many_rules"
    assert error.details["path"] == f"rules[{2 * limits.MAX_RULES_PER_MODULE_PER_CREATOR}]"
    assert error.details["limit"] == limits.MAX_RULES_PER_MODULE_PER_CREATOR and error.details["module"] == "Deals"


def test_names_and_module_at_their_length_limits_are_accepted():
    parse_rule_file(file_of(rule(name="n" * limits.MAX_NAME_CHARS, module="m" * MAX_MODULE_CHARS)))
    parse_rule_file(file_of(rule(description="d" * limits.MAX_DESCRIPTION_CHARS)))


# --- errors and their paths ------------------------------------------------------------------


@pytest.mark.parametrize(
    "data,path,words",
    [
        ([], "$", "JSON object"),
        ({"rules": [rule()]}, "version", "must be 1"),
        ({"version": 2, "rules": [rule()]}, "version", "must be 1"),
        ({"version": True, "rules": [rule()]}, "version", "must be 1"),
        ({"version": "1", "rules": [rule()]}, "version", "must be 1"),
        ({"version": 1}, "rules", "non-empty list"),
        ({"version": 1, "rules": []}, "rules", "non-empty list"),
        ({"version": 1, "rules": [rule()], "rule": []}, "rule", "unknown key 'rule'"),
        (file_of(rule(), "Big deals"), "rules[1]", "must be an object"),
        (file_of({"module": "Deals", "criteria": CRITERIA}), "rules[0].name", "is required"),
        (file_of({"name": "x", "criteria": CRITERIA}), "rules[0].module", "is required"),
        (file_of({"name": "x", "module": "Deals"}), "rules[0].criteria", "is required"),
        (file_of(rule(folowers={})), "rules[0].folowers", "unknown key 'folowers'"),
        (file_of(rule(name="")), "rules[0].name", "non-blank"),
        (file_of(rule(name="   ")), "rules[0].name", "non-blank"),
        (file_of(rule(name="n" * (limits.MAX_NAME_CHARS + 1))), "rules[0].name", f"at most {limits.MAX_NAME_CHARS}"),
        (file_of(rule(name="a\x00b")), "rules[0].name", "NUL"),
        (file_of(rule(module="m" * (MAX_MODULE_CHARS + 1))), "rules[0].module", f"at most {MAX_MODULE_CHARS}"),
        (file_of(rule(module=7)), "rules[0].module", "non-blank string"),
        (file_of(rule(description=None)), "rules[0].description", "a string"),
        (file_of(rule(description="d" * (limits.MAX_DESCRIPTION_CHARS + 1))), "rules[0].description", "at most"),
        (file_of(rule(followers=[])), "rules[0].followers", "must be an object"),
        (file_of(rule(followers={"people": []})), "rules[0].followers.people", "unknown key 'people'"),
        (file_of(rule(followers={"creator": "yes"})), "rules[0].followers.creator", "true or false"),
        (file_of(rule(followers={"owner_superior_role": 1})), "rules[0].followers.owner_superior_role", "true or false"),
        (file_of(rule(followers={"creator": False})), "rules[0].followers", "at least one follower"),
        (file_of(rule(followers={"creator": False, "groups": []})), "rules[0].followers", "at least one follower"),
        (file_of(rule(followers={"users": "a@b.example"})), "rules[0].followers.users", "must be a list"),
        (file_of(rule(followers={"users": ["maya"]})), "rules[0].followers.users[0]", "not an email address"),
        (file_of(rule(followers={"users": [42]})), "rules[0].followers.users[0]", "email address"),
        (file_of(rule(followers={"users": ["a@b.example", "A@B.example"]})), "rules[0].followers.users[1]", "listed twice"),
        (file_of(rule(followers={"roles": ["VP Sales", "vp sales"]})), "rules[0].followers.roles[1]", "listed twice"),
        (file_of(rule(followers={"groups": [""]})), "rules[0].followers.groups[0]", "non-blank"),
        (file_of(rule(followers={"territories": [["EMEA"]]})), "rules[0].followers.territories[0]", "non-blank"),
        (file_of(rule(), rule()), "rules[1].name", "already in module 'Deals'"),
    ],
)
def test_file_errors_name_the_bad_part(data, path, words):
    error = error_of(data)
    assert isinstance(error, ValidationFailed) and error.code == "invalid_rule_file"
    assert error.details["path"] == path
    assert words in error.message and error.message.startswith(f"{path}: ")


def test_criteria_errors_are_placed_inside_the_file():
    bad = {"or": [CRITERIA, {"field": "Closed", "type": "boolean", "op": "gt", "value": 1}]}
    error = error_of(file_of(rule(), rule(name="other", criteria=bad)))
    assert error.code == "invalid_criteria"
    assert error.details["path"] == "rules[1].criteria.or[1].op"
    assert error.message == "rules[1].criteria.or[1].op: operator 'gt' is not allowed for type 'boolean'"


def test_the_same_name_in_two_modules_is_fine():
    assert len(parse_rule_file(file_of(rule(), rule(module="Leads")))) == 2


# --- the JSON Schema for editors -------------------------------------------------------------


def test_the_schema_is_a_draft_2020_12_schema_of_the_file_format():
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["type"] == "object" and SCHEMA["additionalProperties"] is False
    assert SCHEMA["required"] == ["version", "rules"]
    assert set(SCHEMA["properties"]) == {"$schema", "version", "rules"}
    assert SCHEMA["properties"]["version"] == {"const": 1}
    assert {"rule", "followers", "criteria", "condition"} <= set(SCHEMA["$defs"])


def test_the_schema_names_the_same_keys_as_the_parser():
    rule_def, followers_def = SCHEMA["$defs"]["rule"], SCHEMA["$defs"]["followers"]
    assert set(rule_def["properties"]) == {f.name for f in fields(RuleSpec)}
    assert set(rule_def["required"]) == {"name", "module", "criteria"}
    assert set(followers_def["properties"]) == {f.name for f in fields(NamedFollowers)}
    assert SCHEMA["$defs"]["name"]["maxLength"] == limits.MAX_NAME_CHARS
    assert rule_def["properties"]["module"]["maxLength"] == MAX_MODULE_CHARS
    assert rule_def["properties"]["description"]["maxLength"] == limits.MAX_DESCRIPTION_CHARS


def test_the_schema_describes_the_criteria_grammar_recursively():
    criteria = SCHEMA["$defs"]["criteria"]["oneOf"]
    groups = {key for option in criteria for key in option.get("required", [])}
    assert groups == {"and", "or", "not"}
    assert all("#/$defs/criteria" in json.dumps(option) for option in criteria if option.get("required"))


def _schema_ops(type_: str) -> set[str]:
    ops: set[str] = set()
    for option in SCHEMA["$defs"][f"{type_}Condition"]["oneOf"]:
        op = option["properties"]["op"]
        ops |= set(op.get("enum", [op.get("const")]))
    return ops


def test_the_schema_allows_the_same_operators_per_type_as_the_server():
    condition = SCHEMA["$defs"]["condition"]
    assert condition["properties"]["type"]["enum"] == list(TYPES)
    assert condition["properties"]["op"]["enum"] == list(OPERATORS)
    for type_ in TYPES:
        assert _schema_ops(type_) == set(OPS[type_]), type_
