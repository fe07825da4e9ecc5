"""Turning the target column into labels while remembering the original values.

Two values make a binary target (0/1, the positive class is 1); three or more make a
multiclass one, coded 0..k-1 in the sorted order of the values, with no positive class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlprod.errors import DataError, SpecError
from mlprod.features import MISSING, as_category, category_string

_POSITIVE_WORDS = ("1", "true", "yes", "y", "t", "positive", "churned")


def _json_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _keys(values: pd.Series) -> np.ndarray:
    """Each row's lower-cased category label, computed once per distinct value."""
    codes, labels = pd.factorize(as_category(values))  # labels are strings: no missing code
    return np.array([label.lower() for label in labels], dtype=object)[codes]


def encode_target(values: pd.Series, positive: object) -> tuple[np.ndarray, list[Any], np.ndarray]:
    """(y, classes, mask of rows that have a label).

    Binary: y is 0/1 and classes is [negative value, positive value]. Without `positive`,
    booleans and 0/1 pick themselves; other two-valued targets need ``data.positive`` in
    the spec. Three or more values: y is each row's position in `classes` (all values,
    sorted), and `positive` must not be given (there is no single positive class).
    """
    keys = _keys(values)
    labelled = keys != MISSING.lower()
    distinct = sorted(set(keys[labelled].tolist()))
    if len(distinct) > 2:
        return _multiclass(values, keys, labelled, distinct, positive)
    if len(distinct) != 2:
        raise DataError(
            f"target column {values.name!r} needs at least two values to train a "
            f"classifier; found {len(distinct)}: {distinct[:10]}"
        )
    if positive is not None:
        wanted = category_string(positive).lower()
        if wanted not in distinct:
            raise SpecError(
                f"data.positive is {positive!r}, but target column {values.name!r} holds "
                f"{distinct}; set data.positive to one of them"
            )
    else:
        guesses = [word for word in _POSITIVE_WORDS if word in distinct]
        if not guesses:
            raise SpecError(
                f"cannot tell which value of target {values.name!r} is positive among "
                f"{distinct}; set data.positive in mlprod.yaml"
            )
        wanted = guesses[0]
    y = (keys == wanted).astype(int)
    originals = values.to_numpy()
    pos_value = _json_value(originals[labelled & (keys == wanted)][0])
    neg_value = _json_value(originals[labelled & (keys != wanted)][0])
    return y[labelled], [neg_value, pos_value], labelled


def _multiclass(
    values: pd.Series, keys: np.ndarray, labelled: np.ndarray, distinct: list[str], positive: object
) -> tuple[np.ndarray, list[Any], np.ndarray]:
    """Codes 0..k-1 in the sorted order of the values' keys, and the original values."""
    if positive is not None:
        raise SpecError(
            f"data.positive is {positive!r}, but target column {values.name!r} has "
            f"{len(distinct)} classes ({', '.join(distinct[:10])}): a multiclass target has "
            "no positive class; remove data.positive from mlprod.yaml"
        )
    originals = values.to_numpy()
    classes = [_json_value(originals[labelled & (keys == key)][0]) for key in distinct]
    codes = {key: i for i, key in enumerate(distinct)}
    y = np.array([codes[key] for key in keys[labelled].tolist()], dtype=int)
    return y, classes, labelled
