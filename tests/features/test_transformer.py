"""The feature transformer: one representation for CSV rows and JSON records alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlprod.errors import SchemaError
from mlprod.features import FeatureTransformer, infer_kind, infer_kinds

KINDS = {"amount": "numeric", "plan": "categorical", "partner": "boolean", "signup": "datetime"}


@pytest.fixture
def frame(rng: np.random.Generator) -> pd.DataFrame:
    n = 400
    return pd.DataFrame(
        {
            "amount": np.where(rng.random(n) < 0.1, np.nan, rng.normal(50, 10, n)),
            "plan": rng.choice(["basic", "premium", None], n, p=[0.6, 0.35, 0.05]),
            "partner": rng.choice([True, False], n),
            "signup": pd.to_datetime("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 400, n), unit="D"),
        }
    )


def test_json_records_transform_like_the_training_frame(frame: pd.DataFrame) -> None:
    transformer = FeatureTransformer(kinds=KINDS).fit(frame)
    as_json = pd.DataFrame(
        {
            "amount": [str(v) if i % 2 else v for i, v in enumerate(frame["amount"].head(50))],
            "plan": frame["plan"].head(50).tolist(),
            "partner": ["yes" if v else "no" for v in frame["partner"].head(50)],
            "signup": [ts.isoformat() for ts in frame["signup"].head(50)],
        }
    )
    np.testing.assert_array_equal(
        transformer.transform(as_json), transformer.transform(frame.head(50))
    )


def test_unseen_category_and_missing_values_are_scored(frame: pd.DataFrame) -> None:
    transformer = FeatureTransformer(kinds=KINDS).fit(frame)
    odd = pd.DataFrame(
        {"amount": [None], "plan": ["never-seen"], "partner": [None], "signup": ["not a date"]}
    )
    row = transformer.transform(odd)
    assert row.shape == (1, transformer.n_features_out_)
    assert np.isfinite(row).all()
    names = transformer.feature_names_
    amount = row[0, names.index("num__amount")]
    assert amount == pytest.approx(frame["amount"].median())
    assert row[0, names.index("num__missingindicator_amount")] == 1.0
    plan_columns = [i for i, n in enumerate(names) if n.startswith("cat__plan")]
    assert row[0, plan_columns].sum() == 0.0  # unseen: no known category lights up


def test_datetime_parts_and_integral_categories() -> None:
    df = pd.DataFrame(
        {"when": ["2024-03-05 14:00", "2023-12-31 01:00"] * 10, "code": [5.0, 7.0] * 10}
    )
    transformer = FeatureTransformer(kinds={"when": "datetime", "code": "categorical"}).fit(df)
    names = transformer.feature_names_
    out = transformer.transform(pd.DataFrame({"when": ["2024-03-05T14:00:00Z"], "code": [5]}))
    assert out[0, names.index("num__when.year")] == 2024
    assert out[0, names.index("num__when.month")] == 3
    assert out[0, names.index("num__when.hour")] == 14
    assert out[0, names.index("cat__code_5")] == 1.0  # 5 and 5.0 are one category


def test_missing_column_names_it(frame: pd.DataFrame) -> None:
    transformer = FeatureTransformer(kinds=KINDS).fit(frame)
    with pytest.raises(SchemaError, match="'plan'"):
        transformer.transform(frame.drop(columns=["plan"]))


def test_source_column_maps_outputs_back(frame: pd.DataFrame) -> None:
    transformer = FeatureTransformer(kinds=KINDS).fit(frame)
    sources = {transformer.source_column(n) for n in transformer.feature_names_}
    assert sources == set(KINDS)


def test_kind_inference() -> None:
    df = pd.DataFrame(
        {
            "n": [1.5, 2.0, None] * 30,
            "flag": ["yes", "no", "yes"] * 30,
            "b01": [0, 1, 1] * 30,
            "day": ["2024-01-01", "2024-02-01", "2024-03-01"] * 30,
            "cat": ["a", "b", "c"] * 30,
            "id": [f"C{i:05d}" for i in range(90)],
        }
    )
    assert infer_kinds(df, set()) == {
        "n": "numeric",
        "flag": "boolean",
        "b01": "boolean",
        "day": "datetime",
        "cat": "categorical",
    }
    assert infer_kind(df["id"]) is None


@pytest.mark.parametrize(
    "values",
    [
        pd.Series([1.0, 2.5, np.nan, 3.0, 1.0]),
        pd.Series(["a", None, "b", "a"], dtype="str"),
        pd.Series([1, None, 0, 1], dtype="Int64"),
        pd.Series([True, False, None], dtype="boolean"),
        pd.Series(["yes", "no", None, "maybe"]).astype("category"),
        pd.Series(["yes", "N", "", None], dtype="string"),
        pd.Series(np.arange(4)),
    ],
)
def test_typed_columns_convert_once_per_value_with_the_same_labels(values: pd.Series) -> None:
    """Converting each distinct value once gives what converting every row gives."""
    from mlprod.records._coerce import as_boolean, as_category, boolean_value, category_string

    every_row = [category_string(value) for value in values.tolist()]
    assert as_category(values).tolist() == every_row
    booleans = np.array([boolean_value(value) for value in values.tolist()], dtype=float)
    assert np.array_equal(as_boolean(values), booleans, equal_nan=True)


NAN = float("nan")


@pytest.mark.parametrize(
    ("value", "label", "boolean"),
    [
        ("Yes", "Yes", 1.0),
        (" no ", " no ", 0.0),
        ("TRUE", "TRUE", 1.0),
        ("maybe", "maybe", NAN),
        (1.0, "1", 1.0),
        (0, "0", 0.0),
        (np.float64(2.0), "2", NAN),
        (2.5, "2.5", NAN),
        (True, "true", 1.0),
        (np.bool_(False), "false", 0.0),
        (None, "__missing__", NAN),
        (NAN, "__missing__", NAN),
        (pd.NA, "__missing__", NAN),
    ],
)
def test_one_raw_value_has_one_label_and_one_boolean(
    value: object, label: str, boolean: float
) -> None:
    from mlprod.records import boolean_value, category_string

    assert category_string(value) == label
    assert np.array_equal([boolean_value(value)], [boolean], equal_nan=True)


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        (None, None),
        (NAN, None),
        (pd.NaT, None),
        (np.float64(NAN), None),
        (pd.Timestamp("2026-01-02 03:04:05"), "2026-01-02T03:04:05"),
        (np.int64(3), 3),
        (np.bool_(True), True),
        ("x", "x"),
    ],
)
def test_one_cell_becomes_a_plain_json_value(value: object, plain: object) -> None:
    from mlprod.records import json_safe

    assert json_safe(value) == plain


def test_fit_transform_is_fit_then_transform(frame: pd.DataFrame) -> None:
    """Encoding the rows while fitting gives the same matrix and the same fitted state."""
    once = FeatureTransformer(kinds=KINDS)
    matrix = once.fit_transform(frame)
    twice = FeatureTransformer(kinds=KINDS).fit(frame)
    np.testing.assert_array_equal(matrix, twice.transform(frame))
    assert matrix.dtype == np.float64 and matrix.shape == (400, twice.n_features_out_)
    assert once.feature_names_ == twice.feature_names_
    other = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    other.loc[:5, "plan"] = "never-seen"
    np.testing.assert_array_equal(once.transform(other), twice.transform(other))
