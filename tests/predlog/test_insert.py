"""The prediction log's table on SQLite and PostgreSQL: idempotent inserts, reads, counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from mlprod._time import as_utc
from mlprod.errors import DataError, NotFoundError
from mlprod.predlog import (
    count_predictions,
    entry_rows,
    entry_size,
    insert_batch_predictions,
    insert_entries,
    insert_predictions,
    line_rows,
    prediction_entry,
    read_predictions,
)
from mlprod.predlog._insert import _clean, _entry_tuples
from mlprod.registry import create_run
from mlprod.store import Store
from mlprod.store import schema as t

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def prediction(i: int, *, model: str = "churn", minutes: int = 0, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": f"{i:032x}",
        "model": model,
        "version": 1 + i % 2,
        "at": T0 + timedelta(minutes=minutes),
        "record": {"plan": "pro" if i % 2 else "basic", "tenure_months": i},
        "score": i / 10,
        "label": bool(i % 2),
        "latency_ms": 2.5,
        "entity": f"c{i}",
    }
    row.update(extra)
    return row


def test_insert_ignores_ids_already_stored(store: Store) -> None:
    batch = [prediction(i) for i in range(5)]
    assert insert_predictions(store, batch) == 5
    assert insert_predictions(store, batch) == 0  # a replayed batch stores nothing twice
    assert insert_predictions(store, [*batch, prediction(5), prediction(5)]) == 1
    assert count_predictions(store) == 6
    assert count_predictions(store, "churn") == 6
    assert count_predictions(store, "other") == 0


def test_a_replay_keeps_the_first_stored_values(store: Store) -> None:
    insert_predictions(store, [prediction(1, score=0.25)])
    insert_predictions(store, [prediction(1, score=0.99)])
    assert read_predictions(store, "churn")["score"].tolist() == [0.25]


def test_read_returns_columns_and_flattened_inputs(store: Store) -> None:
    insert_predictions(store, [prediction(i, minutes=i) for i in range(3)])
    insert_predictions(store, [prediction(9, model="upsell")])
    frame = read_predictions(store, "churn")

    assert frame["id"].tolist() == [f"{i:032x}" for i in range(3)]
    assert frame["at"].tolist() == [pd.Timestamp(T0 + timedelta(minutes=i)) for i in range(3)]
    assert str(frame["at"].dt.tz) == "UTC"
    assert frame["version"].tolist() == [1, 2, 1]
    assert frame["score"].tolist() == [0.0, 0.1, 0.2]
    assert frame["label"].tolist() == [False, True, False]
    assert frame["entity"].tolist() == ["c0", "c1", "c2"]
    assert frame["record"].tolist()[1] == {"plan": "pro", "tenure_months": 1}
    assert frame["input.plan"].tolist() == ["basic", "pro", "basic"]
    assert frame["input.tenure_months"].tolist() == [0, 1, 2]
    assert frame["shadow_of"].isna().all()


def test_read_filters_by_time_and_limit_keeps_the_newest(store: Store) -> None:
    insert_predictions(store, [prediction(i, minutes=10 * i) for i in range(6)])
    since = read_predictions(store, "churn", since=T0 + timedelta(minutes=20))
    assert since["id"].tolist() == [f"{i:032x}" for i in (2, 3, 4, 5)]
    window = read_predictions(
        store, "churn", since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=30)
    )
    assert window["id"].tolist() == [f"{i:032x}" for i in (1, 2)]
    newest = read_predictions(store, "churn", limit=2)
    assert newest["id"].tolist() == [f"{i:032x}" for i in (4, 5)]  # in time order
    with pytest.raises(ValueError, match="naive"):
        read_predictions(store, "churn", since=datetime(2026, 5, 1))


def test_iso_strings_and_shadows_are_stored(store: Store) -> None:
    shadow = prediction(2, at="2026-05-01T12:00:00", shadow_of=f"{1:032x}", score=None)
    insert_predictions(store, [prediction(1, at="2026-05-01T10:00:00+02:00"), shadow])
    frame = read_predictions(store, "churn")
    assert frame["at"].tolist() == [
        pd.Timestamp("2026-05-01T08:00:00Z"),  # +02:00 converted to UTC
        pd.Timestamp("2026-05-01T12:00:00Z"),  # naive read as UTC
    ]
    assert frame["shadow_of"].isna().tolist() == [True, False]
    assert frame["shadow_of"].iloc[1] == f"{1:032x}"
    assert pd.isna(frame["score"].iloc[1])


def test_unknown_model_is_not_found_but_a_quiet_one_is_empty(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no model 'nosuch'"):
        read_predictions(store, "nosuch")
    create_run(store, "quiet", user="ana", spec={}, git_commit=None, library_versions={})
    frame = read_predictions(store, "quiet")
    assert frame.empty
    assert list(frame.columns[:4]) == ["id", "model", "version", "at"]
    insert_predictions(store, [prediction(1)])
    assert read_predictions(store, "churn", since=T0 + timedelta(days=1)).empty


def test_unstorable_rows_raise_data_error_and_store_nothing(store: Store) -> None:
    incomplete = prediction(2)
    del incomplete["record"]
    with pytest.raises(DataError, match="lacks record"):
        insert_predictions(store, [prediction(1), incomplete])
    with pytest.raises(DataError, match="wrong type"):
        insert_predictions(store, [prediction(3, version="three")])
    assert count_predictions(store) == 0


def request_entry(start: int, count: int, **extra: Any) -> dict[str, Any]:
    """What a server spools for one request: its records and answers in one entry."""
    records = [{"customer": start + i, "plan": "pro", "tenure_months": i} for i in range(count)]
    answers = [
        {"id": f"{start + i:032x}", "version": 2, "score": i / count, "label": i % 2 == 1}
        for i in range(count)
    ]
    return prediction_entry(
        "churn", records, answers, at=T0, latency_ms=3.5, entity="customer", **extra
    )


def test_entries_store_the_rows_they_stand_for(store: Store) -> None:
    answered = request_entry(0, 3)
    answered["predictions"][1].update(score=None, label=None, flags=["non_finite_score"])
    shadow = request_entry(100, 3, shadow_of=[f"{i:032x}" for i in range(3)])
    plain = prediction(50)
    sent = request_entry(200, 2)  # the request's body spliced in as it came
    body = orjson.dumps({"records": sent.pop("records")})
    spliced = prediction_entry(
        "churn", [], sent["predictions"], at=T0, latency_ms=3.5, entity="customer", body=body
    )
    assert "records" not in spliced
    entries = [answered, shadow, plain, spliced]
    assert [entry_size(entry) for entry in entries] == [3, 3, 1, 2]

    lines = [orjson.dumps(entry) for entry in entries]
    assert [line_rows(line) for line in lines] == [3, 3, 1, 2]
    assert line_rows(b"[1, 2]") is None
    assert insert_entries(store, lines) == 9
    assert insert_entries(store, lines) == 0  # a replay stores nothing twice

    frame = read_predictions(store, "churn").set_index("id")
    expected = [row for line in lines for row in entry_rows(orjson.loads(line))]
    assert sorted(frame.index) == sorted(row["id"] for row in expected)
    for row in expected:
        got = frame.loc[row["id"]]
        assert got["version"] == row["version"]
        assert got["at"] == pd.Timestamp(T0)
        assert got["record"] == row["record"]
        assert got["latency_ms"] == row["latency_ms"]
        assert got["entity"] == row["entity"]
        assert (None if pd.isna(got["shadow_of"]) else got["shadow_of"]) == row.get("shadow_of")
        assert (None if pd.isna(got["score"]) else got["score"]) == row["score"]
        assert got["label"] == row["label"]
    assert frame.loc[f"{101:032x}", "entity"] == "101"  # an integer key, as text
    assert frame.loc[f"{101:032x}", "shadow_of"] == f"{1:032x}"
    assert frame.loc[f"{1:032x}", "label"] is None
    assert frame.loc[f"{201:032x}", "record"] == {
        "customer": 201,
        "plan": "pro",
        "tenure_months": 1,
    }
    assert frame.loc[f"{201:032x}", "entity"] == "201"


def test_sqlite_expands_entries_into_the_rows_the_long_way_gives() -> None:
    shadow = request_entry(100, 3, shadow_of=[f"{i:032x}" for i in range(3)])
    odd = request_entry(300, 3)
    odd["predictions"][0].update(score=None, label=None)
    odd["records"][1] = {"plan": "basic"}  # no entity key: entity stays empty
    odd["predictions"][2]["label"] = "yes"
    sent = request_entry(200, 2)
    body = orjson.dumps({"records": sent.pop("records")})
    spliced = prediction_entry("churn", [], sent["predictions"], at=T0, latency_ms=2, body=body)
    for entry in (request_entry(0, 4), shadow, odd, spliced):
        parsed = orjson.loads(orjson.dumps(entry))  # as the flusher reads it
        assert _entry_tuples(parsed) == [_clean(row) for row in entry_rows(parsed)]
    broken = orjson.loads(orjson.dumps(request_entry(10, 2)))
    broken["predictions"][1]["version"] = "two"
    with pytest.raises(DataError, match="wrong type"):
        _entry_tuples(broken)
    del broken["predictions"][1]["id"]
    with pytest.raises(DataError, match="lacks id"):
        _entry_tuples(broken)


def test_a_body_on_several_lines_is_not_spliced_into_the_spool() -> None:
    records = [{"plan": "pro"}]
    answers = [{"id": "a" * 32, "version": 1, "score": 0.5, "label": True}]
    pretty = b'{\n  "records": [{"plan": "pro"}]\n}'
    entry = prediction_entry("churn", records, answers, at=T0, latency_ms=1.0, body=pretty)
    assert entry["records"] == records
    assert "body" not in entry
    assert b"\n" not in orjson.dumps(entry)


def test_an_entry_with_an_unstorable_row_raises_data_error(store: Store) -> None:
    entry = request_entry(0, 3)
    entry["predictions"][2]["version"] = "three"
    with pytest.raises(DataError):
        insert_entries(store, [orjson.dumps(entry)])
    assert count_predictions(store) == 0
    broken = request_entry(10, 3)
    broken["records"].pop()
    with pytest.raises(DataError):
        insert_entries(store, [orjson.dumps(broken)])
    with pytest.raises(DataError, match="not JSON"):
        insert_entries(store, [b"{not json"])
    with pytest.raises(DataError, match="equal length"):
        entry_rows(broken)
    assert count_predictions(store) == 0


@pytest.mark.parametrize(
    "classes", [["bronze", "gold", "silver"], [3, 7, 11], ["low", "", "high"]], ids=str
)
def test_batch_predictions_keep_a_multiclass_label_as_json(
    store: Store, classes: list[Any]
) -> None:
    """Executemany on SQLite, COPY on PostgreSQL: each class comes back as the value it was;
    a row without an answer has no score and no label; binary rows keep no label."""
    b = t.batch_predictions
    labels = pa.array([classes[0], classes[2], None, classes[1], classes[2]])
    scores = np.array([0.5, 0.9, np.nan, 0.4, 0.61])
    written = insert_batch_predictions(
        store, job="a" * 16, seqs=np.arange(5), scores=scores, entities=None, labels=labels
    )
    insert_batch_predictions(
        store, job="b" * 16, seqs=np.arange(2), scores=np.array([0.2, 0.8]), entities=None
    )
    query = sa.select(b.c.job, b.c.score, b.c.label).order_by(b.c.job, b.c.seq)
    rows = store.read(lambda conn: conn.execute(query).all())
    assert written == 5
    assert [row.label for row in rows] == [*labels.to_pylist(), None, None]
    assert [row.score for row in rows[:5]] == [0.5, 0.9, None, 0.4, 0.61]
    with pytest.raises(DataError, match="as many scores, entities and labels as rows"):
        insert_batch_predictions(
            store, job="c" * 16, seqs=np.arange(3), scores=scores[:3], entities=None,
            labels=labels,
        )  # fmt: skip


def test_batch_predictions_store_every_value_exactly(store: Store) -> None:
    """Scores come back bit for bit (tiny, near 1, many digits), entities as written
    (quotes, backslashes, non-ASCII, numbers as text), seqs up to 2^62; a score that is
    not finite is stored as no score."""
    b = t.batch_predictions
    rng = np.random.default_rng(7)
    n = 5_000
    scores = np.concatenate(
        [rng.random(n - 6) ** 9, [1 - 1e-16, 5e-324, np.nan, np.inf, -np.inf, 0.1]]
    )
    entities = [f"c{i}" for i in range(n - 5)] + ['say "hi"', "back\\slash", "café ☕", "12", None]
    seqs = np.arange(n, dtype=np.int64) * 7 + 2**62
    written = insert_batch_predictions(
        store, job="d" * 16, seqs=seqs, scores=scores, entities=pa.array(entities)
    )
    query = sa.select(b.c.seq, b.c.entity, b.c.score).where(b.c.job == "d" * 16)
    rows = store.read(lambda conn: conn.execute(query.order_by(b.c.seq)).all())
    assert written == n
    assert [row.seq for row in rows] == seqs.tolist()
    assert [row.entity for row in rows] == entities
    expected = [float(s) if np.isfinite(s) else None for s in scores]
    assert [row.score for row in rows] == expected


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2026-05-01T10:00:00.123456+00:00", "2026-05-01T10:00:00.123456Z"),  # the log's own
        ("2026-05-01T10:00:00+00:00", "2026-05-01T10:00:00Z"),  # no fraction: JSON drops it
        ("0999-05-01T10:00:00.000001+00:00", "0999-05-01T10:00:00.000001Z"),
        ("2026-05-01T10:00:00.123456+02:00", "2026-05-01T08:00:00.123456Z"),  # converted
        ("2026-05-01T10:00:00.5+00:00", "2026-05-01T10:00:00.5Z"),  # another spelling
        ("2026-05-01T10:00:00", "2026-05-01T10:00:00Z"),  # naive is UTC
    ],
)
def test_every_spelling_of_a_time_is_stored_as_that_instant(
    store: Store, sent: str, stored: str
) -> None:
    entry = request_entry(0, 2)
    entry["at"] = sent
    assert insert_entries(store, [orjson.dumps(entry)]) == 2
    row = prediction(7, at=sent)
    assert insert_predictions(store, [row]) == 1
    query = sa.select(t.predictions.c.at).order_by(t.predictions.c.id)
    times = store.read(lambda conn: conn.execute(query).scalars().all())
    expected = pd.Timestamp(stored).to_pydatetime()
    assert [as_utc(at) for at in times] == [expected] * 3


def test_a_time_that_only_looks_like_one_is_refused(store: Store) -> None:
    entry = request_entry(0, 1)
    entry["at"] = "2026-13-01T10:00:00.000000+00:00"  # month 13
    with pytest.raises(DataError, match=r"wrong type|out of range"):
        insert_entries(store, [orjson.dumps(entry)])
    assert count_predictions(store) == 0
