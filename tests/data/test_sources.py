"""Reading CSV, Parquet and SQL sources, and the errors a user sees when one is wrong."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine

from mlprod.data import load_frame, make_churn_table, parse_times, require_columns, safe_url
from mlprod.errors import DataError
from mlprod.spec import SqlSource


@pytest.fixture
def frame(rng: np.random.Generator) -> pd.DataFrame:
    n = 200
    amount = rng.normal(50, 10, n)
    amount[::17] = np.nan
    return pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "amount": amount,
            "plan": rng.choice(["basic", "premium", "family"], n),
            "active": rng.random(n) < 0.5,
        }
    )


@pytest.mark.parametrize("name", ["rows.csv", "rows.CSV", "rows.csv.gz"])
def test_csv_round_trip(tmp_path: Path, frame: pd.DataFrame, name: str) -> None:
    path = tmp_path / name
    frame.to_csv(path, index=False, compression="gzip" if name.endswith(".gz") else None)
    pd.testing.assert_frame_equal(load_frame(path), frame)
    pd.testing.assert_frame_equal(load_frame(str(path)), frame)


@pytest.mark.parametrize("name", ["rows.parquet", "rows.pq"])
def test_parquet_round_trip_keeps_dtypes(tmp_path: Path, name: str) -> None:
    table = make_churn_table(300, seed=3)
    table.to_parquet(tmp_path / name, index=False)
    loaded = load_frame(tmp_path / name)
    pd.testing.assert_frame_equal(loaded, table)
    assert str(loaded["event_time"].dtype) == "datetime64[us]"


def test_missing_file_names_the_path_and_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "customers.csv"
    with pytest.raises(DataError) as info:
        load_frame(path)
    message = str(info.value)
    assert str(path) in message
    assert "relative to the folder that holds mlprod.yaml" in message


def test_unknown_extension_lists_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "customers.xlsx"
    path.write_bytes(b"not really excel")
    with pytest.raises(DataError) as info:
        load_frame(path)
    message = str(info.value)
    assert "customers.xlsx" in message
    for suffix in (".csv", ".csv.gz", ".parquet", ".pq"):
        assert suffix in message


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("broken.parquet", b"PAR1" + b"\x00garbage" * 20),
        ("broken.csv.gz", gzip.compress(b"a,b\n1,2\n" * 500, mtime=0)[:40]),  # one id everywhere
        ("binary.csv", b"\xff\xfe\x00\x81" * 100),
        ("empty.csv", b""),
    ],
)
def test_unreadable_file_is_a_data_error_naming_it(
    tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=name.replace(".", r"\.")):
        load_frame(path)


def test_header_only_csv_says_zero_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("a,b,churned\n")
    with pytest.raises(DataError, match="0 rows") as info:
        load_frame(path)
    assert "empty.csv" in str(info.value)
    assert "'churned'" in str(info.value)


@pytest.fixture
def sqlite_source(tmp_path: Path, frame: pd.DataFrame) -> str:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = create_engine(url)
    frame.drop(columns="active").to_sql("customers", engine, index=False)
    engine.dispose()
    return url


def test_sqlite_query_returns_the_table(sqlite_source: str, frame: pd.DataFrame) -> None:
    loaded = load_frame(SqlSource(url=sqlite_source, query="SELECT * FROM customers"))
    pd.testing.assert_frame_equal(loaded, frame.drop(columns="active"))


def test_sqlite_query_with_filter(sqlite_source: str, frame: pd.DataFrame) -> None:
    query = "SELECT id, plan FROM customers WHERE plan = 'premium' ORDER BY id"
    loaded = load_frame(SqlSource(url=sqlite_source, query=query))
    expected = frame.loc[frame["plan"] == "premium", ["id", "plan"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(loaded, expected)


def test_sql_error_names_the_database_and_its_message(sqlite_source: str) -> None:
    with pytest.raises(DataError) as info:
        load_frame(SqlSource(url=sqlite_source, query="SELECT * FROM no_such_table"))
    message = str(info.value)
    assert sqlite_source in message
    assert "no such table: no_such_table" in message


def test_sql_empty_result_is_an_error(sqlite_source: str) -> None:
    with pytest.raises(DataError, match="0 rows"):
        load_frame(SqlSource(url=sqlite_source, query="SELECT * FROM customers WHERE id < 0"))


@pytest.mark.parametrize(
    "url",
    ["not a url", "nosuchdialect://user:hunter2@db.example/x", "mysql+nodriver://u:hunter2@h/x"],
)
def test_bad_url_is_a_data_error_without_password(url: str) -> None:
    with pytest.raises(DataError) as info:
        load_frame(SqlSource(url=url, query="SELECT 1"))
    assert "hunter2" not in str(info.value)
    assert "database URL" in str(info.value)


def test_connection_failure_hides_the_password() -> None:
    url = "postgresql+psycopg://mlprod:hunter2@127.0.0.1:1/nothing"
    with pytest.raises(DataError) as info:
        load_frame(SqlSource(url=url, query="SELECT 1"))
    message = str(info.value)
    assert "hunter2" not in message
    assert "mlprod:***@127.0.0.1:1/nothing" in message


def test_safe_url_hides_password_even_when_unparseable() -> None:
    assert safe_url("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert "secret" not in safe_url("bad url://u:secret@h")
    assert safe_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.postgres
def test_postgres_query_returns_the_table(postgres_url: str, frame: pd.DataFrame) -> None:
    engine = create_engine(postgres_url)
    frame.to_sql("customers", engine, index=False)
    engine.dispose()
    loaded = load_frame(SqlSource(url=postgres_url, query="SELECT * FROM customers ORDER BY id"))
    pd.testing.assert_frame_equal(loaded, frame)


@pytest.mark.postgres
def test_postgres_error_hides_password(postgres_url: str) -> None:
    # The test server trusts local users, so any password gets through to the query.
    url = postgres_url.replace("://postgres@", "://postgres:hunter2@")
    assert "hunter2" in url
    with pytest.raises(DataError) as info:
        load_frame(SqlSource(url=url, query="SELECT * FROM missing_table"))
    message = str(info.value)
    assert "hunter2" not in message
    assert "postgres:***@" in message
    assert 'relation "missing_table" does not exist' in message


def test_require_columns_lists_missing_and_available() -> None:
    df = pd.DataFrame({"tenure": [1], "plan": ["a"], "churn": [True]})
    with pytest.raises(DataError) as info:
        require_columns(df, ["churned", "plan", "region"], where="data.target in mlprod.yaml")
    message = str(info.value)
    assert "['churned', 'region']" in message
    assert "'tenure', 'plan', 'churn'" in message
    assert "data.target in mlprod.yaml" in message


def test_require_columns_passes_and_truncates_long_lists() -> None:
    df = pd.DataFrame({f"c{i}": [i] for i in range(45)})
    require_columns(df, ["c0", "c44"], where="features")
    with pytest.raises(DataError) as info:
        require_columns(df, ["x"], where="features")
    assert "'c29'" in str(info.value)
    assert "'c30'" not in str(info.value)
    assert "15 more" in str(info.value)


def test_parse_times_reads_iso_and_mixed_strings() -> None:
    parsed = parse_times(pd.Series(["2024-01-01 10:00", "2024-02-01"], name="t"))
    assert parsed.tolist() == [pd.Timestamp("2024-01-01 10:00"), pd.Timestamp("2024-02-01")]


@pytest.mark.parametrize("values", [["soon", "later"], [1.0, 2.0]])
def test_parse_times_rejects_non_dates(values: list[object]) -> None:
    with pytest.raises(DataError, match="'signup'"):
        parse_times(pd.Series(values), "signup")
