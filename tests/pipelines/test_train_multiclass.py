"""A target with three classes, end to end: training, metrics, gates, registry and load."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss, recall_score, roc_auc_score

import mlprod
from mlprod.errors import GateFailedError, SpecError
from mlprod.pipelines import TrainedRun, promote, train
from mlprod.registry import get_version
from mlprod.store import Store
from support import Project, Server, cli_json, run_cli
from tiers_kit import CLASSES, SPEC, make_tiers, write_tiers


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainedRun]:
    root = tmp_path_factory.mktemp("tiers")
    spec = SPEC + 'gates:\n  macro_f1: ">= 0.5"\n  recall[gold]: ">= 0.3"\n'
    path = write_tiers(root, spec)
    return root, train(path, store=str(root / ".mlprod"))


def test_three_classes_train_gate_and_register_with_every_class(
    trained: tuple[Path, TrainedRun],
) -> None:
    root, run = trained
    assert run.classes == CLASSES and run.positive is None
    assert run.gates_passed and [g.metric for g in run.gates] == ["macro_f1", "recall[gold]"]
    assert {c["name"] for c in run.candidates} == {"logistic_regression", "lightgbm"}
    assert all(c["error"] is None and c["validation_score"] < 0 for c in run.candidates)
    with Store.open(f"sqlite:///{root}/.mlprod/mlprod.db") as store:
        version = get_version(store, "tiers", run.version)
    assert version.signature["classes"] == CLASSES
    assert version.gates_passed
    for name in ("accuracy", "macro_f1", "weighted_f1", "roc_auc", "log_loss"):
        metric = version.metrics[name]
        assert metric["low"] <= metric["value"] <= metric["high"], name
    for label in CLASSES:
        assert 0 < version.metrics[f"recall[{label}]"]["value"] <= 1
        assert 0 < version.metrics[f"precision[{label}]"]["value"] <= 1
    assert 0.8 < version.metrics["roc_auc"]["value"] < 1


def test_loaded_model_answers_every_class_and_matches_sklearn(
    trained: tuple[Path, TrainedRun],
) -> None:
    root, run = trained
    model = mlprod.load(f"tiers@{run.version}", store=str(root / ".mlprod"))
    X, y = model.test_data()
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 3) and model.multiclass
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    labels = model.predict(X)
    assert set(labels.tolist()) <= set(CLASSES)
    assert labels.tolist() == [CLASSES[i] for i in np.argmax(proba, axis=1)]
    predicted = np.argmax(proba, axis=1)
    recorded = run.metrics
    assert recorded["accuracy"].value == pytest.approx(accuracy_score(y, predicted), abs=1e-12)
    assert recorded["macro_f1"].value == pytest.approx(
        f1_score(y, predicted, average="macro"), abs=1e-12
    )
    assert recorded["weighted_f1"].value == pytest.approx(
        f1_score(y, predicted, average="weighted"), abs=1e-12
    )
    assert recorded["roc_auc"].value == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr", average="macro"), abs=1e-9
    )
    assert recorded["log_loss"].value == pytest.approx(log_loss(y, proba), abs=1e-9)
    recalls = recall_score(y, predicted, average=None)
    for i, label in enumerate(CLASSES):
        assert recorded[f"recall[{label}]"].value == pytest.approx(recalls[i], abs=1e-12)
    warm = model.warm_up()
    assert warm.shape == (5, 3)
    records = make_tiers(4, seed=9).drop(columns="tier").to_dict("records")
    from_records = model.predict_proba(records)
    assert from_records.shape == (4, 3)
    np.testing.assert_allclose(from_records, model.predict_proba(pd.DataFrame(records)))
    answer = model.predict_record(records[0])
    assert list(answer["probabilities"]) == CLASSES
    assert answer["label"] == CLASSES[int(np.argmax(from_records[0]))]
    assert answer["score"] == answer["probabilities"][answer["label"]] == from_records[0].max()


def test_report_shows_the_k_by_k_confusion_matrix_and_each_class_roc(
    trained: tuple[Path, TrainedRun],
) -> None:
    root, run = trained
    model = mlprod.load(f"tiers@{run.version}", store=str(root / ".mlprod"))
    html = (model.folder / "report.html").read_text()
    for label in CLASSES:
        assert f"predicted {label}" in html and f"actual {label}" in html
        assert f"{label} vs rest" in html
    assert "recall[gold]" in html and "macro_f1" in html
    assert not re.search(r"Score distribution by class", html)


def test_failed_class_gate_blocks_promotion(tmp_path: Path) -> None:
    spec = SPEC.replace("[logistic_regression, lightgbm]", "[logistic_regression]")
    path = write_tiers(tmp_path, spec + 'gates:\n  recall[gold]: ">= 0.99"\n  accuracy: ">= 0.3"\n')
    run = train(path, store=str(tmp_path / ".mlprod"))
    verdicts = {g.metric: g for g in run.gates}
    assert not verdicts["recall[gold]"].passed and verdicts["accuracy"].passed
    assert "recall[gold] >= 0.99 failed" in verdicts["recall[gold]"].message
    with pytest.raises(GateFailedError, match="failed its gates"):
        promote("tiers", run.version, store=str(tmp_path / ".mlprod"))


def test_lightgbm_alone_fits_three_classes_and_is_saved_natively(tmp_path: Path) -> None:
    spec = SPEC.replace(
        "candidates: [logistic_regression, lightgbm]",
        "candidates:\n  - {type: lightgbm, params: {n_estimators: 40}}",
    ).replace("selection_metric: log_loss", "selection_metric: macro_f1")
    path = write_tiers(tmp_path, spec)
    run = train(path, store=str(tmp_path / ".mlprod"))
    assert run.winner == "lightgbm" and 0 < run.candidates[0]["validation_score"] <= 1
    model = mlprod.load(f"tiers@{run.version}", store=str(tmp_path / ".mlprod"))
    X, _ = model.test_data()
    assert model.flavor == "lightgbm" and model.predict_proba(X).shape == (len(X), 3)
    assert run.metrics["macro_f1"].value > 0.5


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ('gates:\n  recall[platinum]: ">= 0.5"\n', ["recall[platinum]", "bronze, gold, silver"]),
        ("value: {tp: 90, fp: -10}\n", ["value", "binary target"]),
        ("threshold: {policy: min_recall, value: 0.8}\n", ["threshold", "most probable class"]),
    ],
)
def test_what_multiclass_cannot_do_is_a_clear_spec_error(
    tmp_path: Path, extra: str, words: list[str]
) -> None:
    spec = SPEC.replace("[logistic_regression, lightgbm]", "[logistic_regression]")
    path = write_tiers(tmp_path, spec + extra, rows=600)
    with pytest.raises(SpecError) as caught:
        train(path, store=str(tmp_path / ".mlprod"))
    for word in words:
        assert word in str(caught.value)


def test_a_positive_class_on_a_multiclass_target_is_a_spec_error(tmp_path: Path) -> None:
    spec = SPEC.replace("target: tier", "target: tier\n  positive: gold")
    path = write_tiers(tmp_path, spec, rows=300)
    with pytest.raises(SpecError, match=r"no positive class; remove data\.positive"):
        train(path, store=str(tmp_path / ".mlprod"))


def test_tuning_a_multiclass_target_minimises_log_loss(tmp_path: Path) -> None:
    spec = SPEC.replace("[logistic_regression, lightgbm]", "[logistic_regression]").replace(
        "selection_metric: log_loss", "selection_metric: macro_f1"
    )
    path = write_tiers(tmp_path, spec + "tuning: {trials: 3, folds: 2}\n", rows=900)
    run = train(path, store=str(tmp_path / ".mlprod"))
    tuned = run.candidates[0]
    assert tuned["trials"] == 3
    assert tuned["best_value"] < 0  # log loss, oriented so that higher is better
    assert 0 < tuned["validation_score"] <= 1  # selection still by macro F1


def test_cli_shows_every_class_and_rechecks_gates(trained: tuple[Path, TrainedRun]) -> None:
    root, run = trained
    project = Project(root)
    shown = cli_json(project, "models", "show", "tiers")["versions"][-1]
    assert shown["classes"] == CLASSES and shown["positive"] is None
    assert shown["serving_path"] == "fast"  # checked over every class's probability
    assert "matches the reference path" in shown["serving_path_reason"]
    text = run_cli(project, "models", "show", "tiers").stdout
    assert "classes of tier: bronze, gold, silver" in text
    assert re.search(r"gold\s+│\s+0\.\d{4} \(0\.\d{4}-", text)  # per-class precision
    checked = cli_json(project, "gates", f"tiers@{run.version}")
    assert checked["passed"] and [g["metric"] for g in checked["gates"]] == [
        "macro_f1",
        "recall[gold]",
    ]


def test_a_server_serves_a_multiclass_version(trained: tuple[Path, TrainedRun]) -> None:
    """Batch scoring: tests/batch/test_multiclass_batch.py; serving in depth (fast path,
    compiled trees, log, counts, routes): tests/serving/test_multiclass_serving.py."""
    root, run = trained
    store = str(root / ".mlprod")
    promote("tiers", run.version, store=store)  # it loads and warms up: the library serves it
    model = mlprod.load("tiers@production", store=store)
    records = make_tiers(20, seed=5).drop(columns="tier")
    server = Server(Project(root))
    try:
        server.wait_ready()
        ready = httpx.get(server.url + "/readyz")
        answer = httpx.post(
            server.url + "/v1/models/tiers/predict", json={"records": records.to_dict("records")}
        )
    finally:
        server.stop()
    assert ready.status_code == 200 and ready.json()["failed"] == {}
    predictions = answer.json()["predictions"]
    proba = model.predict_proba(records)
    assert [p["label"] for p in predictions] == [CLASSES[i] for i in proba.argmax(axis=1)]
    served = [[p["probabilities"][c] for c in CLASSES] for p in predictions]
    np.testing.assert_allclose(served, proba, rtol=0, atol=1e-9)


def test_dashboard_shows_a_multiclass_version_with_its_classes(
    trained: tuple[Path, TrainedRun],
) -> None:
    root, run = trained
    board = Server(Project(root), command="dashboard")
    try:
        board.wait_ready()
        assert httpx.get(board.url + "/ui/").status_code == 200
        assert httpx.get(board.url + "/ui/models/tiers").status_code == 200
        page = httpx.get(board.url + f"/ui/models/tiers/versions/{run.version}")
    finally:
        board.stop()
    assert page.status_code == 200
    assert "classes of tier: bronze, gold, silver" in page.text
    assert "positive class" not in page.text
    assert 'data-metric="recall[gold]"' in page.text


def test_init_writes_a_spec_without_a_positive_class_that_trains(tmp_path: Path) -> None:
    write_tiers(tmp_path, rows=800)
    (tmp_path / "mlprod.yaml").unlink()
    project = Project(tmp_path)
    done = run_cli(project, "init", "--data", "customers.csv", "--target", "tier")
    assert "multiclass target: tier has 3 classes (bronze, gold, silver)" in done.stdout
    written = mlprod.spec.load_spec(tmp_path / "mlprod.yaml")
    assert written.data.target == "tier" and written.data.positive is None
    trained = cli_json(project, "train")
    assert trained["classes"] == CLASSES and trained["positive"] is None
    assert set(trained["metrics"]) >= {"macro_f1", "recall[gold]", "precision[bronze]"}


@pytest.mark.parametrize(
    ("candidate", "flavor"),
    [
        ("{type: random_forest, params: {n_estimators: 50}}", "sklearn"),
        ("{type: hist_gbm, params: {max_iter: 50}}", "sklearn"),
        ("{type: xgboost, params: {n_estimators: 50}}", "xgboost"),
        ("svm", "sklearn"),
        ("{type: mlp, params: {max_epochs: 20}}", "mlp"),
    ],
)
def test_every_catalogue_type_fits_three_classes_and_round_trips(
    tmp_path: Path, candidate: str, flavor: str
) -> None:
    spec = SPEC.replace("[logistic_regression, lightgbm]", f"\n  - {candidate}")
    run = train(write_tiers(tmp_path, spec, rows=800), store=str(tmp_path / ".mlprod"))
    model = mlprod.load(f"tiers@{run.version}", store=str(tmp_path / ".mlprod"))
    X, y = model.test_data()
    proba = model.predict_proba(X)
    assert model.flavor == flavor and proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)  # XGBoost: float32 sums
    # the loaded model scores the test rows as recorded (sklearn's formula, written out:
    # it warns on XGBoost's float32 rows, which sum to one only to 1e-7)
    chosen = np.clip(proba[np.arange(len(y)), y], np.finfo(float).eps, 1 - np.finfo(float).eps)
    assert run.metrics["log_loss"].value == pytest.approx(-np.mean(np.log(chosen)), abs=1e-9)
    assert run.metrics["macro_f1"].value > 0.5


def test_cross_validation_and_early_stopped_tuning_handle_three_classes(tmp_path: Path) -> None:
    spec = SPEC.replace(
        "candidates: [logistic_regression, lightgbm]",
        "candidates: [logistic_regression, xgboost]",
    ).replace("split: {method: stratified, test_size: 0.25}", "split: {method: cv, folds: 3}")
    spec += "tuning: {trials: 2, folds: 2, early_stopping_rounds: 5}\n"
    run = train(write_tiers(tmp_path, spec, rows=700), store=str(tmp_path / ".mlprod"))
    scores = {c["name"]: c for c in run.candidates}
    assert set(scores) == {"logistic_regression", "xgboost"}
    assert all(c["error"] is None and c["validation_score"] < 0 for c in scores.values())
    assert scores["xgboost"]["best_params"]["n_estimators"] < 1000  # stopped early
    assert run.classes == CLASSES and 0 < run.metrics["accuracy"].value <= 1


def test_acceptance_fixtures_give_the_multiclass_metrics_training_gated_on(
    trained: tuple[Path, TrainedRun], tmp_path: Path
) -> None:
    import subprocess
    import sys

    root, run = trained
    recall = run.metrics["recall[gold]"]
    (tmp_path / "test_accept.py").write_text(
        "def test_gold(mlprod_metrics, mlprod_scores):\n"
        f"    assert mlprod_metrics['recall[gold]'].value == {recall.value!r}\n"
        f"    assert mlprod_metrics['recall[gold]'].low == {recall.low!r}\n"
        "    assert mlprod_scores.shape[1] == 3\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_accept.py",
         f"--mlprod-model=tiers@{run.version}", f"--mlprod-store={root / '.mlprod'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
