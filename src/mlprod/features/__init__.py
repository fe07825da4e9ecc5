"""Features: one fitted transformer shared by training and serving, kind inference, coercion.

The coercion functions are the one definition of how a raw value becomes a number, a
category, a boolean or a time; training, serving's fast path and monitoring all call them.
"""

from mlprod.features._coerce import (
    DATETIME_PARTS,
    MISSING,
    as_boolean,
    as_category,
    as_datetime,
    as_numeric,
    boolean_value,
    category_string,
    datetime_parts,
)
from mlprod.features._infer import infer_kind, infer_kinds, resolve_features
from mlprod.features._signature import build_signature, json_safe
from mlprod.features._subset import ColumnSubset
from mlprod.features._transformer import FeatureTransformer

__all__ = [
    "DATETIME_PARTS",
    "MISSING",
    "ColumnSubset",
    "FeatureTransformer",
    "as_boolean",
    "as_category",
    "as_datetime",
    "as_numeric",
    "boolean_value",
    "build_signature",
    "category_string",
    "datetime_parts",
    "infer_kind",
    "infer_kinds",
    "json_safe",
    "resolve_features",
]
