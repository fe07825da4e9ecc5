"""Multiclass versions served online, with every guarantee a binary version has.

One store holds a three-class model (tiers@1 LightGBM, tiers@2 logistic regression,
tiers@3 a random forest) beside the binary churn model, and one real server serves both:
each class's probability as the library computes it, the most probable class as the
label, the verified fast path and compiled trees, the field-named 422, the prediction log
and the live class counts; then an A/B test between two multiclass versions with a third
as shadow.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import mlprod
from mlprod.bundle import multiclass_answers, tree_compiler_available
from mlprod.data import make_churn_table
from mlprod.monitoring._live import read_feature_counts
from mlprod.monitoring._reference import PREDICTED
from mlprod.pipelines import promote, train
from mlprod.predlog import read_predictions
from mlprod.records import client_records
from mlprod.records._fastpath import _MismatchError
from mlprod.serving import LoadedVersion
from mlprod.store import Store
from support import SMALL_SPEC, Project, Server, run_cli
from tiers_kit import CLASSES, SPEC, make_tiers, write_tiers

LIGHTGBM, LOGISTIC, FOREST = 1, 2, 3
CANDIDATES = {
    LIGHTGBM: "{type: lightgbm, params: {n_estimators: 60}}",
    LOGISTIC: "logistic_regression",
    FOREST: "{type: random_forest, params: {n_estimators: 30}}",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """tiers@1..3 and churn@1 in one store; tiers@1 and churn@1 in production."""
    root = tmp_path_factory.mktemp("multiclass-serving")
    project = Project(root)
    write_tiers(root / "tiers")
    for version, candidate in CANDIDATES.items():
        spec = root / "tiers" / f"v{version}.yaml"
        spec.write_text(SPEC.replace("[logistic_regression, lightgbm]", f"\n  - {candidate}"))
        assert train(spec, store=project.store).version == version
    churn = root / "churn"
    churn.mkdir()
    make_churn_table(1500, seed=3).to_csv(churn / "customers.csv", index=False)
    spec = churn / "mlprod.yaml"
    spec.write_text(SMALL_SPEC.replace("[logistic_regression, lightgbm]", "[logistic_regression]"))
    train(spec, store=project.store)
    for name in ("tiers", "churn"):
        promote(name, 1, "production", store=project.store, actor="test")
    return project


@pytest.fixture(scope="module")
def server(project: Project) -> Iterator[Server]:
    running = Server(project, env={"MLPROD_COMPILE_TREES": "true", "MLPROD_MONITOR_FLUSH": "0.2"})
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def tier_records(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Records as a client sends them, plus a few a client might: nulls, an unseen region."""
    records = client_records(make_tiers(n, seed=seed).drop(columns="tier"))
    odd = {"spend": None, "visits": 1e9, "tenure": -5.0, "region": "west"}
    return [*records, odd, {**records[0], "region": None}, {**records[-1], "visits": None}]


