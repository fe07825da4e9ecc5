"""An OpenAPI document that shows each served model's request fields with their types.

Consumers generate clients from it, so every served model gets its own path and
record schema built from its signature.
"""

from __future__ import annotations

import copy
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


_TYPE_SCHEMA: dict[str, dict[str, Any]] = {
    "number": {"type": "number"},
    "integer": {"type": "integer"},
    "string": {"type": "string"},
    "boolean": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
}


def record_schema(signature: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema of one request record: the interface's fields, or the learned ones.

    A version trained with an ``interface:`` section is documented by it alone, so the
    document `mlprod interface` prints before any model exists is the one it serves.
    """
    interface = signature.get("interface")
    if interface:
        return _interface_schema(interface, signature)
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


def _interface_schema(interface: dict[str, Any], signature: dict[str, Any]) -> dict[str, Any]:
    properties = {name: _field_schema(field) for name, field in interface["request"].items()}
    reject = interface.get("extra") == "reject"
    if reject:  # accepted beside the contract: the entity and time columns
        for role in ("entity", "time"):
            name = signature.get(role)
            if name and name not in properties:
                properties[name] = {
                    "description": f"The {role} column: kept in the log, not scored."
                }
    return {
        "type": "object",
        "properties": properties,
        "required": sorted(n for n, f in interface["request"].items() if f.get("required", True)),
        "additionalProperties": not reject,
    }


def _field_schema(field: dict[str, Any]) -> dict[str, Any]:
    schema = dict(_TYPE_SCHEMA[field["type"]])
    nullable = field.get("nullable", True)
    if nullable:
        schema["type"] = [schema["type"], "null"]
    for key, name in (("minimum", "minimum"), ("maximum", "maximum"), ("max_length", "maxLength")):
        if field.get(key) is not None:
            schema[name] = field[key]
    if field.get("values") is not None:
        schema["enum"] = [*field["values"], *([None] if nullable else [])]
    if field.get("description"):
        schema["description"] = field["description"]
    return schema


def prediction_schema(signature: dict[str, Any]) -> dict[str, Any]:
    """One prediction's schema, its label restricted to the model's classes.

    A multiclass model's answer adds ``probabilities``, one property per class, and its
    score is the probability of the predicted (most probable) class.
    """
    interface = signature.get("interface") or {}
    label = (interface.get("response") or {}).get("label") if interface else None
    classes = label["values"] if label else None if interface else signature.get("classes")
    schema = copy.deepcopy(PREDICTION_SCHEMA)
    if classes:
        schema["properties"]["label"]["enum"] = [*classes, None]
    every = list(signature.get("classes") or [])
    if len(every) > 2:
        _add_probabilities(schema, every)
    return schema


def _add_probabilities(schema: dict[str, Any], classes: list[Any]) -> None:
    properties = schema["properties"]
    properties["score"]["description"] = (
        "Probability of the predicted class (the most probable); null if not finite."
    )
    properties["label"]["description"] = "The most probable class, as in the training data."
    properties["probabilities"] = {
        "type": ["object", "null"],
        "description": "Every class's probability, keyed by the class, in class order; "
        "null if any is not finite.",
        "properties": {str(c): {"type": "number", "minimum": 0, "maximum": 1} for c in classes},
        "required": [str(c) for c in classes],
        "additionalProperties": False,
    }
    schema["required"] = [*schema["required"], "probabilities"]


def add_model(document: dict[str, Any], name: str, signature: dict[str, Any]) -> None:
    """Add a model's predict path and its record and prediction schemas to `document`."""
    key = "".join(part.capitalize() for part in name.replace("-", "_").split("_"))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas[f"{key}Record"] = record_schema(signature)
    schemas[f"{key}Prediction"] = prediction_schema(signature)
    document.setdefault("paths", {})[f"/v1/models/{name}/predict"] = _predict_path(name, key)


def interface_document(
    name: str, signature: dict[str, Any], description: str = ""
) -> dict[str, Any]:
    """The OpenAPI document of one model from its contract alone (``mlprod interface``).

    Example::

        document = interface_document("churn", contract_signature(spec))
    """
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": f"mlprod: {name}", "version": "1", "description": description},
        "paths": {},
        "components": {"schemas": {"Prediction": PREDICTION_SCHEMA}},
    }
    add_model(document, name, signature)
    return document


def install_openapi(app: FastAPI, pool: ModelPool) -> None:
    """Replace the app's OpenAPI generator with one that adds a path per served model."""

    def openapi() -> dict[str, Any]:
        document = get_openapi(title=app.title, version=app.version, routes=app.routes)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["Prediction"] = PREDICTION_SCHEMA
        for name, served in sorted(pool.table().items()):
            add_model(document, name, served.routes[0].signature)
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
            "predictions": {
                "type": "array",
                "items": {"$ref": f"#/components/schemas/{key}Prediction"},
            },
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
                "422": {
                    "description": "A record does not match the contract: each problem names "
                    "its record, field, what was expected and what came"
                },
            },
        }
    }
