"""Features: one fitted transformer shared by training and serving, and kind inference."""

from mlprod.features._coerce import MISSING, category_string
from mlprod.features._infer import infer_kind, infer_kinds, resolve_features
from mlprod.features._reference import SCORE, Binner, bin_labels, build_reference
from mlprod.features._signature import build_signature, json_safe
from mlprod.features._subset import ColumnSubset
from mlprod.features._transformer import FeatureTransformer

__all__ = [
    "MISSING",
    "SCORE",
    "Binner",
    "ColumnSubset",
    "FeatureTransformer",
    "bin_labels",
    "build_reference",
    "build_signature",
    "category_string",
    "infer_kind",
    "infer_kinds",
    "json_safe",
    "resolve_features",
]
