"""Rule files: auto-follow rules as code, applied to any number of orgs (`rules/`, `feeds-server rules`).

In a file, followers are named, not numbered — users by email, roles, groups and territories by
name — so one file fits every org. The models below are the one description of the format: they
validate files, and `rules/schema.json` is generated from them (domain/rulefile_schema.py). Code
outside the models checks only what a schema cannot say: no two rules alike in a module, at most 5
rules per module (F-FOLLOW-6).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import field
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import ErrorDetails, PydanticCustomError

from feeds_server import limits
from feeds_server.domain import names
from feeds_server.domain.criteria import compile_criteria
from feeds_server.domain.orgs import normalize_email
from feeds_server.errors import FeedsError, LimitExceeded, ValidationFailed

FILE_VERSION = 1
MAX_MODULE_CHARS = limits.MAX_MODULE_CHARS

_FLAGS = ("creator", "record_creator", "owner_superior_role")
_LISTS = ("users", "roles", "groups", "territories")
_NO_UNKNOWN_KEYS = ConfigDict(extra="forbid")


def _error(message: str, at: int | None = None) -> PydanticCustomError:
    """A refusal worded for the file's author; `at` places it on one item of a list."""
    return PydanticCustomError("rule_file", message, {"at": at})


def _text(max_len: int, *, blank: bool = False, one_line: bool = False, **schema: Any) -> Any:
    """A string of at most `max_len`, without NUL, trimmed; blank only where `blank`."""
    what = "a string" if blank else "a non-blank string"

    def check(value: Any) -> str:
        if not isinstance(value, str) or len(value) > max_len or (not blank and not value.strip()):
            raise _error(f"must be {what} of at most {max_len} characters")
        if "\x00" in value:
            raise _error("must not contain NUL characters")
        char = names.first_forbidden(value) if one_line else None
        if char is not None:
            raise _error(f"must not contain control characters or line breaks ({names.describe(char)})")
        return value.strip()

    return Annotated[str, Field(min_length=None if blank else 1, max_length=max_len, json_schema_extra=schema or None), BeforeValidator(check)]


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _error("must be true or false")
    return value


def _email(value: Any) -> str:
    if not isinstance(value, str):
        raise _error("must be an email address")
    try:
        return normalize_email(value)
    except ValidationFailed:
        raise _error(f"'{value}' is not an email address") from None


def _list(value: Any) -> Any:
    if not isinstance(value, list | tuple):  # a tuple only from code: JSON has lists
        raise _error("must be a list")
    return value


def _distinct(values: tuple[str, ...]) -> tuple[str, ...]:
    """Duplicates are refused as the org would resolve them (ignoring case)."""
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value.casefold() in seen:
            raise _error(f"'{value}' is listed twice", at=i)
        seen.add(value.casefold())
    return values


def _check_criteria(value: Any) -> Any:
    try:
        compile_criteria(value)
    except FeedsError as exc:
        raise PydanticCustomError("invalid_criteria", exc.message, {"error": exc}) from None
    return value


# The same characters as regex escapes: JSON Schema tools read `\u0000`, not a raw NUL, in a pattern.
_NO_CONTROLS = "[^" + "".join(c if c.isprintable() else f"\\u{ord(c):04X}" for c in names.FORBIDDEN_CHARS) + "]*"
# A name as its own schema; `Name` points to it, and the schema generator puts it in `$defs` once
# (`x-ref` stands for a `$ref` pydantic would try to follow).
NameText = _text(
    limits.MAX_NAME_CHARS, one_line=True, pattern=f"^{_NO_CONTROLS}\\S{_NO_CONTROLS}$", description="One line: no control characters or line breaks"
)
Name = Annotated[NameText, WithJsonSchema({"x-ref": "name"})]
Module = _text(MAX_MODULE_CHARS, pattern="\\S", description="Leads, Contacts, Accounts, Deals, ... or a custom module")
Description = _text(limits.MAX_DESCRIPTION_CHARS, blank=True)
Email = Annotated[
    str,
    Field(max_length=limits.MAX_EMAIL_CHARS, json_schema_extra={"format": "email", "pattern": "^[^\\s]+@[^@\\s]*\\.[^@\\s]*$"}),
    BeforeValidator(_email),
]
Flag = Annotated[bool, BeforeValidator(_flag)]
Criteria = Annotated[Any, BeforeValidator(_check_criteria), WithJsonSchema({"x-ref": "criteria"})]
Emails = Annotated[tuple[Email, ...], Field(json_schema_extra={"uniqueItems": True}), BeforeValidator(_list), AfterValidator(_distinct)]
Names = Annotated[tuple[Name, ...], Field(json_schema_extra={"uniqueItems": True}), BeforeValidator(_list), AfterValidator(_distinct)]
FieldName = _text(limits.MAX_FIELD_NAME_CHARS, pattern="\\S")


