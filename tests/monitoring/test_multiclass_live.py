"""A multiclass version in production: per-class performance and class shares, live.

A tiers version (three classes) answers rows drawn like its training data, logged and
counted as a server does; outcomes arrive for some of them. Proves on SQLite and
PostgreSQL that the report's accuracy, per-class precision and recall and macro F1
equal scikit-learn's on the same (observed, answered) pairs, per window and over the
period; that the confusion counts match scikit-learn's matrix; that outcomes naming no
class are invalid, with the classes in their note; that unlabelled windows estimate
accuracy from calibrated scores; that class-share drift is flagged when the answers'
shares move and not when they match; that batch predictions join outcomes the same way;
and that alert rules judge per-class gates and refuse a class the model lacks. Last, a
real server's answers and `/v1/outcomes` give the same figures in `mlprod monitor --json`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)

import mlprod
from mlprod.errors import SpecError
from mlprod.monitoring import MonitoringReport, Performance, build_report, check_alerts
from mlprod.monitoring._live import read_feature_counts
from mlprod.monitoring._lookup import batch_prediction_id
from mlprod.monitoring._outcomes import ingest_outcomes, match_outcomes, outcome_counts
from mlprod.monitoring._reference import CONFUSION
from mlprod.pipelines import promote, train
from mlprod.predlog import insert_batch_predictions
from mlprod.spec import Gate, MonitorSpec
from mlprod.store import ArtifactStore, Store, open_artifacts
from mlprod.store import schema as t
from support import Project
from tiers_kit import CLASSES, SPEC, make_tiers, write_tiers
from tiers_live import BUCKET, MODEL, answers, binner, copy_version, serve

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("tiers-live")
    write_tiers(root, SPEC.replace("[logistic_regression, lightgbm]", "[lightgbm]"))
    project = Project(root)
    train(project.spec, settings=project.settings())
    return project


@pytest.fixture
def live(trained: Project, store: Store) -> tuple[Store, ArtifactStore, mlprod.Model]:
    """A fresh store (SQLite or PostgreSQL) holding the trained version as version 1."""
    settings = trained.settings()
    with Store.open(settings.store_url()) as source:
        assert copy_version(source, store, 1) == 1
    model = mlprod.load(f"{MODEL}@1", store=trained.store)
    return store, open_artifacts(settings), model


def pairs_of(ids: list[str], observed: dict[str, str], answered: dict[str, str]) -> tuple[Any, Any]:
    """(observed, answered) class lists of the labelled ids among `ids`."""
    kept = [i for i in ids if i in observed]
    return [observed[i] for i in kept], [answered[i] for i in kept]


def assert_matches_sklearn(row: Performance, y: list[str], p: list[str]) -> None:
    assert row.classes == CLASSES and not row.estimated
    assert row.n_labelled == len(y)
    assert row.accuracy == pytest.approx(accuracy_score(y, p), abs=1e-12)
    precision = precision_score(y, p, labels=CLASSES, average=None, zero_division=0)
    recall = recall_score(y, p, labels=CLASSES, average=None, zero_division=0)
    for i, name in enumerate(CLASSES):
        assert row.figure(f"precision[{name}]")[0] == pytest.approx(precision[i], abs=1e-12)
        assert row.figure(f"recall[{name}]")[0] == pytest.approx(recall[i], abs=1e-12)
        for metric in ("precision", "recall"):
            value, low, high = row.figure(f"{metric}[{name}]")
            assert low is not None and high is not None and low <= value <= high
    macro = f1_score(y, p, labels=CLASSES, average="macro", zero_division=0)
    assert row.macro_f1 == pytest.approx(macro, abs=1e-12)
    assert row.macro_f1_low is not None and row.macro_f1_high is not None
    assert row.macro_f1_low <= row.macro_f1 <= row.macro_f1_high
    # the binary figures mean nothing for a multiclass answer: left empty, not misleading
    assert row.precision is None and row.recall is None and row.roc_auc is None


def report_of(store: Store, artifacts: ArtifactStore, **settings: Any) -> MonitoringReport:
    return build_report(
        store, artifacts, MODEL, window=HOUR, since=T0, until=T0 + 3 * HOUR,
        settings=MonitorSpec(**settings),
    )  # fmt: skip


def test_per_class_figures_equal_sklearn_per_window_and_for_the_period(
    live: tuple[Store, ArtifactStore, mlprod.Model],
) -> None:
    store, artifacts, model = live
    first, second = make_tiers(900, seed=11), make_tiers(300, seed=12)
    answered: dict[str, str] = {}
    truth: dict[str, str] = {}
    ids = []
    for frame, at in (
        (first, T0 + timedelta(minutes=5)),
        (second, T0 + HOUR + timedelta(minutes=5)),
    ):
        labels, scores = answers(model, frame)
        sent = serve(store, artifacts, 1, frame, labels, scores, at)
        answered.update(zip(sent, labels, strict=True))
        truth.update(zip(sent, frame["tier"], strict=True))
        ids.append(sent)
    # 400 outcomes in the first window (some in capitals), 20 in the second: too few to judge
    observed = {i: truth[i] for i in ids[0][:400]} | {i: truth[i] for i in ids[1][:20]}
    outcomes = [
        {"prediction_id": i, "label": label.upper() if n % 7 == 0 else label}
        for n, (i, label) in enumerate(observed.items())
    ]
    outcomes += [{"prediction_id": i, "label": "platinum"} for i in ids[0][400:405]]
    ingest_outcomes(store, outcomes)
    assert match_outcomes(store, bucket_seconds=BUCKET) == 425

    report = report_of(store, artifacts)
    realized, estimated = sorted(
        (r for r in report.performance if r.version == 1), key=lambda r: str(r.window_start)
    )
    assert_matches_sklearn(realized, *pairs_of(ids[0], observed, answered))
    assert_matches_sklearn(report.live[0], *pairs_of(ids[0] + ids[1], observed, answered))

    # the second window has 20 labels (< min_labels 30): accuracy estimated from scores
    assert estimated.estimated and estimated.n_labelled == 20
    labels, scores = answers(model, second)
    calibrated = binner(artifacts, _bundle(store)).calibrated(scores)
    assert estimated.accuracy == pytest.approx(calibrated.sum() / len(second), rel=1e-9)
    assert estimated.figure("recall[gold]")[0] is None and estimated.macro_f1 is None

    # the confusion matrix matching added equals scikit-learn's on the same pairs
    rows = read_feature_counts(store, MODEL, columns=("window_start", "feature", "counts"))
    matrices = {r["window_start"]: r["counts"] for r in rows if r["feature"] == CONFUSION}
    y, p = pairs_of(ids[0], observed, answered)
    assert (
        matrices[T0 + timedelta(minutes=5)]
        == confusion_matrix(y, p, labels=CLASSES).ravel().tolist()
    )

    rows_by_status = {o["prediction_id"]: o for o in _outcomes(store)}
    for i in ids[0][400:405]:
        assert rows_by_status[i]["status"] == "invalid"
        assert rows_by_status[i]["note"] == (
            "label 'platinum' is no class of the model (classes: 'bronze', 'gold', 'silver')"
        )
    assert outcome_counts(store, MODEL)["invalid"] == 5

    document = report.document()
    live_row = document["live"][0]
    for name in CLASSES:
        for key in (f"precision[{name}]", f"recall[{name}]", f"recall[{name}]_low"):
            assert key in live_row, key
    assert {"accuracy", "macro_f1", "classes"} <= set(live_row)
    version = document["versions"][0]
    assert version["classes"] == CLASSES
    assert version["test"]["recall[gold]"] == model_metric(store, "recall[gold]")


def outcomes_of(ids: list[str], labels: list[str]) -> list[dict[str, Any]]:
    return [{"prediction_id": i, "label": y} for i, y in zip(ids, labels, strict=True)]


def model_metric(store: Store, name: str) -> float:
    from mlprod.registry import get_version

    value: float = get_version(store, MODEL, 1).metrics[name]["value"]
    return value


def _bundle(store: Store) -> str:
    from mlprod.registry import get_version

    return get_version(store, MODEL, 1).bundle_id


def _outcomes(store: Store) -> list[dict[str, Any]]:
    query = sa.select(t.outcomes).order_by(t.outcomes.c.id)
    return store.read(lambda conn: [dict(r._mapping) for r in conn.execute(query)])


def test_class_share_drift_is_flagged_when_the_answers_move_and_not_when_they_match(
    live: tuple[Store, ArtifactStore, mlprod.Model],
) -> None:
    store, artifacts, model = live
    alike = make_tiers(1000, seed=13)  # drawn like the training rows
    labels, scores = answers(model, alike)
    serve(store, artifacts, 1, alike, labels, scores, T0 + timedelta(minutes=1))
    pool = make_tiers(4000, seed=14)
    pool_labels, pool_scores = answers(model, pool)
    bronze = np.array([label == "bronze" for label in pool_labels])
    assert bronze.sum() >= 600
    moved = pool[bronze].head(600)
    serve(
        store, artifacts, 1, moved, ["bronze"] * 600, pool_scores[bronze][:600],
        T0 + HOUR + timedelta(minutes=1),
    )  # fmt: skip

    report = report_of(store, artifacts)
    shares = [r for r in report.drift if r.feature == "predicted class"]
    assert [r.window_start for r in shares] == [T0.isoformat(), (T0 + HOUR).isoformat()]
    calm, drifted = shares
    counted = {name: labels.count(name) / len(labels) for name in CLASSES}
    assert calm.shares == pytest.approx(counted, abs=1e-12)
    reference = binner(artifacts, _bundle(store)).predicted
    assert reference is not None
    total = sum(reference["counts"])
    assert calm.reference_shares == pytest.approx(
        {c: n / total for c, n in zip(reference["categories"], reference["counts"], strict=False)}
    )
    assert calm.count == 1000 and not calm.flagged and calm.psi < 0.1
    assert drifted.count == 600 and drifted.flagged and drifted.psi > 0.1
    assert drifted.shares == {"bronze": 1.0, "gold": 0.0, "silver": 0.0}
    assert drifted.reasons[0].startswith("psi ")
    document = report.document()["drift"]
    assert [row["shares"] is not None for row in document if row["feature"] == "spend"] == [
        False,
        False,
    ]


def test_batch_predictions_and_shadows_are_judged_by_their_own_answers(
    live: tuple[Store, ArtifactStore, mlprod.Model], trained: Project
) -> None:
    """A batch job's rows keep their answered class; a shadow version is judged by its own."""
    store, artifacts, model = live
    with Store.open(trained.settings().store_url()) as source:
        assert copy_version(source, store, 1) == 2  # the same model as a second version
    frame = make_tiers(200, seed=15)
    labels, scores = answers(model, frame)
    job = "0123456789abcdef"
    at = T0 + timedelta(minutes=10)
    store.write(lambda conn: conn.execute(sa.insert(t.batch_jobs).values(_job(job, at))))
    assert insert_batch_predictions(
        store, job=job, seqs=np.arange(200), scores=scores, entities=None, labels=pa.array(labels)
    ) == 200  # fmt: skip
    truth = frame["tier"].tolist()
    ingest_outcomes(
        store,
        [{"prediction_id": batch_prediction_id(job, i), "label": truth[i]} for i in range(150)],
    )
    assert match_outcomes(store, bucket_seconds=BUCKET) == 150

    # a served answer of v1 with a shadow of v2 that answered the opposite way
    served = make_tiers(60, seed=16)
    served_labels, served_scores = answers(model, served)
    ids = serve(store, artifacts, 1, served, served_labels, served_scores, at)
    wrong = [CLASSES[(CLASSES.index(label) + 1) % 3] for label in served_labels]
    _shadow(store, served, ids, wrong, served_scores, at)
    served_truth = served["tier"].tolist()
    ingest_outcomes(store, outcomes_of(ids, served_truth))
    assert match_outcomes(store, bucket_seconds=BUCKET) == 60

    report = report_of(store, artifacts)
    live_rows = {row.version: row for row in report.live}
    assert_matches_sklearn(live_rows[1], truth[:150] + served_truth, labels[:150] + served_labels)
    assert_matches_sklearn(live_rows[2], served_truth, wrong)
    assert live_rows[2].accuracy == pytest.approx(
        np.mean([y == w for y, w in zip(served_truth, wrong, strict=True)])
    )


