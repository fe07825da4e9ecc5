"""Live window statistics: in-memory counts are exact, and merging them into the store adds.

Proves that `LiveStats` counts what it is given (checked against numpy computed here, not
against the library's own helpers), that drain/restore lose nothing, and that merges into
``window_stats``, ``feature_counts`` and ``request_errors`` are pure additions on SQLite
and PostgreSQL: merging twice doubles every field, and concurrent merges from threads and
from separate processes into the same new window lose no update and surface no
duplicate-key error.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from mlprod.monitoring._live import (
    LiveStats,
    WindowCounts,
    WindowKey,
    empty_window_row,
    merge_live_stats,
    merge_request_errors,
    merge_rows,
    read_feature_counts,
    read_request_errors,
    read_window_stats,
    window_start,
)
from mlprod.monitoring._reference import (
    LEGACY_SCORE_BINS,
    PREDICTED,
    SCORE,
    SCORE_BINS,
    SCORE_EDGES,
    Binner,
    build_reference,
)
from mlprod.store import schema as t
from mlprod.store._store import Store
from support import wait_until_blocked

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)  # on a minute, hour and day boundary
THRESHOLD = 0.41
PLANS = [f"p{k:02d}" for k in range(23)]  # 20 top categories, 3 more that bin as "other"
STAT_FIELDS = ("predictions", "predicted_positive", "est_tp", "est_positive", "score_hist")
LABELLED_FIELDS = ("labelled", "tp", "fp", "fn", "tn", "pos_hist", "neg_hist")


# --- helpers: a reference with known bins, and expected counts computed independently


@pytest.fixture
def binner(rng: np.random.Generator) -> Binner:
    """Bins of a numeric and a categorical feature, and a calibration map that is not 1:1."""
    plans = [plan for k, plan in enumerate(PLANS) for _ in range(30 - k)]  # no ties
    frame = pd.DataFrame(
        {"tenure": rng.normal(24, 8, len(plans)), "plan": rng.permutation(np.array(plans))}
    )
    test_scores = rng.uniform(0, 1, 400)
    test_labels = rng.uniform(0, 1, 400) < test_scores**2
    reference = build_reference(
        frame, {"tenure": "numeric", "plan": "categorical"}, test_scores, test_labels
    )
    assert reference["features"]["plan"]["categories"] == PLANS[:20]
    assert len(reference["features"]["tenure"]["edges"]) == 9
    return Binner(reference)


def live_records(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    """Raw request records: known, "other" and unseen plans, missing values of both kinds."""
    plans: list[Any] = [*PLANS, "brand-new", None]
    return [
        {
            "tenure": None if i % 17 == 0 else float(rng.normal(24, 10)),
            "plan": plans[int(rng.integers(len(plans)))],
        }
        for i in range(n)
    ]


def live_scores(rng: np.random.Generator, n: int) -> np.ndarray:
    scores = rng.uniform(0, 1, n)
    scores[[3, 11]] = np.nan, np.inf  # non-finite scores count as predictions, nowhere else
    return scores


def numeric_bins(values: Sequence[float | None], edges: Sequence[float]) -> list[int]:
    """[< e0, [e0, e1), ..., >= e_last, missing], by plain comparisons."""
    bounds = [-np.inf, *edges, np.inf]
    present = [v for v in values if v is not None and np.isfinite(v)]
    counts = [sum(lo <= v < hi for v in present) for lo, hi in itertools.pairwise(bounds)]
    return [*counts, len(values) - len(present)]


def plan_bins(values: Sequence[str | None]) -> list[int]:
    """20 top plans, then other (seen in training), unseen, missing."""
    seen = Counter(values)
    other = sum(seen[p] for p in PLANS[20:])
    unseen = sum(n for v, n in seen.items() if v is not None and v not in PLANS)
    return [*(seen[p] for p in PLANS[:20]), other, unseen, seen[None]]


def score_hist(scores: np.ndarray) -> list[int]:
    finite = scores[np.isfinite(scores)]
    bounds = np.concatenate([[0.0], SCORE_EDGES, [1.0]])
    counts: list[int] = np.histogram(finite, bins=bounds)[0].tolist()
    return counts


def plain(value: Any) -> Any:
    """numpy arrays and scalars as the JSON/SQL values the store hands back."""
    return value.tolist() if isinstance(value, np.ndarray) else value


def counts(
    predictions: int,
    *,
    positive: int = 0,
    est_tp: float = 0.0,
    est_positive: float = 0.0,
    hist: Sequence[int] | None = None,
    features: Mapping[str, Sequence[int]] | None = None,
) -> WindowCounts:
    return WindowCounts(
        predictions=predictions,
        predicted_positive=positive,
        est_tp=est_tp,
        est_positive=est_positive,
        score_hist=np.asarray(hist if hist is not None else [0] * SCORE_BINS, dtype=np.int64),
        features={k: np.asarray(v, dtype=np.int64) for k, v in (features or {}).items()},
    )


def stats_by_key(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {(r["model"], r["version"], r["window_start"]): dict(r) for r in rows}


def features_by_key(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {(r["model"], r["version"], r["feature"], r["window_start"]): dict(r) for r in rows}


# --- window_start


@pytest.mark.parametrize(
    ("at", "bucket", "expected"),
    [
        (T0, 60, T0),  # a boundary is its own window
        (T0 + timedelta(seconds=59, microseconds=999_999), 60, T0),
        (T0 + timedelta(seconds=60), 60, T0 + timedelta(minutes=1)),
        (T0 + timedelta(minutes=7, seconds=3), 300, T0 + timedelta(minutes=5)),
        (T0 + timedelta(hours=5, minutes=59), 86_400, T0 - timedelta(hours=10)),  # UTC midnight
        # an offset time lands in the window of its UTC instant: buckets follow the epoch
        (datetime(2026, 5, 1, 16, 10, tzinfo=timezone(timedelta(hours=5, minutes=30))), 3600,
         datetime(2026, 5, 1, 10, 0, tzinfo=UTC)),
        (datetime(1970, 1, 1, 0, 0, 7, tzinfo=UTC), 5, datetime(1970, 1, 1, 0, 0, 5, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_window_start_aligns_to_the_epoch_in_utc(
    at: datetime, bucket: int, expected: datetime
) -> None:
    start = window_start(at, bucket)
    assert start == expected
    assert start.tzinfo is not None and start.utcoffset() == timedelta(0)
    assert int(start.timestamp()) % bucket == 0


def test_live_stats_refuses_a_bucket_under_one_second() -> None:
    with pytest.raises(ValueError, match="bucket_seconds must be at least 1"):
        LiveStats(bucket_seconds=0)


# --- LiveStats in memory


def test_add_counts_match_numpy(binner: Binner, rng: np.random.Generator) -> None:
    records, scores = live_records(rng, 300), live_scores(rng, 300)
    stats = LiveStats(bucket_seconds=60)
    stats.add("churn", 3, T0 + timedelta(seconds=42), scores, threshold=THRESHOLD,
              binner=binner, records=records)  # fmt: skip

    windows = stats.drain()
    assert list(windows) == [("churn", 3, T0)]
    got = windows[("churn", 3, T0)]

    finite = np.isfinite(scores)
    positive = finite & (np.nan_to_num(scores, nan=-1.0, posinf=-1.0) >= THRESHOLD)
    calibration = binner.reference["calibration"]
    calibrated = np.interp(scores[finite], calibration["scores"], calibration["probabilities"])
    assert 0 < positive.sum() < finite.sum()
    assert got.predictions == 300
    assert got.predicted_positive == int(positive.sum())
    assert got.est_tp == pytest.approx(
        np.interp(scores[positive], calibration["scores"], calibration["probabilities"]).sum()
    )
    assert got.est_positive == pytest.approx(calibrated.sum())
    assert got.est_tp < got.est_positive
    assert got.score_hist.tolist() == score_hist(scores)
    assert sum(got.score_hist) == 298

    features = binner.reference["features"]
    assert set(got.features) == {"tenure", "plan", SCORE}
    assert got.features["tenure"].tolist() == numeric_bins(
        [r["tenure"] for r in records], features["tenure"]["edges"]
    )
    assert got.features["plan"].tolist() == plan_bins([r["plan"] for r in records])
    assert got.features["plan"][-3:].min() > 0  # other, unseen and missing all occur
    assert got.features[SCORE].tolist() == numeric_bins(
        [float(s) for s in scores], binner.reference["score"]["edges"]
    )
    assert got.features[SCORE][-1] == 2  # NaN and inf are the score's missing bin


def test_add_sums_batches_per_window_and_version(binner: Binner, rng: np.random.Generator) -> None:
    first, second, later = (live_scores(rng, 50) for _ in range(3))
    records = live_records(rng, 50)
    stats = LiveStats(bucket_seconds=60)
    for at, scores, version in [
        (T0 + timedelta(seconds=1), first, 1),
        (T0 + timedelta(seconds=59), second, 1),
        (T0 + timedelta(seconds=61), later, 1),
        (T0 + timedelta(seconds=2), later, 2),
    ]:
        stats.add("churn", version, at, scores, threshold=THRESHOLD, binner=binner,
                  records=records)  # fmt: skip

    windows = stats.drain()
    assert set(windows) == {
        ("churn", 1, T0),
        ("churn", 1, T0 + timedelta(minutes=1)),
        ("churn", 2, T0),
    }
    both = np.concatenate([first, second])
    summed = windows[("churn", 1, T0)]
    assert summed.predictions == 100
    assert summed.predicted_positive == int((np.nan_to_num(both, posinf=0) >= THRESHOLD).sum())
    assert summed.score_hist.tolist() == score_hist(both)
    once = plan_bins([r["plan"] for r in records])
    assert summed.features["plan"].tolist() == [2 * n for n in once]
    assert windows[("churn", 2, T0)].score_hist.tolist() == score_hist(later)


def test_add_without_binner_counts_traffic_only(rng: np.random.Generator) -> None:
    scores = live_scores(rng, 40)
    stats = LiveStats(bucket_seconds=60)
    stats.add("churn", 1, T0, scores, threshold=THRESHOLD, binner=None, records=[{}] * 40)
    got = stats.drain()[("churn", 1, T0)]
    assert got.predictions == 40
    assert got.predicted_positive == int((np.nan_to_num(scores, posinf=0) >= THRESHOLD).sum())
    assert (got.est_tp, got.est_positive) == (0.0, 0.0)  # no calibration map, no estimate
    assert got.score_hist.tolist() == score_hist(scores)
    assert got.features == {}


def test_frame_and_records_count_the_same(binner: Binner, rng: np.random.Generator) -> None:
    records, scores = live_records(rng, 80), live_scores(rng, 80)
    stats = LiveStats(bucket_seconds=60)
    stats.add("churn", 1, T0, scores, threshold=THRESHOLD, binner=binner, records=records)
    stats.add("churn", 2, T0, scores, threshold=THRESHOLD, binner=binner,
              frame=pd.DataFrame(records))  # fmt: skip
    windows = stats.drain()
    by_records, by_frame = windows[("churn", 1, T0)], windows[("churn", 2, T0)]
    assert {k: v.tolist() for k, v in by_frame.features.items()} == {
        k: v.tolist() for k, v in by_records.features.items()
    }


def test_drain_empties_and_restore_adds_back(binner: Binner, rng: np.random.Generator) -> None:
    scores, records = live_scores(rng, 60), live_records(rng, 60)
    stats = LiveStats(bucket_seconds=60)
    stats.add("churn", 1, T0, scores, threshold=THRESHOLD, binner=binner, records=records)
    drained = stats.drain()
    assert stats.drain() == {}

    # the merge failed: the counts go back and join what was counted meanwhile
    stats.add("churn", 1, T0, scores, threshold=THRESHOLD, binner=binner, records=records)
    stats.add("churn", 1, T0 + timedelta(minutes=5), scores, threshold=THRESHOLD,
              binner=binner, records=records)  # fmt: skip
    stats.restore(drained)
    again = stats.drain()
    assert set(again) == {("churn", 1, T0), ("churn", 1, T0 + timedelta(minutes=5))}
    once, twice = drained[("churn", 1, T0)], again[("churn", 1, T0)]
    assert twice.predictions == 2 * once.predictions
    assert twice.predicted_positive == 2 * once.predicted_positive
    assert twice.est_tp == pytest.approx(2 * once.est_tp)
    assert twice.est_positive == pytest.approx(2 * once.est_positive)
    assert twice.score_hist.tolist() == (2 * once.score_hist).tolist()
    for name, values in once.features.items():
        assert twice.features[name].tolist() == (2 * values).tolist(), name
    assert stats.drain() == {}

    stats.restore(drained)  # into an empty accumulator: the same counts, not aliases of them
    restored = stats.drain()[("churn", 1, T0)]
    restored.features["plan"] += 100
    assert drained[("churn", 1, T0)].features["plan"].tolist() == once.features["plan"].tolist()


def test_concurrent_adds_lose_nothing(rng: np.random.Generator) -> None:
    stats = LiveStats(bucket_seconds=60)
    scores = rng.uniform(0, 1, 25)
    barrier = threading.Barrier(4)

    def worker(_: int) -> None:
        barrier.wait()
        for _ in range(200):
            stats.add("churn", 1, T0, scores, threshold=THRESHOLD, binner=None)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(worker, range(4)))
    got = stats.drain()[("churn", 1, T0)]
    assert got.predictions == 4 * 200 * 25
    assert got.score_hist.tolist() == [4 * 200 * n for n in score_hist(scores)]


# --- merging into the store


def test_merging_the_same_counts_twice_doubles_every_field(
    store: Store, binner: Binner, rng: np.random.Generator
) -> None:
    stats = LiveStats(bucket_seconds=60)
    for minutes, version in [(0, 1), (0, 2), (3, 1)]:
        stats.add("churn", version, T0 + timedelta(minutes=minutes), live_scores(rng, 70),
                  threshold=THRESHOLD, binner=binner, records=live_records(rng, 70))  # fmt: skip
    windows = stats.drain()

    merge_live_stats(store, windows)
    once = stats_by_key(read_window_stats(store, "churn"))
    once_features = features_by_key(read_feature_counts(store, "churn"))
    merge_live_stats(store, windows)
    twice = stats_by_key(read_window_stats(store, "churn"))
    twice_features = features_by_key(read_feature_counts(store, "churn"))

    assert set(once) == set(twice) == set(windows)
    for key, counted in windows.items():
        for name in STAT_FIELDS:
            assert once[key][name] == pytest.approx(plain(getattr(counted, name))), (key, name)
        for name in ("predictions", "predicted_positive"):
            assert twice[key][name] == 2 * once[key][name]
        for name in ("est_tp", "est_positive"):
            assert twice[key][name] == pytest.approx(2 * once[key][name], rel=1e-12)
        assert twice[key]["score_hist"] == [2 * n for n in once[key]["score_hist"]]
        for name in LABELLED_FIELDS:  # the labelled half stays empty until outcomes match
            assert twice[key][name] == empty_window_row(*key)[name], name

    assert len(once_features) == 3 * len(windows)
    for (model, version, start), counted in windows.items():
        for feature, values in counted.features.items():
            at = (model, version, feature, start)
            assert once_features[at]["counts"] == values.tolist()
            assert once_features[at]["total"] == int(values.sum()) > 0
            assert twice_features[at]["counts"] == [2 * n for n in values.tolist()]
            assert twice_features[at]["total"] == 2 * int(values.sum())


def test_merge_adds_to_existing_rows_and_widens_arrays(store: Store) -> None:
    merge_live_stats(store, {("churn", 1, T0): counts(3, positive=1, est_tp=0.5,
                                                      features={"plan": [1, 2]})})  # fmt: skip
    merge_live_stats(store, {("churn", 1, T0): counts(4, positive=2, est_tp=0.25,
                                                      features={"plan": [1, 1, 5]})})  # fmt: skip
    [row] = read_window_stats(store, "churn")
    assert (row["predictions"], row["predicted_positive"], row["est_tp"]) == (7, 3, 0.75)
    [feature] = read_feature_counts(store, "churn")
    assert feature["counts"] == [2, 3, 5]
    assert feature["total"] == 10


def test_reading_filters_by_model_and_window_range(store: Store) -> None:
    starts = [T0 + timedelta(minutes=m) for m in (0, 1, 2, 10)]
    windows = {("churn", 1, start): counts(i + 1, features={"plan": [i + 1]})
               for i, start in enumerate(starts)}  # fmt: skip
    windows[("upsell", 1, starts[1])] = counts(99, features={"plan": [99]})
    merge_live_stats(store, windows)
    merge_request_errors(store, {("churn", s, "invalid_input"): 1 for s in starts})

    def read(since: datetime | None, until: datetime | None) -> list[list[datetime]]:
        return [
            [row["window_start"] for row in reader(store, "churn", since=since, until=until)]
            for reader in (read_window_stats, read_feature_counts, read_request_errors)
        ]

    assert read(None, None) == [starts] * 3  # oldest first
    assert read(starts[1], None) == [starts[1:]] * 3  # since is inclusive
    assert read(None, starts[2]) == [starts[:2]] * 3  # until is exclusive
    assert read(starts[1], starts[3]) == [starts[1:3]] * 3
    assert read(starts[1] + timedelta(seconds=1), starts[2]) == [[]] * 3
    assert [r["predictions"] for r in read_window_stats(store, "churn")] == [1, 2, 3, 4]
    assert [r["predictions"] for r in read_window_stats(store, "upsell")] == [99]
    assert read_window_stats(store, "nosuch") == []


def test_request_error_counts_add_up(store: Store) -> None:
    later = T0 + timedelta(minutes=1)
    merge_request_errors(store, {("churn", T0, "invalid_input"): 3, ("churn", T0, "timeout"): 1})
    merge_request_errors(store, {("churn", T0, "invalid_input"): 2, ("churn", later, "timeout"): 4,
                                 ("upsell", T0, "timeout"): 7})  # fmt: skip
    merge_request_errors(store, {})  # nothing to merge is no write at all
    rows = read_request_errors(store, "churn")
    assert sorted((r["window_start"], r["code"], r["count"]) for r in rows) == [
        (T0, "invalid_input", 5),
        (T0, "timeout", 1),
        (later, "timeout", 4),
    ]
    assert [r["count"] for r in read_request_errors(store, "upsell")] == [7]


# --- concurrency: servers and batch jobs merge into the same new windows at once


def merge_plan(worker: int, rounds: int) -> list[list[dict[str, Any]]]:
    """What one writer merges: per round, two versions' counts in a window nobody wrote yet.

    Floats are multiples of 1/8, so sums are exact whatever order the merges commit in.
    """
    return [
        [
            {
                "model": "churn",
                "version": version,
                "start": (T0 + timedelta(minutes=r)).isoformat(),
                "predictions": 10 * worker + version,
                "predicted_positive": worker + r,
                "est_tp": 0.125 * (worker + 1),
                "est_positive": 0.5 * (worker + version),
                "score_hist": [(worker + 1) * (i % 3) for i in range(SCORE_BINS)],
                "features": {"plan": [worker, 1, r], SCORE: [version, worker + 2]},
            }
            for version in (1, 2)
        ]
        for r in range(rounds)
    ]


def to_windows(merge: Sequence[Mapping[str, Any]]) -> dict[WindowKey, WindowCounts]:
    return {
        (item["model"], item["version"], datetime.fromisoformat(item["start"])): counts(
            item["predictions"],
            positive=item["predicted_positive"],
            est_tp=item["est_tp"],
            est_positive=item["est_positive"],
            hist=item["score_hist"],
            features=item["features"],
        )
        for item in merge
    }


def assert_exact_sums(store: Store, plans: Sequence[list[list[dict[str, Any]]]]) -> None:
    """window_stats and feature_counts hold exactly the sum of every merge in `plans`."""
    expected: dict[tuple[Any, ...], dict[str, Any]] = {}
    expected_features: dict[tuple[Any, ...], list[int]] = {}
    for plan in plans:
        for merge in plan:
            for item in merge:
                start = datetime.fromisoformat(item["start"])
                key = (item["model"], item["version"], start)
                row = expected.setdefault(key, empty_window_row(*key))
                for name in ("predictions", "predicted_positive", "est_tp", "est_positive"):
                    row[name] += item[name]
                row["score_hist"] = [a + b for a, b in zip(row["score_hist"], item["score_hist"],
                                                            strict=True)]  # fmt: skip
                for feature, values in item["features"].items():
                    total = expected_features.setdefault((*key[:2], feature, start), [])
                    total += [0] * (len(values) - len(total))
                    for i, value in enumerate(values):
                        total[i] += value
    assert stats_by_key(read_window_stats(store, "churn")) == expected
    stored = features_by_key(read_feature_counts(store, "churn"))
    assert {key: row["counts"] for key, row in stored.items()} == expected_features
    assert all(row["total"] == sum(row["counts"]) for row in stored.values())


def test_concurrent_thread_merges_add_up_exactly(store: Store) -> None:
    writers, rounds = 6, 4
    plans = [merge_plan(worker, rounds) for worker in range(writers)]
    barrier = threading.Barrier(writers)

    def writer(plan: list[list[dict[str, Any]]]) -> None:
        barrier.wait()
        for merge in plan:
            merge_live_stats(store, to_windows(merge))

    with ThreadPoolExecutor(writers) as pool:
        for done in [pool.submit(writer, plan) for plan in plans]:
            done.result(timeout=120)  # a duplicate-key or lock error would surface here
    assert_exact_sums(store, plans)


WORKER = textwrap.dedent(
    """
    import json, sys, time
    from datetime import datetime
    from pathlib import Path

    import numpy as np

    from mlprod.monitoring._live import WindowCounts, merge_live_stats
    from mlprod.store import Store

    url, go, plan = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    with Store.open(url) as store:
        print("ready", flush=True)  # imported and connected: only the merges remain
        deadline = time.monotonic() + 60
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.0005)
        for merge in plan:
            windows = {
                (item["model"], item["version"], datetime.fromisoformat(item["start"])):
                WindowCounts(
                    predictions=item["predictions"],
                    predicted_positive=item["predicted_positive"],
                    est_tp=item["est_tp"],
                    est_positive=item["est_positive"],
                    score_hist=np.array(item["score_hist"], dtype=np.int64),
                    features={k: np.array(v, dtype=np.int64) for k, v in item["features"].items()},
                )
                for item in merge
            }
            merge_live_stats(store, windows)
    print("merged", len(plan))
    """
)


@pytest.mark.postgres  # SQLite locks the file per connection: the thread test covers it
def test_concurrent_process_merges_add_up_exactly(postgres_url: str, tmp_path: Path) -> None:
    processes, rounds = 3, 8
    Store.open(postgres_url).close()  # migrated once here, so workers only connect
    plans = [merge_plan(worker, rounds) for worker in range(processes)]
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, postgres_url, str(go), json.dumps(plan)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for plan in plans
    ]  # fmt: skip
    for worker in workers:  # release them together, or the first would merge alone
        assert worker.stdout is not None
        assert worker.stdout.readline() == "ready\n", worker.communicate(timeout=60)
    go.touch()
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err  # no duplicate-key error reached a writer
        assert out.strip() == f"merged {rounds}"
    with Store.open(postgres_url) as store:
        assert_exact_sums(store, plans)


# --- the race made deterministic: a writer inserts a new window and commits late


@contextmanager
def uncommitted_window(url: str, key: WindowKey, predictions: int) -> Iterator[None]:
    """Another writer's transaction that has inserted window `key`; commits on exit."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn, conn.begin():
            row = {"model": key[0], "version": key[1], "window_start": key[2],
                   "predictions": predictions}  # fmt: skip
            merge_rows(conn, t.window_stats, ("model", "version", "window_start"), [row],
                       empty_window_row)  # fmt: skip
            yield
    finally:
        engine.dispose()


