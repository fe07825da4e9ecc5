"""Outcomes: observed labels are stored once, joined to logged predictions, and counted once.

Proves on SQLite and PostgreSQL that ingestion validates before storing anything and
ignores duplicates; that matching finds the right prediction (by id, or the entity's
latest answered prediction at or before the outcome's time), waits for prediction rows
that are not logged yet, maps labels onto the version's classes, and adds confusion
counts and score histograms, equal to a hand computation at the version's threshold, to
the window of the prediction and of every shadow that scored the same request, exactly
once per outcome.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from mlprod.errors import SchemaError
from mlprod.monitoring import _outcomes
from mlprod.monitoring._live import (
    WindowCounts,
    empty_window_row,
    merge_live_stats,
    merge_rows,
    read_window_stats,
    window_start,
)
from mlprod.monitoring._outcomes import ingest_outcomes, match_outcomes, outcome_counts
from mlprod.monitoring._reference import SCORE_EDGES
from mlprod.predlog import insert_predictions
from mlprod.registry import create_run, register_version
from mlprod.store import schema as t
from mlprod.store._store import Store
from support import wait_until_blocked

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
BUCKET = 60


# --- helpers


def add_version(
    store: Store,
    model: str = "churn",
    *,
    threshold: float = 0.5,
    classes: Sequence[Any] = (False, True),
) -> int:
    """Register the next version of `model`, as training would (a run, then the version)."""
    run = create_run(store, model, user="ana", spec={}, git_commit=None, library_versions={})
    return register_version(
        store,
        model,
        run_id=run,
        bundle_id=uuid.uuid4().hex,
        flavor="sklearn",
        metrics={},
        gates=[],
        gates_passed=True,
        signature={"fields": [], "classes": list(classes)},
        threshold=threshold,
        files={},
    ).version


def pid(i: int) -> str:
    return f"{i:032x}"


def prediction(
    i: int,
    *,
    at: datetime = T0,
    score: float | None = 0.71,
    version: int = 1,
    model: str = "churn",
    entity: str | None = None,
    shadow_of: int | None = None,
) -> dict[str, Any]:
    """A prediction log row as a server writes it (shadows point at the answered id)."""
    return {
        "id": pid(i),
        "model": model,
        "version": version,
        "at": at,
        "record": {"i": i},
        "score": score,
        "label": None if score is None else score >= 0.5,
        "latency_ms": 1.0,
        "entity": entity,
        "shadow_of": None if shadow_of is None else pid(shadow_of),
    }


def log(store: Store, *rows: dict[str, Any]) -> None:
    assert insert_predictions(store, rows) == len(rows)


def stored_outcomes(store: Store) -> list[dict[str, Any]]:
    query = sa.select(t.outcomes).order_by(t.outcomes.c.id)
    return store.read(lambda conn: [dict(r._mapping) for r in conn.execute(query)])


def windows(store: Store, model: str = "churn") -> dict[tuple[int, datetime], dict[str, Any]]:
    """window_stats rows of `model` by (version, window start)."""
    return {(r["version"], r["window_start"]): r for r in read_window_stats(store, model)}


def hist(*scores: float) -> list[int]:
    """The live score bins (`SCORE_EDGES`) that hold `scores`, computed by numpy.

    Random test scores fall on a bin edge with probability zero; there float rounding
    would make either neighbouring bin defensible, and numpy and the store may differ.
    """
    bounds = np.concatenate([[0.0], SCORE_EDGES, [1.0]])
    counts: list[int] = np.histogram(np.asarray(scores, dtype=float), bins=bounds)[0].tolist()
    return counts


def labelled(row: dict[str, Any]) -> dict[str, Any]:
    """The labelled half of a window row."""
    return {k: row[k] for k in ("labelled", "tp", "fp", "fn", "tn", "pos_hist", "neg_hist")}


def expected_labelled(
    joined: Sequence[tuple[float | None, bool]], threshold: float
) -> dict[str, Any]:
    """Confusion counts and score histograms of (score, observed) pairs, by hand."""
    predicted = [s is not None and s >= threshold for s, _ in joined]
    observed = [o for _, o in joined]
    pairs = list(zip(predicted, observed, strict=True))
    return {
        "labelled": len(joined),
        "tp": pairs.count((True, True)),
        "fp": pairs.count((True, False)),
        "fn": pairs.count((False, True)),
        "tn": pairs.count((False, False)),
        "pos_hist": hist(*(s for s, o in joined if o and s is not None)),
        "neg_hist": hist(*(s for s, o in joined if not o and s is not None)),
    }


def live(store: Store, *keys: tuple[str, int, datetime], predictions: int = 1) -> None:
    """Traffic a server counted in these windows, so matching adds to existing rows."""
    merge_live_stats(store, {key: WindowCounts(predictions=predictions) for key in keys})


# --- ingesting


def test_ingest_by_id_and_by_entity_stores_pending_outcomes(store: Store) -> None:
    ingest_outcomes(
        store,
        [
            {"prediction_id": pid(1), "label": True},
            {"entity": "c1", "time": "2026-05-01T10:00:00", "label": False},  # naive: UTC
            {"entity": "c2", "time": "2026-05-01T10:00:00Z", "label": "yes"},
            {"entity": "c3", "time": "2026-05-01T12:30:00+02:00", "label": 0},
            {"entity": 42, "time": T0, "label": {"raw": 1}, "model": "upsell"},
        ],
        model="churn",
    )
    rows = stored_outcomes(store)
    assert [(r["model"], r["prediction_id"], r["entity"], r["event_time"]) for r in rows] == [
        ("churn", pid(1), None, None),
        ("churn", None, "c1", T0),
        ("churn", None, "c2", T0),
        ("churn", None, "c3", T0 + timedelta(minutes=30)),
        ("upsell", None, "42", T0),  # an outcome's own model wins; entities are text
    ]
    assert [r["label"] for r in rows] == [True, False, "yes", 0, {"raw": 1}]
    assert {r["status"] for r in rows} == {"pending"}
    assert all(r["matched_id"] is None and r["version"] is None for r in rows)
    assert all(abs(datetime.now(UTC) - r["received_at"]) < timedelta(minutes=1) for r in rows)
    assert outcome_counts(store) == {"pending": 5, "matched": 0, "invalid": 0, "duplicate": 0}


FIRST = [
    {"prediction_id": pid(1), "label": True},
    {"prediction_id": pid(1), "label": False},  # the same id twice in one call
    {"entity": "c1", "time": "2026-05-01T10:00:00", "label": True},
    {"entity": "c1", "time": "2026-05-01T10:00:00Z", "label": False},  # the same instant
    {"entity": "c1", "time": "2026-05-01T12:00:00+02:00", "label": False},
]
AGAIN = [
    {"prediction_id": pid(1), "label": False},
    {"entity": "c1", "time": T0, "label": False},
    {"entity": "c1", "time": T0, "label": False, "model": "upsell"},  # another model's entity
    {"entity": "c1", "time": T0 + timedelta(microseconds=1), "label": False},
]


def test_duplicates_are_not_stored_twice(store: Store) -> None:
    ingest_outcomes(store, FIRST, model="churn")
    ingest_outcomes(store, AGAIN, model="churn")
    rows = stored_outcomes(store)
    assert [(r["model"], r["prediction_id"], r["entity"], r["event_time"]) for r in rows] == [
        ("churn", pid(1), None, None),
        ("churn", None, "c1", T0),
        ("upsell", None, "c1", T0),
        ("churn", None, "c1", T0 + timedelta(microseconds=1)),
    ]
    assert [r["label"] for r in rows[:2]] == [True, True]  # the first stored value is kept


def test_ingest_counts_new_and_duplicate_outcomes(store: Store) -> None:
    """Counted from RETURNING: PostgreSQL reports rowcount -1 for such inserts."""
    assert ingest_outcomes(store, FIRST, model="churn") == {"received": 2, "duplicates": 3}
    assert ingest_outcomes(store, AGAIN, model="churn") == {"received": 2, "duplicates": 2}
    assert ingest_outcomes(store, []) == {"received": 0, "duplicates": 0}


def good(i: int = 1) -> dict[str, Any]:
    return {"prediction_id": pid(i), "label": True}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"prediction_id": pid(2)}, "label"),
        ({"prediction_id": pid(2), "label": None}, "label"),
        ({"prediction_id": 42, "label": True}, "prediction_id"),
        ({"prediction_id": "", "label": True}, "prediction_id"),
        ({"prediction_id": "f" * 33, "label": True}, "prediction_id"),
        ({"label": True, "model": "churn"}, "prediction_id"),  # neither id nor entity
        ({"entity": "c1", "time": T0, "label": True}, "model"),  # by entity, model unknown
        ({"entity": "c1", "label": True, "model": "churn"}, "time"),
        ({"entity": "c1", "time": "yesterday", "label": True, "model": "churn"}, "time"),
        ({"entity": "c1", "time": 1777629600, "label": True, "model": "churn"}, "time"),
        ("c1,true", "outcome"),
    ],
)
def test_malformed_outcome_raises_schema_error_and_stores_nothing(
    store: Store, bad: Any, field: str
) -> None:
    with pytest.raises(SchemaError) as caught:
        ingest_outcomes(store, [good(1), bad, good(3)])
    assert str(caught.value).startswith(f"outcome 1: {field} must be ")
    assert [(f["record"], f["field"]) for f in caught.value.fields] == [(1, field)]
    assert caught.value.status == 422
    assert stored_outcomes(store) == []


def test_invalid_model_name_in_an_outcome_is_a_schema_error(store: Store) -> None:
    with pytest.raises(SchemaError) as caught:
        ingest_outcomes(store, [good(1), {**good(2), "model": "Churn Model"}])
    assert [(f["record"], f["field"]) for f in caught.value.fields] == [(1, "model")]
    assert stored_outcomes(store) == []


def test_too_many_outcomes_in_one_call_are_refused(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_outcomes, "MAX_OUTCOMES", 3)
    with pytest.raises(SchemaError, match="4 outcomes in one call; send at most 3"):
        ingest_outcomes(store, [good(i) for i in range(4)])
    assert stored_outcomes(store) == []


# --- matching


def test_a_served_id_whose_random_half_is_large_waits_like_any_other(store: Store) -> None:
    """A served id ends in 64 random bits: half exceed a signed 64-bit row number, and
    must not be looked up as a batch row (the driver refuses such an integer)."""
    add_version(store)
    served = "0190f3a2b4c5" + "f" * 20  # the time in ms, then random bits all ones
    ingest_outcomes(store, [{"prediction_id": served, "label": True}])
    assert match_outcomes(store, bucket_seconds=BUCKET) == 0  # its row is not logged yet
    assert outcome_counts(store)["pending"] == 1


def test_an_outcome_waits_for_its_late_prediction_row(store: Store) -> None:
    add_version(store)
    ingest_outcomes(store, [good(1)])
    ingest_outcomes(
        store, [{"entity": "c9", "time": T0 + timedelta(hours=1), "label": False}], model="churn"
    )
    assert match_outcomes(store, bucket_seconds=BUCKET) == 0  # nothing logged yet
    assert outcome_counts(store) == {"pending": 2, "matched": 0, "invalid": 0, "duplicate": 0}
    assert read_window_stats(store, "churn") == []

    # the server's spool delivers the prediction rows later
    log(
        store,
        prediction(1, score=0.8),
        prediction(2, at=T0 + timedelta(minutes=30), score=0.3, entity="c9"),
    )
    assert match_outcomes(store, bucket_seconds=BUCKET) == 2
    rows = stored_outcomes(store)
    assert [(r["status"], r["matched_id"], r["version"], r["model"], r["note"]) for r in rows] == [
        ("matched", pid(1), 1, "churn", None),
        ("matched", pid(2), 1, "churn", None),
    ]
    got = windows(store)
    assert set(got) == {(1, T0), (1, T0 + timedelta(minutes=30))}
    assert labelled(got[(1, T0)]) == expected_labelled([(0.8, True)], 0.5)
    assert labelled(got[(1, T0 + timedelta(minutes=30))]) == expected_labelled([(0.3, False)], 0.5)
    assert got[(1, T0)]["predictions"] == 0  # matching adds labels, never traffic


def test_entity_outcome_matches_the_latest_answered_prediction_at_or_before_it(
    store: Store,
) -> None:
    add_version(store)
    add_version(store)
    log(
        store,
        prediction(1, at=T0 - timedelta(hours=2), entity="c1"),
        prediction(2, at=T0 - timedelta(hours=1), entity="c1"),  # the one
        prediction(3, at=T0 - timedelta(minutes=30), entity="c1", version=2, shadow_of=9),
        prediction(4, at=T0 + timedelta(hours=1), entity="c1"),  # after the outcome
        prediction(5, at=T0 - timedelta(minutes=10), entity="c2"),  # another entity
        prediction(6, at=T0 - timedelta(minutes=5), entity="c1", model="upsell"),
    )
    ingest_outcomes(
        store,
        [
            {"entity": "c1", "time": T0, "label": True},
            {"entity": "c1", "time": T0 + timedelta(hours=1), "label": True},  # at: inclusive
            {"entity": "c1", "time": T0 - timedelta(hours=3), "label": True},  # before any
        ],
        model="churn",
    )
    assert match_outcomes(store, bucket_seconds=BUCKET) == 2
    rows = stored_outcomes(store)
    assert [(r["status"], r["matched_id"]) for r in rows] == [
        ("matched", pid(2)),
        ("matched", pid(4)),
        ("pending", None),
    ]


def test_boolean_labels_map_to_the_positive_and_negative_class(store: Store) -> None:
    add_version(store, threshold=0.5)
    labels: list[tuple[Any, bool]] = [
        (True, True),
        ("true", True),
        ("TRUE", True),
        (1, True),
        ("1", True),
        (1.0, True),
        ("yes", True),
        (False, False),
        ("false", False),
        (0, False),
        ("no", False),
        ("0", False),
    ]
    log(
        store, *(prediction(i, at=T0 + timedelta(minutes=i), score=0.9) for i in range(len(labels)))
    )
    ingest_outcomes(
        store, [{"prediction_id": pid(i), "label": label} for i, (label, _) in enumerate(labels)]
    )
    assert match_outcomes(store, bucket_seconds=BUCKET) == len(labels)
    got = windows(store)
    for i, (label, positive) in enumerate(labels):
        row = got[(1, T0 + timedelta(minutes=i))]
        assert (row["tp"], row["fp"]) == ((1, 0) if positive else (0, 1)), label
    assert outcome_counts(store) == {
        "pending": 0,
        "matched": len(labels),
        "invalid": 0,
        "duplicate": 0,
    }


def test_a_label_that_is_neither_class_is_invalid_and_adds_nothing(store: Store) -> None:
    add_version(store)
    add_version(store, "retain", classes=["stay", "leave"], threshold=0.5)
    live(store, ("churn", 1, T0), ("retain", 1, T0), predictions=4)
    log(
        store,
        *(prediction(i) for i in range(4)),
        *(prediction(10 + i, model="retain") for i in range(3)),
    )
    ingest_outcomes(
        store,
        [
            {"prediction_id": pid(0), "label": "maybe"},
            {"prediction_id": pid(1), "label": 2},
            {"prediction_id": pid(2), "label": {"churned": True}},
            {"prediction_id": pid(3), "label": True},
            {"prediction_id": pid(10), "label": "LEAVE"},  # string classes: case-insensitive
            {"prediction_id": pid(11), "label": "stay"},
            {"prediction_id": pid(12), "label": True},  # booleans only for boolean classes
        ],
    )
    assert match_outcomes(store, bucket_seconds=BUCKET) == 7  # refused ones are settled too
    rows = {r["prediction_id"]: r for r in stored_outcomes(store)}
    for i, label in [(0, "maybe"), (1, 2), (2, {"churned": True})]:
        assert rows[pid(i)]["status"] == "invalid"
        assert rows[pid(i)]["matched_id"] == pid(i)
        assert rows[pid(i)]["note"] == (
            f"label {label!r} is neither class of the model (False or True)"
        )
    assert rows[pid(12)]["status"] == "invalid"
    assert rows[pid(12)]["note"] == "label True is neither class of the model ('stay' or 'leave')"
    assert labelled(windows(store)[(1, T0)]) == expected_labelled([(0.71, True)], 0.5)
    assert labelled(windows(store, "retain")[(1, T0)]) == expected_labelled(
        [(0.71, True), (0.71, False)], 0.5
    )
    assert windows(store)[(1, T0)]["predictions"] == 4
    assert outcome_counts(store, "churn") == {
        "pending": 0,
        "matched": 1,
        "invalid": 3,
        "duplicate": 0,
        "unassigned": 0,
    }
    assert outcome_counts(store, "retain") == {
        "pending": 0,
        "matched": 2,
        "invalid": 1,
        "duplicate": 0,
        "unassigned": 0,
    }


def test_confusion_counts_and_histograms_equal_a_hand_computation(
    store: Store, rng: np.random.Generator
) -> None:
    thresholds = {1: 0.5, 2: 0.35}
    for threshold in thresholds.values():
        add_version(store, threshold=threshold)
    rows = []
    for i in range(150):
        at = T0 + timedelta(minutes=i % 3, seconds=int(rng.integers(60)))
        score = None if i % 37 == 0 else float(rng.uniform(0, 1))
        rows.append(prediction(i, at=at, score=score, version=1 + i % 2, entity=f"c{i}"))
    log(store, *rows)
    live(store, ("churn", 1, T0), ("churn", 2, T0 + timedelta(minutes=2)), predictions=1000)

    observed = {i: bool(rng.uniform() < 0.4) for i in range(150) if i % 5}  # some unlabelled
    outcomes = [
        {"prediction_id": pid(i), "label": label}
        if i % 2
        else {"entity": f"c{i}", "time": rows[i]["at"] + timedelta(days=3), "label": label}
        for i, label in observed.items()
    ]
    ingest_outcomes(store, outcomes, model="churn")
    assert match_outcomes(store, bucket_seconds=BUCKET) == len(observed)

    joined: dict[tuple[int, datetime], list[tuple[float | None, bool]]] = {}
    for i, label in observed.items():
        key = (rows[i]["version"], window_start(rows[i]["at"], BUCKET))
        joined.setdefault(key, []).append((rows[i]["score"], label))
    got = windows(store)
    assert set(got) == set(joined)
    for (version, start), pairs in joined.items():
        assert labelled(got[(version, start)]) == expected_labelled(pairs, thresholds[version])
    assert got[(1, T0)]["predictions"] == 1000  # traffic counted by servers is untouched
    assert sum(r["labelled"] for r in got.values()) == len(observed)


def test_shadows_get_the_same_observed_label_in_their_own_version_window(store: Store) -> None:
    add_version(store, threshold=0.5)
    add_version(store, threshold=0.3)
    add_version(store, threshold=0.9)
    later = T0 + timedelta(minutes=2)
    log(
        store,
        prediction(1, score=0.61),
        prediction(2, score=0.41, version=2, shadow_of=1),
        prediction(3, score=0.95, version=3, shadow_of=1),
        prediction(4, at=later, score=0.21, entity="c7"),
        prediction(5, at=later, score=0.31, version=2, entity="c7", shadow_of=4),
        prediction(6, at=later, score=0.99, version=3, entity="c8", shadow_of=8),  # not ours
    )
    ingest_outcomes(
        store,
        [good(1) | {"label": False}, {"entity": "c7", "time": later, "label": True}],
        model="churn",
    )
    assert match_outcomes(store, bucket_seconds=BUCKET) == 2

    got = windows(store)
    assert set(got) == {(1, T0), (2, T0), (3, T0), (1, later), (2, later)}
    assert labelled(got[(1, T0)]) == expected_labelled([(0.61, False)], 0.5)
    assert labelled(got[(2, T0)]) == expected_labelled([(0.41, False)], 0.3)
    assert labelled(got[(3, T0)]) == expected_labelled([(0.95, False)], 0.9)
    assert labelled(got[(1, later)]) == expected_labelled([(0.21, True)], 0.5)
    assert labelled(got[(2, later)]) == expected_labelled([(0.31, True)], 0.3)
    assert got[(2, later)]["tp"] == 1 and got[(1, later)]["fn"] == 1  # same label, own threshold
    outcome_rows = stored_outcomes(store)
    assert [(r["matched_id"], r["version"]) for r in outcome_rows] == [(pid(1), 1), (pid(4), 1)]


def test_matching_twice_never_counts_an_outcome_twice(store: Store) -> None:
    add_version(store)
    add_version(store)
    log(
        store,
        prediction(1, score=0.9),
        prediction(2, score=0.2, version=2, shadow_of=1),
        prediction(3, score=0.1, entity="c3"),
    )
    batch = [good(1), {"entity": "c3", "time": T0, "label": True, "model": "churn"}]
    ingest_outcomes(store, batch)
    assert match_outcomes(store, bucket_seconds=BUCKET) == 2
    before = windows(store)
    assert match_outcomes(store, bucket_seconds=BUCKET) == 0
    ingest_outcomes(store, batch)  # the same outcomes sent again are duplicates
    assert len(stored_outcomes(store)) == 2
    assert match_outcomes(store, bucket_seconds=BUCKET) == 0
    assert windows(store) == before
    assert sum(r["labelled"] for r in before.values()) == 3  # two answers and one shadow


def test_concurrent_matchers_settle_each_outcome_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_outcomes, "MATCH_BATCH", 4)
    add_version(store)
    starts = [T0 + timedelta(minutes=m) for m in range(3)]
    live(store, *(("churn", 1, start) for start in starts))  # rows exist; see the xfail below
    log(store, *(prediction(i, at=starts[i % 3], score=(i % 10) / 10 + 0.05) for i in range(60)))
    ingest_outcomes(store, [{"prediction_id": pid(i), "label": i % 3 == 0} for i in range(60)])
    barrier = threading.Barrier(4)

    def matcher(_: int) -> int:
        barrier.wait()
        return match_outcomes(store, bucket_seconds=BUCKET)

    with ThreadPoolExecutor(4) as pool:
        settled = list(pool.map(matcher, range(4)))
    assert sum(settled) == 60
    assert outcome_counts(store) == {"pending": 0, "matched": 60, "invalid": 0, "duplicate": 0}
    got = windows(store)
    for m, start in enumerate(starts):
        pairs = [((i % 10) / 10 + 0.05, i % 3 == 0) for i in range(m, 60, 3)]
        assert labelled(got[(1, start)]) == expected_labelled(pairs, 0.5)


def test_a_full_batch_of_unmatched_outcomes_does_not_block_later_ones(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_outcomes, "MATCH_BATCH", 3)
    add_version(store)
    ingest_outcomes(store, [good(100 + i) for i in range(7)])  # predictions never logged
    ingest_outcomes(store, [good(1), good(2)])
    log(store, prediction(1), prediction(2))
    assert match_outcomes(store, bucket_seconds=BUCKET) == 2  # batches 3 + 3 + 3, then none
    assert outcome_counts(store) == {"pending": 7, "matched": 2, "invalid": 0, "duplicate": 0}
    log(store, prediction(104))
    assert match_outcomes(store, bucket_seconds=BUCKET) == 1
    assert [r["status"] for r in stored_outcomes(store)] == [
        "pending",
        "pending",
        "pending",
        "pending",
        "matched",
        "pending",
        "pending",
        "matched",
        "matched",
    ]


def test_outcome_counts_by_status_and_model(store: Store) -> None:
    add_version(store)
    log(store, prediction(1), prediction(2))
    ingest_outcomes(
        store,
        [
            good(1),
            good(2) | {"label": "perhaps"},
            good(3),
            {"entity": "c1", "time": T0, "label": True, "model": "upsell"},
        ],
        model="churn",
    )
    match_outcomes(store, bucket_seconds=BUCKET)
    assert outcome_counts(store) == {"pending": 2, "matched": 1, "invalid": 1, "duplicate": 0}
    assert outcome_counts(store, "churn") == {
        "pending": 1,
        "matched": 1,
        "invalid": 1,
        "duplicate": 0,
        "unassigned": 0,
    }
    assert outcome_counts(store, "upsell") == {
        "pending": 1,
        "matched": 0,
        "invalid": 0,
        "duplicate": 0,
        "unassigned": 0,
    }
    assert outcome_counts(store, "nosuch") == {
        "pending": 0,
        "matched": 0,
        "invalid": 0,
        "duplicate": 0,
        "unassigned": 0,
    }


# --- bugs: races the module's contract says it handles


@pytest.mark.postgres
def test_matching_retries_when_a_live_merge_inserts_the_same_new_window(postgres_url: str) -> None:
    with Store.open(postgres_url) as store, ThreadPoolExecutor(1) as pool:
        add_version(store)
        log(store, prediction(1, score=0.8))
        ingest_outcomes(store, [good(1)])
        engine = sa.create_engine(postgres_url)
        try:
            with engine.connect() as conn, conn.begin():  # a server's live merge, committing late
                row = {"model": "churn", "version": 1, "window_start": T0, "predictions": 3}
                merge_rows(
                    conn,
                    t.window_stats,
                    ("model", "version", "window_start"),
                    [row],
                    empty_window_row,
                )
                matching = pool.submit(match_outcomes, store, bucket_seconds=BUCKET)
                wait_until_blocked(postgres_url)
        finally:
            engine.dispose()
        assert matching.result(timeout=30) == 1
        [got] = read_window_stats(store, "churn")
    assert (got["predictions"], got["labelled"], got["tp"]) == (3, 1, 1)


def test_a_shadow_logged_after_the_outcome_matched_still_gets_the_label(store: Store) -> None:
    add_version(store, threshold=0.5)
    add_version(store, threshold=0.3)
    log(store, prediction(1, score=0.61))
    ingest_outcomes(store, [good(1)])
    assert match_outcomes(store, bucket_seconds=BUCKET) == 1
    log(store, prediction(2, score=0.41, version=2, shadow_of=1))  # the shadow thread's row
    match_outcomes(store, bucket_seconds=BUCKET)
    assert (2, T0) in windows(store), "the shadow's window has no labelled row"
    assert labelled(windows(store)[(2, T0)]) == expected_labelled([(0.41, True)], 0.3)


# --- one label per prediction; entity outcomes wait for the spools to deliver


def test_a_second_outcome_for_one_prediction_is_a_duplicate_not_a_second_label(
    store: Store,
) -> None:
    add_version(store)
    log(store, prediction(1, entity="c1"))
    later = T0 + timedelta(days=30)
    ingest_outcomes(
        store,
        [
            {"entity": "c1", "time": T0 + timedelta(days=1), "label": True},
            {"entity": "c1", "time": later, "label": False},
        ],
        model="churn",
    )
    assert match_outcomes(store, bucket_seconds=BUCKET) == 2
    assert labelled(windows(store)[(1, T0)])["labelled"] == 1  # the first outcome counts
    statuses = [(o["status"], o["matched_id"]) for o in stored_outcomes(store)]
    assert statuses == [("matched", pid(1)), ("duplicate", pid(1))]
    assert "already has an outcome" in (stored_outcomes(store)[1]["note"] or "")


def test_an_entity_outcome_of_the_last_seconds_waits_for_the_spools(store: Store) -> None:
    add_version(store)
    now = datetime.now(UTC)
    log(store, prediction(1, entity="c9", at=now - timedelta(minutes=5)))
    ingest_outcomes(store, [{"entity": "c9", "time": now, "label": True}], model="churn")
    assert match_outcomes(store, bucket_seconds=BUCKET) == 0  # a newer prediction may be coming
    log(store, prediction(2, entity="c9", at=now - timedelta(seconds=1)))  # it was
    with store.engine.begin() as conn:  # the outcome's time has passed
        conn.execute(sa.update(t.outcomes).values(event_time=now - timedelta(seconds=10)))
        moved = sa.update(t.predictions).where(t.predictions.c.id == pid(2))
        conn.execute(moved.values(at=now - timedelta(seconds=11)))
    assert match_outcomes(store, bucket_seconds=BUCKET) == 1
    assert stored_outcomes(store)[0]["matched_id"] == pid(2)


def test_outcomes_sent_by_id_alone_count_as_unassigned_until_they_match(store: Store) -> None:
    add_version(store)
    ingest_outcomes(store, [good(7), good(8)])
    assert outcome_counts(store, "churn")["unassigned"] == 2
    log(store, prediction(7))
    match_outcomes(store, bucket_seconds=BUCKET)
    counts = outcome_counts(store, "churn")
    assert (counts["matched"], counts["unassigned"]) == (1, 1)


def test_live_auc_from_matched_outcomes_is_within_0_005_of_exact_on_imbalanced_data(
    store: Store, rng: np.random.Generator
) -> None:
    """3% positives, most scores under 0.02: the stored bins still give the exact AUC."""
    from sklearn.metrics import roc_auc_score

    from mlprod.monitoring._performance import realized_performance

    add_version(store, threshold=0.2)
    n = 2000
    truth = rng.random(n) < 0.03
    logits = np.where(truth, rng.normal(-2.5, 1.5, n), rng.normal(-5.5, 1.2, n))
    scores = 1 / (1 + np.exp(-logits))
    log(store, *(prediction(i, score=float(scores[i])) for i in range(n)))
    ingest_outcomes(store, [{"prediction_id": pid(i), "label": bool(truth[i])} for i in range(n)])
    assert match_outcomes(store, bucket_seconds=BUCKET) == n
    (row,) = windows(store).values()
    live = realized_performance(
        tp=row["tp"], fp=row["fp"], fn=row["fn"], tn=row["tn"],
        pos_hist=row["pos_hist"], neg_hist=row["neg_hist"],
    )  # fmt: skip
    assert abs(float(live["roc_auc"] or 0.0) - roc_auc_score(truth, scores)) < 0.005
