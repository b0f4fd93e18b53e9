"""Rule files: auto-follow rules as code, applied to any number of orgs (`rules/`, `feeds-server rules`).

In a file, followers are named, not numbered — users by email, roles, groups and territories by
name — so one file fits every org. `rules/schema.json` describes the same format for editors; this
module is what the server enforces (it also checks what a schema cannot: criteria limits, duplicates,
the 5-rules-per-module cap of F-FOLLOW-6).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from feeds_server import limits
from feeds_server.domain import names
from feeds_server.domain.criteria import compile_criteria
from feeds_server.domain.orgs import normalize_email
from feeds_server.errors import LimitExceeded, ValidationFailed

FILE_VERSION = 1
# The width of the `module` column of records and rules. To move to limits.py.
MAX_MODULE_CHARS = 64

_FILE_KEYS = ("$schema", "version", "rules")
_RULE_KEYS = ("name", "module", "criteria", "followers", "description")
_FOLLOWER_FLAGS = ("creator", "record_creator", "owner_superior_role")
_FOLLOWER_LISTS = ("users", "roles", "groups", "territories")


@dataclass(frozen=True)
class NamedFollowers:
    """Followers as a file names them; `rules_cli` resolves the names in one org."""

    creator: bool = True
    record_creator: bool = False
    owner_superior_role: bool = False
    users: tuple[str, ...] = ()  # emails, lower-cased
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    territories: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleSpec:
    """One valid rule of a file; `criteria` is the raw JSON, already known to compile."""

    name: str
    module: str
    criteria: dict[str, Any] = field(hash=False)
    followers: NamedFollowers = field(default_factory=NamedFollowers)
    description: str = ""


def parse_rule_file(data: Any) -> list[RuleSpec]:
    """Validate a whole rule file (already parsed JSON). Errors carry a path like `rules[1].criteria.or[0].op`."""
    if not isinstance(data, dict):
        raise _fail("$", "a rule file is a JSON object")
    _refuse_unknown_keys(data, _FILE_KEYS, "")
    version = data.get("version")
    if isinstance(version, bool) or version != FILE_VERSION:
        raise _fail("version", f"must be {FILE_VERSION}")
    rules = data.get("rules")
    if not isinstance(rules, list) or not rules:
        raise _fail("rules", "must be a non-empty list of rules")
    specs = [_rule(raw, f"rules[{i}]") for i, raw in enumerate(rules)]
    _check_duplicates(specs)
    _check_rules_per_module(specs)
    return specs


def _fail(path: str, message: str) -> ValidationFailed:
    # The path leads the message too: `feeds-server rules validate` prints only the message.
    return ValidationFailed("invalid_rule_file", f"{path}: {message}", path=path)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _refuse_unknown_keys(raw: dict[str, Any], allowed: tuple[str, ...], path: str) -> None:
    for key in raw:
        if key not in allowed:
            raise _fail(_join(path, key), f"unknown key '{key}'")


def _text(value: Any, path: str, max_len: int, allow_empty: bool = False) -> str:
    """A string of at most `max_len`, without NUL, trimmed; blank only where `allow_empty`."""
    what = "a string" if allow_empty else "a non-blank string"
    if not isinstance(value, str) or len(value) > max_len or (not allow_empty and not value.strip()):
        raise _fail(path, f"must be {what} of at most {max_len} characters")
    if "\x00" in value:
        raise _fail(path, "must not contain NUL characters")
    return value.strip()


def _rule(raw: Any, path: str) -> RuleSpec:
    if not isinstance(raw, dict):
        raise _fail(path, "must be an object")
    _refuse_unknown_keys(raw, _RULE_KEYS, path)
    for key in ("name", "module", "criteria"):
        if key not in raw:
            raise _fail(f"{path}.{key}", "is required")
    name = _name(raw["name"], f"{path}.name")
    module = _text(raw["module"], f"{path}.module", MAX_MODULE_CHARS)
    compile_criteria(raw["criteria"], path=f"{path}.criteria")
    followers = _followers(raw.get("followers", {}), f"{path}.followers")
    description = _text(raw.get("description", ""), f"{path}.description", limits.MAX_DESCRIPTION_CHARS, allow_empty=True)
    return RuleSpec(name, module, raw["criteria"], followers, description)


def _followers(raw: Any, path: str) -> NamedFollowers:
    if not isinstance(raw, dict):
        raise _fail(path, "must be an object")
    _refuse_unknown_keys(raw, _FOLLOWER_FLAGS + _FOLLOWER_LISTS, path)
    values: dict[str, Any] = {}
    for flag in _FOLLOWER_FLAGS:
        if flag not in raw:
            continue
        if not isinstance(raw[flag], bool):
            raise _fail(f"{path}.{flag}", "must be true or false")
        values[flag] = raw[flag]
    for name in _FOLLOWER_LISTS:
        if name in raw:
            values[name] = _names(raw[name], f"{path}.{name}", _email if name == "users" else _name)
    followers = NamedFollowers(**values)
    if not any(getattr(followers, option) for option in _FOLLOWER_FLAGS + _FOLLOWER_LISTS):
        raise _fail(path, "a rule needs at least one follower")
    return followers


def _names(raw: Any, path: str, read: Callable[[Any, str], str]) -> tuple[str, ...]:
    """A list of emails or names; duplicates are refused as the org would resolve them (ignoring case)."""
    if not isinstance(raw, list):
        raise _fail(path, "must be a list")
    seen: set[str] = set()
    out = []
    for i, item in enumerate(raw):
        value = read(item, f"{path}[{i}]")
        if value.casefold() in seen:
            raise _fail(f"{path}[{i}]", f"'{value}' is listed twice")
        seen.add(value.casefold())
        out.append(value)
    return tuple(out)


def _name(value: Any, path: str) -> str:
    name = _text(value, path, limits.MAX_NAME_CHARS)
    char = names.first_forbidden(value)
    if char is not None:
        raise _fail(path, f"must not contain control characters or line breaks ({names.describe(char)})")
    return name


def _email(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _fail(path, "must be an email address")
    try:
        return normalize_email(value)
    except ValidationFailed:
        raise _fail(path, f"'{value}' is not an email address") from None


def _check_duplicates(specs: list[RuleSpec]) -> None:
    """Applying matches rules by module and name: two alike would overwrite each other."""
    seen: set[tuple[str, str]] = set()
    for i, spec in enumerate(specs):
        if (spec.module, spec.name) in seen:
            raise _fail(f"rules[{i}].name", f"a rule named '{spec.name}' is already in module '{spec.module}'")
        seen.add((spec.module, spec.name))


def _check_rules_per_module(specs: list[RuleSpec]) -> None:
    """F-FOLLOW-6: a file is applied by one creator, so it holds at most 5 rules per module."""
    counts: Counter[str] = Counter()
    for i, spec in enumerate(specs):
        counts[spec.module] += 1
        if counts[spec.module] > limits.MAX_RULES_PER_MODULE_PER_CREATOR:
            raise LimitExceeded(
                "too_many_rules",
                f"rules[{i}]: at most {limits.MAX_RULES_PER_MODULE_PER_CREATOR} rules per module for each creator",
                limit=limits.MAX_RULES_PER_MODULE_PER_CREATOR,
                module=spec.module,
                path=f"rules[{i}]",
            )
