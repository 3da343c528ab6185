"""The OpenAPI 3.1 document, built from the route table and the pydantic models.

Nothing here is written by hand per route: paths, roles, parameters, bodies
and answers all come from the `Endpoint` rows the app serves, and schemas
from `model_json_schema`. deploy/openapi.json is this function's output,
committed; a test fails when the two differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from admin_api.auth import roles_at_least
from admin_api.endpoint import Endpoint
from admin_api.models import ErrorOut, ValidationErrorOut

REF = "#/components/schemas/{model}"
JSON = "application/json"

_ERRORS: dict[int, tuple[str, str, type[BaseModel]]] = {
    401: ("Unauthorized", "No API key, or an unknown or revoked one.", ErrorOut),
    403: ("Forbidden", "The key's role is below the route's.", ErrorOut),
    404: ("NotFound", "No such tenant, account or key.", ErrorOut),
    409: ("Conflict", "It exists already, or is still in use.", ErrorOut),
    413: ("TooLarge", "The body is over 64 KiB.", ErrorOut),
    422: (
        "ValidationFailed",
        "The body or query is invalid; each field is named.",
        ValidationErrorOut,
    ),
    503: ("Unavailable", "A dependency of the route is not available.", ErrorOut),
}

_DESCRIPTION = (
    "Tenants, their provider accounts (secrets write-only), routing, test-connection, "
    "API keys and the audit trail of the Integration Hub.\n\n"
    "Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`. Roles: "
    "viewer reads everything but API keys; operator also tests connections; admin "
    "also changes everything, API keys included. Every route under /v1 answers 401 "
    "without a valid key and 403 below its role."
)


def build(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    refs, defs = models_json_schema(_models(endpoints), ref_template=REF)

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(refs[(model, mode)])

    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint, ref)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Integration Hub admin API", "version": "1", "description": _DESCRIPTION},
        "servers": [
            {"url": "http://127.0.0.1:8090", "description": "HUB_ADMIN_HOST:HUB_ADMIN_PORT"}
        ],
        "security": [{"bearer": []}, {"apiKey": []}],
        "tags": [{"name": tag} for tag in dict.fromkeys(e.tag for e in endpoints)],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(defs.get("$defs", {}).items())),
            "responses": {
                name: {
                    "description": text,
                    "content": {JSON: {"schema": ref(model, "serialization")}},
                }
                for name, text, model in _ERRORS.values()
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


def _models(endpoints: Sequence[Endpoint]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for endpoint in endpoints:
        if endpoint.body is not None:
            wanted[(endpoint.body, "validation")] = None
        if endpoint.response is not None:
            wanted[(endpoint.response, "serialization")] = None
    for _name, _text, model in _ERRORS.values():
        wanted[(model, "serialization")] = None
    return list(wanted)


def _operation(endpoint: Endpoint, ref: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": endpoint.name,
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
    }
    if endpoint.role is None:
        operation["description"] = endpoint.description or "No authentication."
        operation["security"] = []
    else:
        roles = roles_at_least(endpoint.role)
        operation["description"] = " ".join(
            filter(None, [endpoint.description, f"Roles: {', '.join(roles)}."])
        )
        operation["x-roles"] = list(roles)
    parameters = _path_parameters(endpoint) + _query_parameters(endpoint)
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": ref(endpoint.body, "validation")}},
        }
    operation["responses"] = _responses(endpoint, ref)
    return operation


def _path_parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in endpoint.path_params
    ]


def _query_parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    if endpoint.query is None:
        return []
    schema = endpoint.query.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    parameters = []
    for name, declared in schema["properties"].items():
        prop = dict(declared)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in prop:
            parameter["description"] = prop.pop("description")
        prop.pop("title", None)
        parameter["schema"] = _without_null(prop)
        parameters.append(parameter)
    return parameters


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`str | None = None` as a query parameter is just an optional string: a query has no null."""
    variants = schema.get("anyOf", [])
    others = [v for v in variants if v != {"type": "null"}]
    if len(variants) == 2 and len(others) == 1:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        if rest.get("default", 0) is None:
            del rest["default"]
        return {**others[0], **rest}
    return schema


_SUCCESS = {200: "OK.", 201: "Created.", 204: "No content."}


def _responses(endpoint: Endpoint, ref: Any) -> dict[str, Any]:
    success: dict[str, Any] = {"description": _SUCCESS.get(endpoint.status, "OK.")}
    if endpoint.response is not None:
        success["content"] = {JSON: {"schema": ref(endpoint.response, "serialization")}}
    elif endpoint.status != 204:
        success["content"] = {JSON: {"schema": {"type": "object"}}}
    responses: dict[str, Any] = {str(endpoint.status): success}
    statuses: list[int] = []
    if endpoint.role is not None:
        statuses.append(401)
        # A viewer route has no lower role to refuse.
        if endpoint.role != "viewer":
            statuses.append(403)
    statuses += [s for s in endpoint.errors if s in (404, 409)]
    if endpoint.body is not None:
        statuses.append(413)
    if endpoint.body is not None or endpoint.query is not None:
        statuses.append(422)
    statuses += [s for s in endpoint.errors if s not in (404, 409)]
    for status in statuses:
        responses[str(status)] = {"$ref": f"#/components/responses/{_ERRORS[status][0]}"}
    return responses
