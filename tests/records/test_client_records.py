"""`client_records`: a DataFrame's rows as a client would send them, whatever the dtypes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlprod.records import client_records


def _frame() -> pd.DataFrame:
    stamps = pd.to_datetime(["2024-01-01 00:00", None, "2024-05-01 12:30"])
    return pd.DataFrame(
        {
            "float": [1.5, np.nan, -0.0],
            "float32": np.array([0.1, np.nan, 2.0], dtype=np.float32),
            "int": [1, 2, 2**62],
            "uint8": np.array([1, 2, 255], dtype=np.uint8),
            "bool": [True, False, True],
            "Int64": pd.array([1, None, 3], dtype="Int64"),
            "boolean": pd.array([True, None, False], dtype="boolean"),
            "Float64": pd.array([1.5, None, np.nan], dtype="Float64"),
            "str": pd.array(["a", None, ""], dtype="str"),
            "object": ["x", None, np.int64(3)],
            "datetime": stamps,
            "datetime_tz": stamps.tz_localize("Europe/Paris"),
            "category": pd.Categorical(["a", None, "b"]),
        }
    )


def test_every_dtype_becomes_json_values_with_missing_as_null() -> None:
    first, missing, last = client_records(_frame())
    assert first == {
        "float": 1.5, "float32": 0.10000000149011612, "int": 1, "uint8": 1, "bool": True,
        "Int64": 1, "boolean": True, "Float64": 1.5, "str": "a", "object": "x",
        "datetime": "2024-01-01T00:00:00", "datetime_tz": "2024-01-01T00:00:00+01:00",
        "category": "a",
    }  # fmt: skip
    assert missing == {
        "float": None, "float32": None, "int": 2, "uint8": 2, "bool": False, "Int64": None,
        "boolean": None, "Float64": None, "str": None, "object": None, "datetime": None,
        "datetime_tz": None, "category": None,
    }  # fmt: skip
    assert last["int"] == 2**62 and type(last["int"]) is int
    assert last["object"] == 3 and last["uint8"] == 255 and last["str"] == ""
    assert last["datetime"] == "2024-05-01T12:30:00"
    assert str(last["float"]) == "-0.0"  # the sign survives, as JSON writes it


def test_no_columns_give_one_empty_record_per_row() -> None:
    assert client_records(_frame().iloc[:, []]) == [{}, {}, {}]
    assert client_records(_frame().iloc[:0]) == []
