"""Turning the target column into 0/1 labels while remembering the original values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlprod.errors import DataError, SpecError
from mlprod.features import MISSING, category_string

_POSITIVE_WORDS = ("1", "true", "yes", "y", "t", "positive", "churned")


def _json_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def encode_target(values: pd.Series, positive: object) -> tuple[np.ndarray, list[Any], np.ndarray]:
    """(y as 0/1, [negative value, positive value], mask of rows that have a label).

    Without `positive`, booleans and 0/1 pick themselves; other two-valued targets need
    ``data.positive`` in the spec.
    """
    keys = np.array([category_string(v).lower() for v in values.tolist()], dtype=object)
    labelled = keys != MISSING.lower()
    distinct = sorted(set(keys[labelled].tolist()))
    if len(distinct) != 2:
        raise DataError(
            f"target column {values.name!r} must have exactly two values to train a binary "
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