def _field_list(value: Any) -> Any:
    if value is None:
        return value
    if not isinstance(value, list | tuple) or not value:
        raise _error("must be a non-empty list of field names, or null for every field")
    if len(value) > limits.MAX_FOLLOW_FIELDS:
        raise _error(f"must list at most {limits.MAX_FOLLOW_FIELDS} fields")
    return value


def _distinct_exactly(values: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Field names are the CRM's API names: case counts."""
    for i, value in enumerate(values or ()):
        if value in values[:i]:  # type: ignore[index]
            raise _error(f"'{value}' is listed twice", at=i)
    return values


FieldNames = Annotated[
    tuple[FieldName, ...] | None,
    Field(min_length=1, max_length=limits.MAX_FOLLOW_FIELDS, json_schema_extra={"uniqueItems": True}),
    BeforeValidator(_field_list),
    AfterValidator(_distinct_exactly),
]


def _follower_options(schema: dict[str, Any]) -> None:
    """The schema's form of `NamedFollowers._someone_follows`: one of the options names a follower."""
    props = schema["properties"]
    options: list[dict[str, Any]] = [{"not": {"required": ["creator"], "properties": {"creator": {"const": False}}}}]
    options += [{"required": [f], "properties": {f: {"const": True}}} for f in _FLAGS if props[f]["default"] is False]
    options += [{"required": [f], "properties": {f: {"minItems": 1}}} for f in _LISTS]
    schema["anyOf"] = options


@dataclass(frozen=True, config=ConfigDict(**_NO_UNKNOWN_KEYS, json_schema_extra=_follower_options))
class NamedFollowers:
    """Who follows a matching record. Everything but `creator` can only be set by an admin (F-FOLLOW-5). Absent: the creator alone."""

    creator: Annotated[Flag, Field(description="The rule's creator (the org's super admin when applied from a file)")] = True
    record_creator: Annotated[Flag, Field(description="Admin only: the user who created the record")] = False
    owner_superior_role: Annotated[Flag, Field(description="Admin only: users holding the role directly above the record owner's role")] = False
    users: Annotated[Emails, Field(description="Admin only: members, by email")] = ()  # lower-cased
    roles: Annotated[Names, Field(description="Admin only: holders of these roles")] = ()
    groups: Annotated[Names, Field(description="Admin only: members of these groups")] = ()
    territories: Annotated[Names, Field(description="Admin only: members of these territories")] = ()

    @model_validator(mode="after")
    def _someone_follows(self) -> NamedFollowers:
        if not any(getattr(self, option) for option in _FLAGS + _LISTS):
            raise _error("a rule needs at least one follower")
        return self


@dataclass(frozen=True, config=ConfigDict(**_NO_UNKNOWN_KEYS, json_schema_extra=lambda schema: schema.pop("description")))
class RuleSpec:
    """One valid rule of a file; `criteria` is the raw JSON, already known to compile."""

    name: Name
    module: Module
    criteria: Criteria = field(hash=False)
    followers: NamedFollowers = field(default_factory=NamedFollowers)
    description: Description = ""
    fields: Annotated[
        FieldNames, Field(description="The fields whose edits reach the rule's followers (API names); absent or null: every field")
    ] = None


def _non_empty_list(value: Any) -> Any:
    if not isinstance(value, list) or not value:
        raise _error("must be a non-empty list of rules")
    return value


def _version(value: Any) -> int:
    if isinstance(value, bool) or value != FILE_VERSION:
        raise _error(f"must be {FILE_VERSION}")
    return FILE_VERSION


class RuleFile(BaseModel):
    """A whole rule file, as `feeds-server rules validate` and `apply` read it."""

    model_config = ConfigDict(**_NO_UNKNOWN_KEYS, frozen=True)

    schema_: Annotated[Any, WithJsonSchema({"type": "string", "description": "Optional, for editors: a path or URL of this schema"})] = Field(
        None, alias="$schema", json_schema_extra=lambda schema: schema.pop("default")
    )
    version: Annotated[int, BeforeValidator(_version), WithJsonSchema({"const": FILE_VERSION})]
    rules: Annotated[list[RuleSpec], Field(min_length=1), BeforeValidator(_non_empty_list)]


# What a missing key of the file itself is told (inside a rule: "is required").
_MISSING = {"version": f"must be {FILE_VERSION}", "rules": "must be a non-empty list of rules"}
_NOT_AN_OBJECT = {"model_type", "dataclass_type", "dict_type", "model_attributes_type"}
_UNKNOWN_KEY = {"extra_forbidden", "unexpected_keyword_argument"}
_MISSING_KEY = {"missing", "missing_argument", "missing_keyword_only_argument"}


def parse_rule_file(data: Any) -> list[RuleSpec]:
    """Validate a whole rule file (already parsed JSON). Errors carry a path like `rules[1].criteria.or[0].op`."""
    try:
        specs = RuleFile.model_validate(data).rules
    except ValidationError as exc:
        raise _feeds_error(_first(exc.errors())) from None
    _check_duplicates(specs)
    _check_rules_per_module(specs)
    return specs


def _first(errors: list[ErrorDetails]) -> ErrorDetails:
    """The error a reader meets first: an object's unknown and missing keys before its values."""
    first = errors[0]
    for depth in range(len(first["loc"])):
        keys = [e for e in errors if e["loc"][:-1] == first["loc"][:depth]]
        for kinds in (_UNKNOWN_KEY, _MISSING_KEY if depth >= 2 else ()):  # the file's own keys: in order
            for error in keys:
                if error["type"] in kinds:
                    return error
    return first


def _feeds_error(error: ErrorDetails) -> FeedsError:
    loc, kind, ctx = error["loc"], error["type"], error.get("ctx") or {}
    path = _path(loc)
    if kind == "invalid_criteria":
        return _within(ctx["error"], path)
    if kind in _NOT_AN_OBJECT and not loc:
        return _fail("$", "a rule file is a JSON object")
    if kind in _NOT_AN_OBJECT:
        return _fail(path, "must be an object")
    if kind in _UNKNOWN_KEY:
        return _fail(path, f"unknown key '{loc[-1]}'")
    if kind in _MISSING_KEY:
        return _fail(path, _MISSING.get(path, "is required"))
    if ctx.get("at") is not None:
        path = f"{path}[{ctx['at']}]"
    return _fail(path, error["msg"])


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def _within(exc: FeedsError, path: str) -> FeedsError:
    """A criteria error (its path starts at `criteria`) placed at `path` inside the file."""
    inner = exc.details["path"]
    outer = path + inner.removeprefix("criteria")
    return type(exc)(exc.code, outer + exc.message.removeprefix(inner), **{**exc.details, "path": outer})


def _fail(path: str, message: str) -> ValidationFailed:
    # The path leads the message too: `feeds-server rules validate` prints only the message.
    return ValidationFailed("invalid_rule_file", f"{path}: {message}", path=path)


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