@pytest.mark.postgres  # SQLite writers lock the database at BEGIN: two never both insert
def test_losing_the_insert_race_is_retried_not_raised(postgres_url: str) -> None:
    key: WindowKey = ("churn", 1, T0)
    with Store.open(postgres_url) as store, ThreadPoolExecutor(1) as pool:
        with uncommitted_window(postgres_url, key, predictions=5):
            merging = pool.submit(merge_live_stats, store, {key: counts(7, positive=2)})
            wait_until_blocked(postgres_url)  # our INSERT waits on theirs, then loses
        merging.result(timeout=30)
        [row] = read_window_stats(store, "churn")
    assert (row["predictions"], row["predicted_positive"]) == (12, 2)


def test_a_window_stored_with_legacy_score_bins_takes_new_counts_exactly(
    store: Store, rng: np.random.Generator
) -> None:
    """A window an older server opened (50 equal-width bins) keeps every score counted."""
    start = window_start(T0, 60)
    old_scores, new_scores = rng.beta(0.5, 8.0, 300), rng.beta(0.5, 8.0, 200)
    legacy = np.histogram(old_scores, bins=LEGACY_SCORE_BINS, range=(0, 1))[0]

    def legacy_row(conn: Any) -> None:
        row = empty_window_row("churn", 1, start)
        conn.execute(
            sa.insert(t.window_stats),
            [{**row, "predictions": 300, "score_hist": legacy.tolist()}],
        )

    store.write(legacy_row)
    merge_live_stats(store, {("churn", 1, start): counts(200, hist=score_hist(new_scores))})
    (row,) = read_window_stats(store, "churn")
    both = np.concatenate([old_scores, new_scores])
    assert row["predictions"] == 500
    assert row["score_hist"] == np.histogram(both, bins=LEGACY_SCORE_BINS, range=(0, 1))[0].tolist()