def predict(server: Server, records: list[dict[str, Any]], name: str = "tiers") -> Any:
    answer = httpx.post(
        server.url + f"/v1/models/{name}/predict", json={"records": records}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"]


def library(project: Project, version: int) -> mlprod.Model:
    return mlprod.load(f"tiers@{version}", store=project.store)


def assert_answers(predictions: list[dict[str, Any]], proba: np.ndarray, version: int) -> None:
    """Each answer holds every class's probability, the argmax label and its probability."""
    assert [p["version"] for p in predictions] == [version] * len(proba)
    assert all(list(p) == ["id", "version", "label", "score", "probabilities"] for p in predictions)
    assert all(list(p["probabilities"]) == CLASSES for p in predictions)
    served = np.array([[p["probabilities"][c] for c in CLASSES] for p in predictions])
    np.testing.assert_allclose(served, proba, rtol=0, atol=1e-9)
    assert [p["label"] for p in predictions] == [CLASSES[i] for i in proba.argmax(axis=1)]
    assert [p["score"] for p in predictions] == [
        max(p["probabilities"].values()) for p in predictions
    ]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def served_route(server: Server, name: str) -> dict[str, Any]:
    models = {
        m["name"]: m for m in httpx.get(server.url + "/v1/models", timeout=10).json()["models"]
    }
    return models[name]


# --- answers


def test_a_server_answers_every_class_probability_as_the_library_does(
    project: Project, server: Server
) -> None:
    records = tier_records(300)
    predictions = predict(server, records)
    assert len({p["id"] for p in predictions}) == len(records)
    model = library(project, LIGHTGBM)
    assert_answers(predictions, model.predict_proba(records), LIGHTGBM)
    assert {p["label"] for p in predictions} == set(CLASSES)  # every class is predicted
    one = model.predict_record(records[0])  # the library answers one record alike
    assert one == {k: v for k, v in predictions[0].items() if k not in ("id", "version")}
    pinned = httpx.post(
        server.url + "/v1/models/tiers/versions/2/predict", json={"records": records[:40]}
    ).json()["predictions"]
    assert_answers(pinned, library(project, LOGISTIC).predict_proba(records[:40]), LOGISTIC)


def test_the_python_client_gets_the_same_answers(project: Project, server: Server) -> None:
    frame = make_tiers(12, seed=13).drop(columns="tier")
    with mlprod.Client(server.url, model="tiers") as client:
        answers = client.predict(frame)
        pinned = client.predict(frame, version=LOGISTIC)
    assert_answers(answers, library(project, LIGHTGBM).predict_proba(frame), LIGHTGBM)
    assert_answers(pinned, library(project, LOGISTIC).predict_proba(frame), LOGISTIC)


def test_a_binary_model_beside_it_answers_as_before(project: Project, server: Server) -> None:
    frame = make_churn_table(60, seed=11).drop(columns=["churned"])
    records = client_records(frame)
    predictions = predict(server, records, "churn")
    assert all(list(p) == ["id", "version", "score", "label"] for p in predictions)
    model = mlprod.load("churn@production", store=project.store)
    expected = model.score(records)
    np.testing.assert_allclose([p["score"] for p in predictions], expected, rtol=0, atol=1e-12)
    assert [p["label"] for p in predictions] == [bool(s >= model.threshold) for s in expected]
    churn, tiers = served_route(server, "churn"), served_route(server, "tiers")
    assert churn["classes"] == [False, True] and churn["threshold"] == model.threshold
    assert tiers["classes"] == CLASSES and tiers["threshold"] is None


@pytest.mark.slow
@pytest.mark.skipif(not tree_compiler_available(), reason="lleaves is not installed")
def test_lightgbm_multiclass_serves_on_the_fast_path_then_on_compiled_trees(
    project: Project, server: Server
) -> None:
    route = served_route(server, "tiers")["routes"][0]
    assert route["serving_path"] == "fast"
    wait_for(lambda: served_route(server, "tiers")["routes"][0]["scorer"] == "compiled trees",
             "compiled trees", timeout=180)  # fmt: skip
    metrics = httpx.get(server.url + "/metrics").text
    assert re.search(r"^mlprod_trees_compiled 1\.0$", metrics, re.MULTILINE)
    assert re.search(r"^mlprod_trees_failed 0\.0$", metrics, re.MULTILINE)
    records = tier_records(200, seed=8)
    model = library(project, LIGHTGBM)
    assert model.engine == "compiled trees"  # the library takes the trees the server left
    assert_answers(predict(server, records), model.predict_proba(records), LIGHTGBM)
    booster = mlprod.load(f"tiers@{LIGHTGBM}", store=project.store, fast=False)
    np.testing.assert_allclose(
        model.predict_proba(records), booster.predict_proba(records), rtol=0, atol=1e-9
    )


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"spend": "lots"}, "spend", "a number"),
        ({"region": {"name": "east"}}, "region", "string"),
        ({"visits": "NaN"}, "visits", "a number, not a string"),
    ],
)
def test_bad_values_are_422s_naming_the_field(
    server: Server, change: dict[str, Any], field: str, expected: str
) -> None:
    good = tier_records(2)
    response = httpx.post(
        server.url + "/v1/models/tiers/predict", json={"records": [good[0], {**good[1], **change}]}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["fields"][0]["field"] == field and expected in error["fields"][0]["expected"]
    assert error["fields"][0]["record"] == 1
    assert error["message"].startswith(f"record 1, field {field!r}: expected")


def test_a_missing_field_is_a_422_naming_it(server: Server) -> None:
    record = {k: v for k, v in tier_records(1)[0].items() if k != "region"}
    response = httpx.post(server.url + "/v1/models/tiers/predict", json={"records": [record]})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "region"


def test_openapi_documents_the_probabilities_of_the_multiclass_model_only(server: Server) -> None:
    schemas = httpx.get(server.url + "/openapi.json").json()["components"]["schemas"]
    tiers, churn = schemas["TiersPrediction"], schemas["ChurnPrediction"]
    probabilities = tiers["properties"]["probabilities"]
    assert list(probabilities["properties"]) == CLASSES
    assert probabilities["required"] == CLASSES and "probabilities" in tiers["required"]
    assert tiers["properties"]["label"]["enum"] == [*CLASSES, None]
    assert "predicted class" in tiers["properties"]["score"]["description"]
    assert "probabilities" not in churn["properties"]
    assert churn["required"] == ["id", "version", "score", "label"]


# --- the prediction log and the live counts


def test_answers_are_logged_and_their_classes_counted(project: Project, server: Server) -> None:
    predictions = predict(server, tier_records(150, seed=9))
    ids = [p["id"] for p in predictions]
    url = project.settings().store_url()

    def logged() -> pd.DataFrame:
        with Store.open(url) as store:
            frame = read_predictions(store, "tiers")
        return frame[frame["version"] == LIGHTGBM]

    wait_for(lambda: set(ids) <= set(logged()["id"]), "the answers in the prediction log")
    frame = logged().set_index("id")
    mine = frame.loc[ids]
    assert mine["score"].tolist() == [p["score"] for p in predictions]  # the top probability
    assert mine["label"].tolist() == [p["label"] for p in predictions]

    # every answer of version 1 this server gave (earlier tests' too) is logged and counted
    reference = library(project, LIGHTGBM).reference
    assert reference is not None
    bins = reference["predicted"]

    def class_counts() -> list[int]:
        with Store.open(url) as store:
            rows = read_feature_counts(store, "tiers")
        mine = [r["counts"] for r in rows if r["version"] == LIGHTGBM and r["feature"] == PREDICTED]
        return np.sum(mine, axis=0).tolist() if mine else []

    wait_for(lambda: sum(class_counts()) == len(logged()), "the class counts in the store")
    served = Counter(logged()["label"])
    top, known = bins["categories"], set(bins["known"])
    other = sum(n for label, n in served.items() if label in known - set(top))
    unseen = sum(n for label, n in served.items() if label not in known)
    assert class_counts() == [served[c] for c in top] + [other, unseen, 0]  # 0 missing
    assert set(served) == set(CLASSES)


# --- A/B between two multiclass versions, with a third as shadow


@pytest.mark.slow
def test_an_ab_test_between_multiclass_versions_with_a_multiclass_shadow(
    project: Project,
) -> None:
    run_cli(project, "deploy", "tiers", "--route", "1=50", "--route", "2=50", "--shadow", "3")
    running = Server(project, env={"MLPROD_MONITOR_FLUSH": "0.2"})
    records = tier_records(400, seed=10)
    try:
        running.wait_ready()
        predictions = predict(running, records)
        churn = predict(running, client_records(make_churn_table(5, seed=2)), "churn")
        url = project.settings().store_url()
        answered = {p["id"] for p in predictions}

        def shadows() -> pd.DataFrame:
            with Store.open(url) as store:
                frame = read_predictions(store, "tiers")
            return frame[frame["shadow_of"].isin(answered)]

        wait_for(lambda: len(shadows()) == len(records), "the shadow's logged answers")
    finally:
        running.stop()
        run_cli(project, "deploy", "tiers", "--clear")
    assert {p["version"] for p in churn} == {1} and "probabilities" not in churn[0]
    versions = Counter(p["version"] for p in predictions)
    assert set(versions) == {LIGHTGBM, LOGISTIC}  # 400 random draws at 50/50
    for version in (LIGHTGBM, LOGISTIC):
        indices = [i for i, p in enumerate(predictions) if p["version"] == version]
        proba = library(project, version).predict_proba([records[i] for i in indices])
        assert_answers([predictions[i] for i in indices], proba, version)
    frame = shadows().set_index("shadow_of").loc[[p["id"] for p in predictions]]
    assert frame["version"].tolist() == [FOREST] * len(records)
    proba = library(project, FOREST).predict_proba(records)
    np.testing.assert_allclose(frame["score"], proba.max(axis=1), rtol=0, atol=1e-12)
    assert frame["label"].tolist() == [CLASSES[i] for i in proba.argmax(axis=1)]


# --- the pieces: one answer builder, and a parity check over every class


def test_answers_take_the_first_most_probable_class_and_flag_non_finite_rows() -> None:
    scores = np.array([[0.2, 0.4, 0.4], [np.nan, 0.5, 0.5], [0.1, 0.1, 0.8]])
    got = multiclass_answers(scores, [0, 1, 2])
    assert got[0] == {"label": 1, "score": 0.4, "probabilities": {"0": 0.2, "1": 0.4, "2": 0.4}}
    assert got[1] == {"label": None, "score": None, "probabilities": None,
                      "flags": ["non_finite_score"]}  # fmt: skip
    assert got[2]["label"] == 2 and got[2]["score"] == 0.8
    with pytest.raises(ValueError, match="n x 2 matrix"):
        multiclass_answers(scores, ["a", "b"])


def test_a_scorer_is_swapped_in_only_when_every_class_matches(project: Project) -> None:
    from mlprod.bundle import compile_trees

    fresh = mlprod.load(f"tiers@{LIGHTGBM}", store=project.store, fast=False)  # no cached trees
    loaded = LoadedVersion.prepare(fresh)
    assert loaded.path == "fast" and loaded.multiclass
    booster = loaded.model.scorer

    class LastClassSkewed:
        """Right on every class but the last, off by 1e-6 there: the check must see it."""

        engine = "skewed"

        def scores(self, X: Any) -> np.ndarray:
            return np.asarray(booster.scores(X)) + np.array([0.0, 0.0, 1e-6])

    class FirstClassOnly:
        engine = "one column"

        def scores(self, X: Any) -> np.ndarray:
            return np.asarray(booster.scores(X))[:, 0]

    for wrong in (LastClassSkewed(), FirstClassOnly()):
        with pytest.raises(_MismatchError, match="differ from the reference path"):
            loaded.upgrade(wrong)
        assert loaded.scorer_name == "model"
    if not tree_compiler_available():
        pytest.skip("lleaves is not installed")
    trees = compile_trees(loaded.model, project.settings().compiled_dir())  # the server's cache
    assert trees is not None
    assert "matches the reference path" in loaded.upgrade(trees)
    assert loaded.scorer_name == "compiled trees"
    records = tier_records(50, seed=12)
    got = loaded.score_records(records, max_records=100)
    frame = pd.DataFrame(records)
    np.testing.assert_allclose(got, loaded.model.reference_score(frame), rtol=0, atol=1e-9)
