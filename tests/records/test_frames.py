"""One-row DataFrames take their own route through `FrameEncoder`: each column's single
value converted on its own. It must give what the column conversions give, bit for bit,
for every dtype a caller may hold, and leave everything else to them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bundle_kit import linear_model
from mlprod.bundle import Model
from mlprod.records._coerce import category_string
from mlprod.records._fastpath import check_fast_path
from mlprod.records._frames import (
    _FAST,
    _ONE,
    _REFERENCE,
    FrameEncoder,
    _column,
    _columns,
    _first,
    _python_values,
)

NAN, INF = float("nan"), float("inf")


def _by_column(kind: str, values: Any) -> np.ndarray:
    """The first row as the column conversions give it (what one row got before)."""
    found = _FAST[kind](values)
    return _REFERENCE[kind](pd.Series(values)) if found is None else found


def _bits(value: Any) -> bytes:
    return np.asarray(value, dtype=np.float64).tobytes()  # -0.0 and NaN compared exactly


NUMBERS: list[Any] = [
    np.array([2.5]), np.array([-0.0]), np.array([NAN]), np.array([INF]),
    np.array([np.float32(0.1)]), np.array([np.float16(3.3)]), np.array([-7], dtype=np.int8),
    np.array([2**62 + 1], dtype=np.int64), np.array([2**64 - 1], dtype=np.uint64),
    np.array([True]),
    *(np.array([v], dtype=object) for v in (1.5, -0.0, NAN, -INF, None, 3, -(2**53), 2**53)),
    pd.array([pd.NA], dtype="Int64"), pd.array([-(2**62) - 3], dtype="Int64"),
    pd.array([2**64 - 1], dtype="UInt64"), pd.array([pd.NA], dtype="Float64"),
    pd.array([-0.0], dtype="Float64"), pd.array([0.1], dtype="Float32"),
]  # fmt: skip
# values the one-row readers leave to the column conversions (pandas parses or rounds)
NUMBERS_LEFT: list[Any] = [
    np.array([v], dtype=object) for v in ("5", " 2.5 ", True, np.float64(2.5), 2**53 + 1, 10**30)
] + [pd.array([pd.NA, 1.0], dtype="double[pyarrow]")[:1], np.array([1], dtype="m8[s]")]
BOOLEANS: list[Any] = [
    np.array([True]), np.array([False]),
    *(np.array([v], dtype=object) for v in (True, False, "yes", " No ", "f", 1, 0, 1.0, 2, None,
                                              NAN, pd.NA, "maybe", np.True_)),
    pd.array([True], dtype="boolean"), pd.array([pd.NA], dtype="boolean"),
]  # fmt: skip
STAMPS = pd.to_datetime(
    ["1969-12-31T23:59:59.999999999", "1900-03-01T05:30:00", "2024-02-29T23:00:00.5", "1970-01-01"],
    format="ISO8601",
)
DATETIMES: list[Any] = [
    *(np.array([s.to_datetime64()]).astype(f"M8[{unit}]") for s in STAMPS for unit in
      ("s", "ms", "us", "ns")),
    np.array(["NaT"], dtype="M8[ns]"), np.array(["9999-12-31T23:59:59"], dtype="M8[s]"),
    *(pd.array(pd.DatetimeIndex([s]).tz_localize("UTC").tz_convert(zone)) for s in STAMPS
      for zone in ("UTC", "Asia/Kolkata", "America/St_Johns")),
    pd.array(pd.DatetimeIndex([pd.NaT], tz="UTC")), pd.array(STAMPS[:1]),
    *(np.array([v], dtype=object) for v in ("2024-05-01T12:00:00+05:30", "2024-05-01", None, NAN)),
    pd.array(["2023-12-31T23:30:00-02:00"], dtype="str"), pd.array([None], dtype="str"),
    pd.array(["2024-02-29 06:15"], dtype="string[python]"),
]  # fmt: skip
DATETIMES_LEFT: list[Any] = [
    np.array(["2024-05-01"], dtype="M8[D]"),  # a unit left to numpy
    np.array(["10000-01-01T00"], dtype="M8[s]"),  # past Python's calendar
    np.array(["20240501T101010", "2024-W18-3"], dtype=object)[:1],  # pandas parses these
    np.array([pd.Timestamp("2024-05-01", tz="UTC")], dtype=object),
]
CASES = [("numeric", v) for v in NUMBERS] + [("boolean", v) for v in BOOLEANS]
CASES += [("datetime", v) for v in DATETIMES]
LEFT = [("numeric", v) for v in NUMBERS_LEFT] + [("datetime", v) for v in DATETIMES_LEFT]


@pytest.mark.parametrize(("kind", "values"), CASES, ids=lambda v: repr(v)[:60])
def test_one_value_converts_as_its_column_does(kind: str, values: Any) -> None:
    found = _ONE[kind](values)
    assert found is not None, "a plain case must take the one-row route"
    assert _bits(found) == _bits(_by_column(kind, values)[0]), (found, values)


@pytest.mark.parametrize(("kind", "values"), LEFT, ids=lambda v: repr(v)[:60])
def test_values_it_cannot_convert_exactly_are_left_to_the_column(kind: str, values: Any) -> None:
    assert _ONE[kind](values) is None


@pytest.mark.parametrize(
    "categories",
    [
        ["basic", "pro"],
        pd.Index(["basic", "pro"], dtype="str"),
        ["basic", 5, True],
        [1, 5],
        [2.0, 2.5],
        [True, False],
        pd.to_datetime(["2024-01-01"]),
    ],
)
def test_a_categorical_row_reads_the_label_its_tolist_gives(categories: Any) -> None:
    column = pd.Categorical([categories[-1], None], categories=categories)
    for row in (column[:1], column[1:]):
        got, expected = _first(row), _python_values(row)[0]
        assert category_string(got) == category_string(expected)
        assert type(got) is type(expected)  # not only the label: the same value


def _layouts() -> dict[str, pd.DataFrame]:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"], "c": [3, 4], "d": [0.5, 0.25]})
    grown = frame.copy()
    grown.insert(1, "e", [True, False])  # a block of its own, not consolidated
    grown["f"] = [7.0, 8.0]
    return {
        "mixed": frame,
        "grown": grown,
        "reordered": grown[["f", "d", "b", "a", "e", "c"]],
        "one row": grown.iloc[[1]],
        "one dtype": pd.DataFrame(np.arange(12.0).reshape(2, 6)),
        "objects": grown.astype(object),
    }


@pytest.mark.parametrize("name", list(_layouts()))
def test_columns_are_read_from_the_right_block(name: str) -> None:
    frame = _layouts()[name]
    positions = list(range(frame.shape[1]))[::-1]
    for got, position in zip(_columns(frame, positions), positions, strict=True):
        expected = _column(frame, position)
        assert got.dtype == expected.dtype
        assert list(got) == list(expected) == frame.iloc[:, position].tolist()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """A fitted transformer over every kind, with missing values and indicators."""
    rng = np.random.default_rng(7)
    n = 400
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n) * 100,
            "gap": np.where(rng.random(n) < 0.3, np.nan, rng.integers(0, 50, size=n)),
            "city": rng.choice(["north", "south", "east", "west"], size=n),
            "code": rng.choice(np.array([1.0, 2.0, 3.0, np.nan]), size=n),
            "flag": rng.choice(np.array([True, False, None], dtype=object), size=n),
            "when": [
                None if i % 9 == 0 else f"20{10 + i % 15}-0{1 + i % 9}-1{i % 10}T0{i % 10}:30:00"
                for i in range(n)
            ],
        }
    )
    kinds = {"x": "numeric", "gap": "numeric", "city": "categorical", "code": "categorical",
             "flag": "boolean", "when": "datetime"}  # fmt: skip
    folder = tmp_path_factory.mktemp("frames") / "bundle"
    return linear_model(folder, "frames", frame, kinds, lambda width: np.linspace(0.5, 2.0, width))


@pytest.fixture(scope="module")
def encoder(model: Model) -> FrameEncoder:
    check = check_fast_path(model)
    assert check.fast is not None and check.fast.frames is not None, check.reason
    assert "framed alone" in check.fast.frames_verified
    return check.fast.frames


def _rows(model: Model) -> dict[str, pd.DataFrame]:
    """One-row frames in the spellings a caller may hold, each over several rows."""
    frame = model.test_data()[0].head(12).reset_index(drop=True)
    when = pd.to_datetime(frame["when"], utc=True, format="mixed")
    return {
        "stored": frame,
        "objects": frame.astype(object),
        "nullable and categories": frame.convert_dtypes().astype(
            {"city": "category", "code": "category"}
        ),
        "parsed, zoned": frame.assign(when=when.dt.tz_convert("Asia/Kolkata")),
        "parsed, naive, seconds": frame.assign(
            when=when.dt.tz_localize(None).astype("datetime64[s]")
        ),
        "strings": frame.astype({"city": "str", "when": "str"}),
        "with an extra column": frame.assign(note="ignored"),
        "odd spellings": frame.assign(
            x=["1.5", " 2 ", None, "x", 3, 4.5, True, 2**60, -0.0, np.nan, 1e300, "7"],
            flag=["yes", "No", 1, 0, None, "t", "maybe", np.nan, pd.NA, True, False, " TRUE "],
            when=["20240501T101010", "2024-05-01T12Z", None, "yesterday"] * 3,
            city=[5, 5.0, None, np.nan, True, "north", "", "south", -3, 2.5, pd.NA, "x"],
        ),
    }


def test_every_one_row_frame_is_the_transformers_row(model: Model, encoder: FrameEncoder) -> None:
    taken = 0
    for label, frame in _rows(model).items():
        for i in range(len(frame)):
            row = frame.iloc[[i]]
            got = encoder.encode(row)
            expected = model.transformer.transform(row)
            assert got is not None, (label, i)
            assert got.tobytes() == expected.tobytes(), (label, i)
            taken += 1
    assert taken == 8 * 12


def test_frames_it_declines_go_to_the_full_pipeline(model: Model, encoder: FrameEncoder) -> None:
    row = model.test_data()[0].head(1)
    assert encoder.encode(row) is not None  # the sibling: this row is taken
    assert encoder.encode(row.assign(x=INF)) is None  # the imputer refuses infinity
    assert encoder.encode(row.assign(x=np.array([-INF], dtype=object))) is None
    assert encoder.encode(row.drop(columns=["city"])) is None  # a field missing
    twice = pd.concat([row, row[["x"]]], axis=1)  # a name twice
    assert encoder.encode(twice) is None


def test_the_one_row_route_is_what_one_row_takes(model: Model, encoder: FrameEncoder) -> None:
    """Two rows go through the column conversions: the same values, the same rows."""
    frame = _rows(model)["nullable and categories"]
    both = encoder.encode(frame.iloc[:2])
    assert both is not None
    for i in range(2):
        alone = encoder.encode(frame.iloc[[i]])
        assert alone is not None and alone.tobytes() == both[i : i + 1].tobytes()


def test_model_scores_a_one_row_frame_as_the_full_pipeline(tmp_path: Path, model: Model) -> None:
    model.prepare()
    assert model.path == "fast"
    for frame in _rows(model).values():
        for i in range(0, len(frame), 5):
            row = frame.iloc[[i]]
            assert model.score(row).tobytes() == model.reference_score(row).tobytes()