# --- multiclass: predicted classes are counted as class shares beside the features


def test_predicted_classes_are_counted_into_the_reference_class_bins(
    rng: np.random.Generator,
) -> None:
    """Shares of each predicted class, counted by hand; None (no answer) is missing."""
    frame = pd.DataFrame({"tenure": rng.normal(24, 8, 200)})
    predicted = ["low"] * 50 + ["mid"] * 30 + ["high"] * 20
    reference = build_reference(
        frame, {"tenure": "numeric"}, rng.uniform(0.34, 1, 100), rng.integers(0, 2, 100),
        predicted=predicted,
    )  # fmt: skip
    assert reference["predicted"]["categories"] == ["low", "mid", "high"]
    assert reference["predicted"]["counts"] == [50, 30, 20, 0, 0, 0]
    binner = Binner(reference)
    labels = ["high", "high", "mid", "unknown", None, "low", "high"]
    stats = LiveStats(bucket_seconds=60)
    stats.add("tiers", 2, T0, rng.uniform(0.34, 1, len(labels)), threshold=0.0,
              binner=binner, records=[{"tenure": 3.0}] * len(labels), labels=labels)  # fmt: skip

    got = stats.drain()[("tiers", 2, T0)]
    # low, mid, high, other, unseen, missing
    assert got.features[PREDICTED].tolist() == [1, 1, 3, 0, 1, 1]
    assert got.predicted_positive == len(labels)  # threshold 0: every answer is "taken"


def test_binary_references_count_no_class_shares(binner: Binner, rng: np.random.Generator) -> None:
    assert binner.class_counts(["yes", "no"]) is None
    stats = LiveStats(bucket_seconds=60)
    stats.add("churn", 3, T0, live_scores(rng, 20), threshold=THRESHOLD, binner=binner,
              records=live_records(rng, 20), labels=["yes"] * 20)  # fmt: skip
    assert PREDICTED not in stats.drain()[("churn", 3, T0)].features
