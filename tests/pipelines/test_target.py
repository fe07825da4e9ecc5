"""The target's labels, computed once per distinct value, equal the per-row labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlprod.features import category_string
from mlprod.pipelines import encode_target
from mlprod.pipelines._target import _keys

COLUMNS = {
    "bool": pd.Series([True, False, False, True]),
    "nullable bool": pd.Series([True, None, False, True], dtype="boolean"),
    "int": pd.Series([0, 1, 1, 0]),
    "float": pd.Series([1.0, 0.0, np.nan, -0.0, 2.5, 1.0]),
    "string": pd.Series(["Yes", None, "no", "YES"], dtype="string"),
    "category": pd.Series(["A", "b", None, "a"], dtype="category"),
    # An object column: True, 1 and 1.0 are equal keys to pandas, but not the same label.
    "object": pd.Series([True, 1, 1.0, "1", None, "True", np.nan, "YES", 2.0], dtype=object),
}


@pytest.mark.parametrize("name", COLUMNS)
def test_keys_equal_each_rows_own_label(name: str) -> None:
    values = COLUMNS[name]
    expected = [category_string(v).lower() for v in values.tolist()]
    assert _keys(values).tolist() == expected


def test_object_targets_keep_true_and_one_apart() -> None:
    values = pd.Series([True, 1, True, 1.0], dtype=object)
    y, classes, labelled = encode_target(values, positive=None)
    assert y.tolist() == [0, 1, 0, 1] and labelled.all()  # "1" is guessed before "true"
    assert classes == [True, 1] and type(classes[0]) is bool


def test_a_binary_target_with_missing_labels() -> None:
    values = pd.Series(["churned", None, "stayed", "Churned", np.nan], dtype=object)
    y, classes, labelled = encode_target(values, positive="churned")
    assert labelled.tolist() == [True, False, True, True, False]
    assert y.tolist() == [1, 0, 1] and classes == ["stayed", "churned"]
