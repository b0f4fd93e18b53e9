"""Builds calls for every route of the route table: path parameters and a valid example body."""

from __future__ import annotations

import re
import types
import typing
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

from feeds_server.api.app import all_endpoints
from feeds_server.api.routing import Endpoint


def example(model: type[BaseModel] | None) -> dict[str, Any] | None:
    """A body the model accepts, with required fields only."""
    if model is None:
        return None
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if field.is_required():
            out[field.alias or name] = _value(field.annotation, name)
    return out


def _value(annotation: Any, name: str) -> Any:
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _value(next(a for a in get_args(annotation) if a is not type(None)), name)
    if origin is typing.Annotated:
        return _value(get_args(annotation)[0], name)
    if origin is Literal:
        return get_args(annotation)[0]
    if origin in (list, tuple):
        return []
    if origin is dict:
        return {}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return example(annotation)
    if annotation is bool:
        return False
    if annotation is int:
        return 1
    if name == "email":
        return "someone@example.com"
    if name == "slug":
        return "some-slug"
    if name == "url":
        return "https://crm.example.com/hook"
    if name == "token":
        return "fsi_nothing"
    if name == "emoji":
        return "👍"
    return "x"


def org_endpoints(predicate: Any = None) -> list[Endpoint]:
    return [ep for ep in all_endpoints() if "{slug}" in ep.path and (predicate is None or predicate(ep))]


def fill(ep: Endpoint, slug: str, ids: dict[str, int]) -> str:
    path = ep.path.replace("{slug}", slug)
    return re.sub(r"{(\w+):int}", lambda m: str(ids[m.group(1)]), path)


def ep_id(ep: Endpoint) -> str:
    return f"{ep.method} {ep.path}"
