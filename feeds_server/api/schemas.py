"""Base classes for request bodies and queries, and the text types they share.

Bodies are strict: unknown fields, wrong JSON types and NUL characters are refused (F-SEC-3).
Names are one line: control characters and line breaks are refused (domain/names.py).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from feeds_server import limits
from feeds_server.domain import names


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    return value


def _one_line(value: str) -> str:
    char = names.first_forbidden(value)
    if char is not None:
        raise ValueError(f"must not contain control characters or line breaks ({names.describe(char)})")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
Line = Annotated[str, AfterValidator(_one_line)]  # one line of text: a name, a record's name or territory
Name = Annotated[str, Field(min_length=1, max_length=limits.MAX_NAME_CHARS), AfterValidator(_one_line), AfterValidator(_not_blank)]
Description = Annotated[str, Field(max_length=limits.MAX_DESCRIPTION_CHARS), AfterValidator(_no_nul)]
Email = Annotated[str, Field(min_length=3, max_length=limits.MAX_EMAIL_CHARS), AfterValidator(_no_nul)]
Password = Annotated[str, Field(min_length=limits.MIN_PASSWORD_CHARS, max_length=limits.MAX_PASSWORD_CHARS), AfterValidator(_no_nul)]
Slug = Annotated[str, Field(min_length=1, max_length=limits.MAX_SLUG_CHARS), AfterValidator(_no_nul)]
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


class Body(BaseModel):
    """A JSON request body."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Query(BaseModel):
    """Query-string parameters (strings coerced to the declared types)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeRangeQuery(Query):
    """A query whose `from` and `to` (fields `since` and `until`, declared by the subclass) must carry a
    time zone and fit in UTC, so a naive or out-of-range time is a 422 rather than a wrong page or a 500."""

    @model_validator(mode="after")
    def _aware(self) -> "TimeRangeQuery":
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{'from' if name == 'since' else 'to'} needs a time zone offset (e.g. Z)")
            if value is not None and value.utcoffset() and not _utc_can_hold(value):
                raise ValueError(f"{'from' if name == 'since' else 'to'} is outside years 1-9999 in UTC")
        return self


def _utc_can_hold(value: datetime) -> bool:
    """Year 1 or 9999 with an offset may fall outside what a UTC datetime can hold."""
    try:
        value.astimezone(timezone.utc)
    except OverflowError:
        return False
    return True


class PageQuery(Query):
    limit: int = Field(default=limits.DEFAULT_PAGE_SIZE, ge=1, le=limits.MAX_PAGE_SIZE)
    cursor: str | None = Field(default=None, max_length=200)