def _job(key: str, at: datetime) -> dict[str, Any]:
    return {
        "id": "job-" + key, "model": MODEL, "version": 1, "engine": "local", "source": {},
        "destination": {}, "chunk_rows": 1000, "status": "done", "rows": 200,
        "counted_chunks": 1, "scored_at": at, "started_at": at, "updated_at": at,
        "finished_at": at, "user_name": "ana", "error": None, "timings": {}, "key": key,
    }  # fmt: skip


def _shadow(
    store: Store, frame: Any, ids: list[str], labels: list[str], scores: Any, at: datetime
) -> None:
    """v2's shadow answers beside v1's, logged as a server logs shadows."""
    import orjson

    from mlprod.predlog import insert_entries, prediction_entry
    from tiers_live import records

    predictions = [
        {"id": uuid.uuid4().hex, "version": 2, "label": label, "score": float(score)}
        for label, score in zip(labels, scores, strict=True)
    ]
    entry = prediction_entry(
        MODEL, records(frame), predictions, at=at, latency_ms=1.0, shadow_of=ids
    )
    assert insert_entries(store, [orjson.dumps(entry)]) == len(ids)


def test_alert_rules_judge_per_class_gates_and_refuse_a_class_the_model_lacks(
    live: tuple[Store, ArtifactStore, mlprod.Model],
) -> None:
    store, artifacts, model = live
    frame = make_tiers(400, seed=17)
    labels, scores = answers(model, frame)
    ids = serve(store, artifacts, 1, frame, labels, scores, T0 + timedelta(minutes=3))
    # every outcome says gold: recall of gold is what the model answered gold, at most
    ingest_outcomes(store, [{"prediction_id": i, "label": "gold"} for i in ids])
    match_outcomes(store, bucket_seconds=BUCKET)
    report = report_of(store, artifacts)
    row = report.live[0]
    high = row.figure("recall[gold]")[2]
    assert high is not None and high < 0.9
    gates = {
        "recall[gold]": Gate(op=">=", value=0.9),
        "macro_f1": Gate(op=">=", value=0.95),
        "accuracy": Gate(op=">=", value=0.01),  # surely met: no alert
        "roc_auc": Gate(op=">=", value=0.99),  # not judged live for multiclass
        "log_loss": Gate(op="<=", value=0.01),
    }
    opened, _ = check_alerts(store, report, settings=MonitorSpec(), gates=gates)
    subjects = sorted(alert.subject for alert in opened)
    assert subjects == ["macro_f1@1", "recall[gold]@1"]
    gold = next(a for a in opened if a.subject == "recall[gold]@1")
    assert f"at most {high:.3f}" in gold.message and gold.details["recall[gold]_high"] == high

    with pytest.raises(SpecError, match=r"recall\[platinum\].*bronze, gold, silver"):
        check_alerts(
            store,
            report,
            settings=MonitorSpec(),
            gates={"recall[platinum]": Gate(op=">=", value=0.5)},
        )


