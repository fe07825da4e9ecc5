"""The dataset fingerprint: stable for the same rows, different for any changed value."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlprod.data import DataFingerprint, fingerprint, load_frame, make_churn_table
from mlprod.errors import DataError


@pytest.fixture
def table() -> pd.DataFrame:
    return make_churn_table(2_000, seed=5)


def test_same_file_loaded_twice_gives_the_same_fingerprint(
    tmp_path: Path, table: pd.DataFrame
) -> None:
    path = tmp_path / "customers.parquet"
    table.to_parquet(path, index=False)
    first, second = fingerprint(load_frame(path)), fingerprint(load_frame(path))
    assert first == second
    assert first.sha256 == fingerprint(table).sha256
    assert len(first.sha256) == 64


def test_hash_is_the_same_in_another_process(tmp_path: Path, table: pd.DataFrame) -> None:
    path = tmp_path / "customers.csv"
    table.to_csv(path, index=False)
    code = (
        "import sys; from mlprod.data import fingerprint, load_frame; "
        "print(fingerprint(load_frame(sys.argv[1])).sha256)"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True
    )
    assert other.stdout.strip() == fingerprint(load_frame(path)).sha256


def test_one_changed_value_changes_the_hash(table: pd.DataFrame, rng: np.random.Generator) -> None:
    before = fingerprint(table).sha256
    row = int(rng.integers(len(table)))
    changed = table.copy()
    changed.loc[row, "monthly_charges"] += 0.01
    assert fingerprint(changed).sha256 != before
    renamed = table.rename(columns={"plan": "tier"})
    assert fingerprint(renamed).sha256 != before
    retyped = table.astype({"support_calls": "float64"})
    assert fingerprint(retyped).sha256 != before
    assert fingerprint(table.iloc[:-1]).sha256 != before


def test_hash_ignores_the_index(table: pd.DataFrame) -> None:
    shifted = table.set_axis(np.arange(len(table)) + 1_000)
    assert fingerprint(shifted).sha256 == fingerprint(table).sha256


def test_rows_columns_and_missing_counts(table: pd.DataFrame) -> None:
    fp = fingerprint(table)
    assert fp.rows == 2_000
    assert [c.name for c in fp.columns] == list(table.columns)
    info = {c.name: c for c in fp.columns}
    assert info["tenure_months"].missing == int(table["tenure_months"].isna().sum()) > 0
    assert info["churned"].missing == 0
    assert info["event_time"].dtype == "datetime64[us]"
    assert info["plan"].dtype == "str"
    assert fp.time_column is None
    assert fp.time_min is None


def test_time_range_is_the_min_and_max(table: pd.DataFrame) -> None:
    fp = fingerprint(table, time_column="event_time")
    assert fp.time_column == "event_time"
    assert fp.time_min == table["event_time"].min().to_pydatetime()
    assert fp.time_max == table["event_time"].max().to_pydatetime()


def test_time_range_from_text_dates_ignores_missing() -> None:
    df = pd.DataFrame({"when": ["2024-03-05", None, "2023-12-31 23:00", "2024-01-02"]})
    fp = fingerprint(df, time_column="when")
    assert fp.time_min == datetime(2023, 12, 31, 23)
    assert fp.time_max == datetime(2024, 3, 5)


def test_round_trips_through_json(table: pd.DataFrame) -> None:
    fp = fingerprint(table, time_column="event_time")
    assert DataFingerprint.model_validate_json(fp.model_dump_json()) == fp


def test_missing_time_column_is_a_data_error(table: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="'snapshot'") as info:
        fingerprint(table, time_column="snapshot")
    assert "'event_time'" in str(info.value)


def test_unhashable_cells_still_fingerprint() -> None:
    df = pd.DataFrame({"tags": [["a"], ["b", "c"]], "n": [1, 2]})
    other = pd.DataFrame({"tags": [["a"], ["b"]], "n": [1, 2]})
    assert fingerprint(df).sha256 != fingerprint(other).sha256
    assert fingerprint(df).sha256 == fingerprint(df.copy()).sha256
