"""Rule files: auto-follow rules as code, applied to any number of orgs (`rules/`, `feeds-server rules`).

In a file, followers are named, not numbered — users by email, roles, groups and territories by
name — so one file fits every org. `rules/schema.json` describes the format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from feeds_server import limits
from feeds_server.domain.criteria import compile_criteria
from feeds_server.errors import ValidationFailed

FILE_VERSION = 1
_RULE_KEYS = {"name", "module", "criteria", "followers", "description"}
_FOLLOWER_FLAGS = ("creator", "record_creator", "owner_superior_role")
_FOLLOWER_LISTS = ("users", "roles", "groups", "territories")


@dataclass(frozen=True)
class NamedFollowers:
    creator: bool = True
    record_creator: bool = False
    owner_superior_role: bool = False
    users: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    territories: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleSpec:
    name: str
    module: str
    criteria: dict[str, Any]
    followers: NamedFollowers = field(default_factory=NamedFollowers)
    description: str = ""


def _fail(path: str, message: str) -> ValidationFailed:
    return ValidationFailed("invalid_rule_file", f"{path}: {message}", path=path)


def _text(value: Any, path: str, max_len: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()) or len(value) > max_len:
        raise _fail(path, f"must be a {'' if allow_empty else 'non-empty '}string of at most {max_len} characters")
    return value


def parse_rule_file(data: Any) -> list[RuleSpec]:
    if not isinstance(data, dict):
        raise _fail("$", "a rule file is a JSON object")
    unknown = set(data) - {"version", "rules", "$schema"}
    if unknown:
        raise _fail(sorted(unknown)[0], "unknown key")
    if data.get("version") != FILE_VERSION:
        raise _fail("version", f"must be {FILE_VERSION}")
    rules = data.get("rules")
    if not isinstance(rules, list) or not rules:
        raise _fail("rules", "must be a non-empty list")
    return [_rule(r, f"rules[{i}]") for i, r in enumerate(rules)]


def _rule(raw: Any, path: str) -> RuleSpec:
    if not isinstance(raw, dict):
        raise _fail(path, "must be an object")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise _fail(f"{path}.{sorted(unknown)[0]}", "unknown key")
    for key in ("name", "module", "criteria"):
        if key not in raw:
            raise _fail(f"{path}.{key}", "missing")
    name = _text(raw["name"], f"{path}.name", limits.MAX_NAME_CHARS)
    module = _text(raw["module"], f"{path}.module", 64)
    compile_criteria(raw["criteria"], path=f"{path}.criteria")
    description = _text(raw.get("description", ""), f"{path}.description", limits.MAX_DESCRIPTION_CHARS, allow_empty=True)
    return RuleSpec(name, module, raw["criteria"], _followers(raw.get("followers", {}), f"{path}.followers"), description)


def _followers(raw: Any, path: str) -> NamedFollowers:
    if not isinstance(raw, dict):
        raise _fail(path, "must be an object")
    unknown = set(raw) - set(_FOLLOWER_FLAGS) - set(_FOLLOWER_LISTS)
    if unknown:
        raise _fail(f"{path}.{sorted(unknown)[0]}", "unknown key")
    values: dict[str, Any] = {}
    for flag in _FOLLOWER_FLAGS:
        if flag in raw:
            if not isinstance(raw[flag], bool):
                raise _fail(f"{path}.{flag}", "must be true or false")
            values[flag] = raw[flag]
    for name in _FOLLOWER_LISTS:
        if name in raw:
            items = raw[name]
            if not isinstance(items, list):
                raise _fail(f"{path}.{name}", "must be a list")
            values[name] = tuple(_text(v, f"{path}.{name}[{i}]", limits.MAX_EMAIL_CHARS) for i, v in enumerate(items))
    return NamedFollowers(**values)