def test_labelled_predictions_give_a_multiclass_version_the_observed_class_position(
    live: tuple[Store, ArtifactStore, mlprod.Model],
) -> None:
    from mlprod.monitoring import labelled_predictions

    store, artifacts, model = live
    frame = make_tiers(30, seed=18)
    labels, scores = answers(model, frame)
    ids = serve(store, artifacts, 1, frame, labels, scores, T0)
    truth = frame["tier"].tolist()
    ingest_outcomes(store, outcomes_of(ids, truth))
    match_outcomes(store, bucket_seconds=BUCKET)
    rows = labelled_predictions(store, MODEL, 1)
    order = sorted(range(len(ids)), key=lambda n: ids[n])  # one time: ties go by id
    assert rows["__label__"].tolist() == [CLASSES.index(truth[n]) for n in order]
    assert rows["__score__"].tolist() == pytest.approx([scores[n] for n in order], abs=1e-12)


def test_a_binary_document_keeps_exactly_its_keys() -> None:
    """Binary reports read as before: no classes, accuracy, per-class keys or shares."""
    from mlprod.monitoring import DriftRow, VersionSummary

    version = VersionSummary(
        version=1, aliases=["production"], threshold=0.5, gates_passed=True,
        created_at=T0.isoformat(), test={"precision": 0.8},
    )  # fmt: skip
    row = Performance(version=1, predictions=10, n_labelled=0, estimated=True, precision=0.5)
    drift = DriftRow(
        version=1, feature="plan", window_start=T0.isoformat(), count=10, psi=0.0, js=0.0,
        p_value=1.0, test="chi2", null_rate=0.0, reference_null_rate=0.0, unseen_rate=0.0,
        flagged=False,
    )  # fmt: skip
    report = MonitoringReport(
        model="churn", window="1h", since=T0.isoformat(), until=T0.isoformat(),
        versions=[version], traffic=[], performance=[row], live=[row], drift=[drift],
        errors=[], alerts=[], outcomes={},
    )  # fmt: skip
    document = report.document()
    assert set(document["versions"][0]) == {
        "version", "aliases", "threshold", "gates_passed", "created_at", "test",
    }  # fmt: skip
    performance = {
        "version", "window_start", "predictions", "n_labelled", "estimated", "precision",
        "precision_low", "precision_high", "recall", "recall_low", "recall_high", "f1",
        "roc_auc", "roc_auc_low", "roc_auc_high", "average_precision", "value", "value_low",
        "value_high", "value_per_row",
    }  # fmt: skip
    assert set(document["live"][0]) == set(document["performance"][0]) == performance
    assert set(row.document()) == performance
    assert set(document["drift"][0]) == set(drift.document()) == {
        "version", "feature", "window_start", "count", "psi", "js", "p_value", "test",
        "null_rate", "reference_null_rate", "unseen_rate", "flagged", "reasons",
    }  # fmt: skip


