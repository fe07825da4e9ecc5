"""Compiled trees: the same scores as the booster, cached per model, swapped in only once
verified, and picked up by a running server without a restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import mlprod
from mlprod.bundle import CompiledTrees, Model, compile_trees, tree_compiler_available
from mlprod.records._fastpath import (
    _MismatchError,
    client_records,
)
from mlprod.serving import records_to_frame
from mlprod.serving._loaded import LoadedVersion
from support import SMALL_SPEC, Project, Server, records_from, write_project

pytestmark = pytest.mark.skipif(
    not tree_compiler_available(), reason="the 'compiled' extra (lleaves) is not installed"
)


@pytest.fixture(scope="module")
def lightgbm_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """churn@1, a LightGBM model, in production."""
    from mlprod.pipelines import promote, train

    # 40 trees compile in a seventh of the default 300's time and test the same paths.
    spec = SMALL_SPEC.replace(
        "[logistic_regression, lightgbm]", "[{type: lightgbm, params: {n_estimators: 40}}]"
    )
    project = write_project(tmp_path_factory.mktemp("trees"), spec=spec)
    run = train(project.spec, store=project.store)
    promote("churn", run.version, "production", store=project.store, actor="test")
    return project


@pytest.fixture
def model(lightgbm_project: Project) -> Model:
    loaded = mlprod.load("churn@production", store=lightgbm_project.store)
    assert loaded.flavor == "lightgbm"
    return loaded


def test_compiled_trees_score_like_the_booster_and_are_cached(model: Model, tmp_path: Path) -> None:
    frame, _ = model.test_data()
    matrix = model.transformer.transform(frame)
    trees = compile_trees(model, tmp_path)
    assert trees is not None
    expected = model.scorer.scores(matrix)
    np.testing.assert_allclose(trees.scores(matrix), expected, rtol=0, atol=1e-12)

    (cached,) = tmp_path.glob("*.o")  # one object file, no staging leftovers
    stamp = cached.stat().st_mtime_ns
    again = compile_trees(model, tmp_path)
    assert again is not None
    assert cached.stat().st_mtime_ns == stamp  # loaded, not compiled again
    np.testing.assert_allclose(again.scores(matrix), expected, rtol=0, atol=1e-12)

    cached.write_bytes(b"not an object file")  # a truncated or foreign cache
    repaired = compile_trees(model, tmp_path)
    assert repaired is not None
    assert cached.stat().st_size > 1000
    np.testing.assert_allclose(repaired.scores(matrix), expected, rtol=0, atol=1e-12)


def test_a_served_load_remembers_its_verdict_for_models_show(model: Model, tmp_path: Path) -> None:
    from mlprod.bundle import recall_verdict

    assert recall_verdict(tmp_path, model.files) is None
    loaded = LoadedVersion.prepare(model, tmp_path)
    assert loaded.fast is not None and model.fast_check is not None
    assert recall_verdict(tmp_path, model.files) == ("fast", model.fast_check.reason)
    assert recall_verdict(tmp_path, {**model.files, "manifest.json": "0" * 64}) is None


def test_upgrade_swaps_the_scorer_only_after_it_matches_the_reference(
    model: Model, tmp_path: Path
) -> None:
    loaded = LoadedVersion.prepare(model)
    fast = loaded.fast
    assert fast is not None
    assert fast.engine == "model"

    class Skewed:
        """A scorer whose answers are off by 1e-6: the gate must keep it out."""

        engine = "skewed"

        def scores(self, X: Any) -> np.ndarray:
            return np.asarray(model.scorer.scores(X)) + 1e-6

    with pytest.raises(_MismatchError, match="differ from the reference path"):
        loaded.upgrade(Skewed())
    assert fast.engine == "model"

    trees = compile_trees(model, tmp_path)
    assert isinstance(trees, CompiledTrees)
    summary = loaded.upgrade(trees)
    assert "matches the reference path" in summary
    assert loaded.fast is fast
    assert fast.engine == "compiled trees"
    frame, _ = model.test_data()
    records = client_records(frame.head(200))
    reference = model.score(frame.head(200))
    np.testing.assert_allclose(fast.score_records(records), reference, rtol=0, atol=1e-9)


def test_a_running_server_switches_to_compiled_trees_and_answers_the_same(
    lightgbm_project: Project, model: Model
) -> None:
    records = records_from(lightgbm_project, 50)
    fields = model.signature["fields"]
    expected = model.score(records_to_frame(records, fields, max_records=len(records)))
    server = Server(lightgbm_project, env={"MLPROD_COMPILE_TREES": "true"})
    try:
        server.wait_ready()
        before = _predict(server, records)  # answered at once, on the booster meanwhile
        np.testing.assert_allclose(before, expected, rtol=0, atol=1e-9)
        deadline = time.monotonic() + 120
        while _scorer(server) != "compiled trees":
            assert time.monotonic() < deadline, server.output()[-2000:]
            time.sleep(0.5)
        after = _predict(server, records)
        np.testing.assert_allclose(after, expected, rtol=0, atol=1e-9)
        metrics = httpx.get(server.url + "/metrics").text
        assert "mlprod_trees_compiled 1.0" in metrics
        assert "mlprod_trees_failed 0.0" in metrics
    finally:
        server.stop()
    assert list((Path(lightgbm_project.store) / "compiled").glob("*.o"))


def _predict(server: Server, records: list[dict[str, Any]]) -> np.ndarray:
    answer = httpx.post(
        server.url + "/v1/models/churn/predict", json={"records": records}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return np.array([p["score"] for p in answer.json()["predictions"]])


def _scorer(server: Server) -> str:
    (served,) = httpx.get(server.url + "/v1/models", timeout=10).json()["models"]
    return str(served["routes"][0]["scorer"])
