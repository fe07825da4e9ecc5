"""An OpenAPI document that shows each served model's request fields with their types.

Consumers generate clients from it, so every served model gets its own path and
record schema built from its signature.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from mlprod.serving._pool import ModelPool

_KIND_SCHEMA: dict[str, dict[str, Any]] = {
    "numeric": {"type": ["number", "null"]},
    "categorical": {"type": ["string", "null"]},
    "boolean": {"type": ["boolean", "null"]},
    "datetime": {"type": ["string", "null"], "format": "date-time"},
}

PREDICTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "Prediction id, for joining outcomes later."},
        "version": {"type": "integer"},
        "score": {"type": ["number", "null"], "description": "P(positive); null if not finite."},
        "label": {"description": "The predicted class, as in the training data."},
    },
    "required": ["id", "version", "score", "label"],
}


def record_schema(signature: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema of one request record: every signature field, required, nullable."""
    properties = {}
    for field in signature["fields"]:
        schema = dict(_KIND_SCHEMA[field["kind"]])
        if field.get("categories"):
            schema["examples"] = field["categories"][:5]
        elif field.get("example") is not None:
            schema["examples"] = [field["example"]]
        properties[field["name"]] = schema
    return {
        "type": "object",
        "properties": properties,
        "required": [f["name"] for f in signature["fields"]],
        "additionalProperties": True,
    }


def install_openapi(app: FastAPI, pool: ModelPool) -> None:
    """Replace the app's OpenAPI generator with one that adds a path per served model."""

    def openapi() -> dict[str, Any]:
        document = get_openapi(title=app.title, version=app.version, routes=app.routes)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["Prediction"] = PREDICTION_SCHEMA
        for name, served in sorted(pool.table().items()):
            key = "".join(part.capitalize() for part in name.replace("-", "_").split("_"))
            schemas[f"{key}Record"] = record_schema(served.routes[0].signature)
            document["paths"][f"/v1/models/{name}/predict"] = _predict_path(name, key)
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _predict_path(name: str, key: str) -> dict[str, Any]:
    body = {
        "type": "object",
        "properties": {
            "records": {"type": "array", "items": {"$ref": f"#/components/schemas/{key}Record"}}
        },
        "required": ["records"],
    }
    answer = {
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}},
        },
    }
    return {
        "post": {
            "summary": f"Score records with {name}",
            "operationId": f"predict_{name.replace('-', '_')}",
            "tags": ["models"],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "200": {
                    "description": "Scores",
                    "content": {"application/json": {"schema": answer}},
                },
                "422": {"description": "A record does not match the signature"},
            },
        }
    }
