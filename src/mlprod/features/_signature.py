"""The model's signature: the request fields a version accepts, by name and kind.

It is stored in the bundle manifest and in the registry, and the server builds its
request validation and OpenAPI document from it. A project with an ``interface:`` section
keeps it in the signature too, after checking that the model agrees with it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pandas as pd

from mlprod.errors import SpecError
from mlprod.records import MISSING, as_category, json_safe
from mlprod.spec import InterfaceSpec

TOP_CATEGORIES = 20


def build_signature(
    df: pd.DataFrame,
    kinds: Mapping[str, str],
    *,
    target: str,
    classes: list[Any],
    entity: str | None,
    time: str | None,
) -> dict[str, Any]:
    """Fields (name, kind, dtype, missing share, example, top categories) and context."""
    fields = []
    for column, kind in kinds.items():
        values = df[column]
        present = values.dropna()
        field: dict[str, Any] = {
            "name": column,
            "kind": kind,
            "dtype": str(values.dtype),
            "missing_rate": round(float(values.isna().mean()), 6),
            "example": json_safe(present.iloc[0]) if len(present) else None,
        }
        if kind == "categorical":
            counts = pd.Series(as_category(values)).value_counts()
            field["categories"] = [c for c in counts.index.tolist() if c != MISSING][
                :TOP_CATEGORIES
            ]
        fields.append(field)
    return {
        "fields": fields,
        "target": target,
        "classes": [json_safe(c) for c in classes],
        "entity": entity,
        "time": time,
    }


def contract_signature(
    interface: InterfaceSpec, *, entity: str | None = None, time: str | None = None
) -> dict[str, Any]:
    """The signature an ``interface:`` section describes on its own, before data or model.

    It documents the service (`mlprod interface`) through the same code that documents a
    trained version, so the two documents cannot disagree.
    """
    label = interface.response.label
    return {
        "fields": [
            {"name": name, "kind": field.kind, **field.constraints()}
            for name, field in interface.request.items()
        ],
        "target": None,
        "classes": list(label.values) if label else [],
        "entity": entity,
        "time": time,
        "interface": interface.model_dump(mode="json"),
    }


def contract_differences(
    interface: InterfaceSpec,
    kinds: Mapping[str, str],
    classes: Sequence[Any],
    *,
    context: Collection[str] = (),
    computed: Collection[str] = (),
) -> list[str]:
    """How a model's inputs (`kinds`) and classes differ from the interface; empty if not.

    `context` are request fields the model does not score (entity, time); `computed` are
    inputs the server looks up itself (aggregates), which a request need not carry.
    """
    request = interface.request
    found = []
    for name, kind in kinds.items():
        if name in request and request[name].kind != kind:
            declared = request[name].type
            found.append(
                f"field {name!r}: the interface says {declared} (a {request[name].kind} input), "
                f"the model learned it as {kind}; declare it under features.{request[name].kind} "
                "or change its type in the interface"
            )
        elif name not in request and name not in computed:
            found.append(
                f"field {name!r}: the model uses it ({kind}) but interface.request does not "
                "name it; add it there, or list it under features.exclude"
            )
    for name in request:
        if name not in kinds and name not in context:
            found.append(
                f"field {name!r}: interface.request names it but the model does not use it; "
                "remove it there, or list it under features"
            )
    label = interface.response.label
    learned = [json_safe(c) for c in classes]
    if label is not None and sorted(map(repr, label.values)) != sorted(map(repr, learned)):
        found.append(
            f"response label: the interface says {list(label.values)}, the training data's "
            f"classes are {learned}; change interface.response.label.values"
        )
    return found


def check_contract(
    interface: InterfaceSpec,
    kinds: Mapping[str, str],
    classes: Sequence[Any],
    *,
    context: Collection[str] = (),
    computed: Collection[str] = (),
) -> None:
    """Raise a `SpecError` naming every difference between a model and its interface."""
    found = contract_differences(interface, kinds, classes, context=context, computed=computed)
    if found:
        lines = "\n".join(f"  - {line}" for line in found)
        raise SpecError(
            f"the model does not match the interface in mlprod.yaml ({len(found)} "
            f"difference(s)):\n{lines}\nThe interface is what consumers build against: make "
            "the features and the interface agree, then train again."
        )


DRAFT_VALUES = 12  # a string column with at most this many distinct values lists them


def draft_interface(df: pd.DataFrame, kinds: Mapping[str, str], *, target: str) -> InterfaceSpec:
    """A first contract read off the data, for ``mlprod init`` to write (then a person edits).

    Numbers that are all whole become integers, never-negative ones get ``minimum: 0``;
    short lists of strings become allowed values; columns with no missing values are not
    nullable. The label's two values are the target's.
    """
    request = {str(name): _draft_field(df[name], kind) for name, kind in kinds.items()}
    classes = sorted((json_safe(c) for c in df[target].dropna().unique()), key=repr)
    response = {"label": {"values": classes}} if len(classes) == 2 else {}
    return InterfaceSpec.model_validate({"request": request, "response": response})


def _draft_field(values: pd.Series, kind: str) -> dict[str, Any]:
    present = values.dropna()
    field: dict[str, Any] = {"type": kind, "nullable": bool(len(present) < len(values))}
    if kind == "numeric":
        numbers = pd.to_numeric(present, errors="coerce").dropna()
        whole = bool(len(numbers)) and bool((numbers == numbers.round()).all())
        field["type"] = "integer" if whole else "number"
        if len(numbers) and numbers.min() >= 0:
            field["minimum"] = 0
    elif kind == "categorical":
        field["type"] = "string"
        texts = present.astype(str)
        distinct = sorted(texts.unique().tolist())
        if 0 < len(distinct) <= DRAFT_VALUES:
            field["values"] = distinct
        else:
            longest = int(texts.str.len().max()) if len(texts) else 0
            field["max_length"] = max(64, 2 * longest)
    return field