def test_a_performance_row_refuses_keys_of_classes_it_does_not_have() -> None:
    with pytest.raises(ValueError, match="unexpected figure 'recall\\[gold\\]'"):
        Performance(
            version=1, predictions=1, n_labelled=0, estimated=False, **{"recall[gold]": 1.0}
        )
    with pytest.raises(ValueError, match="unexpected figure 'recal\\[gold\\]'"):
        Performance(
            version=1, predictions=1, n_labelled=0, estimated=False, classes=["gold", "x", "y"],
            **{"recal[gold]": 1.0},
        )  # fmt: skip
    row = Performance(
        version=1, predictions=1, n_labelled=1, estimated=False, classes=["gold", "x", "y"],
        **{"recall[gold]": 1.0, "recall[gold]_low": 0.2, "recall[gold]_high": 1.0},
    )  # fmt: skip
    assert row.figure("recall[gold]") == (1.0, 0.2, 1.0)


def test_a_real_server_answers_and_outcomes_give_sklearns_figures(trained: Project) -> None:
    """End to end: `mlprod serve` answers, logs and counts; `/v1/outcomes`; `mlprod monitor`."""
    import time

    import httpx

    from support import Server, cli_json
    from tiers_live import records

    promote(MODEL, 1, "production", settings=trained.settings(), actor="test")
    server = Server(trained, env={"MLPROD_MONITOR_FLUSH": "0.5"})
    frame = make_tiers(600, seed=19)
    truth = frame["tier"].tolist()
    try:
        server.wait_ready()
        body = {"records": records(frame)}
        answered = httpx.post(
            server.url + f"/v1/models/{MODEL}/predict", json=body, timeout=60
        ).json()["predictions"]
        outcomes = outcomes_of([a["id"] for a in answered[:300]], truth[:300])
        outcomes.append({"prediction_id": answered[300]["id"], "label": "platinum"})
        httpx.post(server.url + "/v1/outcomes", json={"outcomes": outcomes}).raise_for_status()
        document: dict[str, Any] = {"live": []}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the server merges counts and matches outcomes
            document = cli_json(trained, "monitor", MODEL, "--no-alerts")
            live = document["live"][0] if document["live"] else {}
            if live.get("n_labelled") == 300 and live.get("predictions") == 600:
                break
            time.sleep(0.5)
    finally:
        server.stop()
    live = document["live"][0]
    assert live["predictions"] == 600 and document["outcomes"]["invalid"] == 1
    row = Performance.model_validate(live)
    assert_matches_sklearn(row, truth[:300], [a["label"] for a in answered[:300]])
    shares = next(r for r in document["drift"] if r["feature"] == "predicted class")["shares"]
    labels = [a["label"] for a in answered]
    assert shares == pytest.approx({c: labels.count(c) / 600 for c in CLASSES}, abs=1e-12)
