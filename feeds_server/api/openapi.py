"""The OpenAPI 3.1 document, generated from the endpoint table and the pydantic body models."""

from __future__ import annotations

import re
from typing import Any

from feeds_server import __version__, limits
from feeds_server.api.routing import INTEGRATION, PUBLIC, Endpoint

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable error code (docs/api.md)."},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


def build_openapi(endpoints: list[Endpoint]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for ep in endpoints:
        path = re.sub(r"{(\w+):\w+}", r"{\1}", ep.path)
        paths.setdefault(path, {})[ep.method.lower()] = _operation(ep, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "feeds_server API", "version": __version__, "description": "See docs/api.md."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(ep: Endpoint, components: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{ep.handler.__name__}_{ep.method.lower()}_{abs(hash(ep.path)) % 10_000}",
        "summary": ep.summary,
        "tags": [ep.tag],
        "parameters": [_path_param(ep, name) for name in ep.path_params],
        "responses": _responses(ep),
    }
    if ep.access != PUBLIC:
        op["security"] = [{"bearer": []}]
    if ep.permission:
        op["description"] = f"Needs the `{ep.permission}` permission in the org." + (
            " Integration token." if ep.access == INTEGRATION else ""
        )
    if ep.query is not None:
        schema = ep.query.model_json_schema()
        for name, prop in schema.get("properties", {}).items():
            op["parameters"].append(
                {"name": name, "in": "query", "required": name in schema.get("required", []), "schema": prop}
            )
    if ep.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(ep.body, components)}}}
    if ep.files:
        op["requestBody"]["content"]["multipart/form-data"] = {
            "schema": {
                "type": "object",
                "required": ["message"],
                "properties": {
                    "message": {"type": "string", "description": f"the body as JSON ({ep.body.__name__})"},  # type: ignore[union-attr]
                    "files": {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": limits.MAX_FILES_PER_POST},
                },
            },
            "encoding": {"message": {"contentType": "application/json"}},
        }
    return op


def _path_param(ep: Endpoint, name: str) -> dict[str, Any]:
    is_int = re.search(r"{" + name + r":int}", ep.path) is not None
    schema = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1} if is_int else {"type": "string", "maxLength": 63}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _responses(ep: Endpoint) -> dict[str, Any]:
    error = {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    ok = {"description": "No content"} if ep.status == 204 else {
        "description": "OK",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    out: dict[str, Any] = {str(ep.status): ok, "400": error, "404": error, "422": error}
    if ep.access != PUBLIC:
        out["401"] = error
        out["403"] = error
    return out


def _ref(model: Any, components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}
