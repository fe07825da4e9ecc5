"""The model as a library: DataFrames, lists of records and one record, on the fast path.

Every answer must be the full pipeline's (to 1e-9), whichever path gives it, and a bad
record must get the server's error, word for word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mlprod
from mlprod.bundle import Model, compile_trees, tree_compiler_available
from mlprod.errors import SchemaError
from mlprod.records import client_records, records_to_frame
from mlprod.serving import LoadedVersion, score_records
from mlprod.settings import Settings
from support import SMALL_SPEC, Project, write_project

FLAVORS = {"lightgbm": 1, "xgboost": 2, "logistic_regression": 3}
# 40 trees: compiling them takes a seventh of the default 300's time, on the same paths.
CANDIDATES = {
    **{name: name for name in FLAVORS},
    "lightgbm": "{type: lightgbm, params: {n_estimators: 40}}",
}
TOL = 1e-9


@pytest.fixture(scope="module")
def flavors(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """churn@1 LightGBM, @2 XGBoost, @3 logistic regression, on 3,000 rows."""
    from mlprod.pipelines import train

    project = write_project(tmp_path_factory.mktemp("library"))
    for candidate in FLAVORS:
        spec = SMALL_SPEC.replace("[logistic_regression, lightgbm]", f"[{CANDIDATES[candidate]}]")
        project.spec.write_text(spec, encoding="utf-8")
        train(project.spec, store=project.store)
    return project


def _load(project: Project, flavor: str, **options: Any) -> Model:
    return mlprod.load(f"churn@{FLAVORS[flavor]}", store=project.store, **options)


def _spellings(frame: pd.DataFrame) -> dict[str, Any]:
    """The same rows as a caller may hold them."""
    records = client_records(frame)
    parsed = frame.assign(
        signup_date=pd.to_datetime(frame["signup_date"], utc=True, format="mixed")
    )
    return {
        "stored frame": frame,
        "frame of client records": pd.DataFrame(records),
        "object frame": frame.astype(object),
        "parsed times, another zone": parsed.assign(
            signup_date=parsed["signup_date"].dt.tz_convert("Asia/Tokyo")
        ),
        "categorical and nullable dtypes": frame.astype(
            {"plan": "category", "support_calls": "Int64", "region": object}
        ),
        "records": records,
    }


@pytest.mark.parametrize("flavor", list(FLAVORS))
def test_every_input_scores_as_the_full_pipeline(flavors: Project, flavor: str) -> None:
    model = _load(flavors, flavor)
    assert model.path == "fast", model.fast_check
    fast = model.fast_check.fast if model.fast_check else None
    assert fast is not None and fast.frames is not None, fast and fast.frames_verified
    frame, _ = model.test_data()
    frame = frame.head(300).reset_index(drop=True)
    expected = model.reference_score(frame)
    assert len(set(np.round(expected, 6))) > 50  # real, varied scores
    for label, X in _spellings(frame).items():
        got = model.predict_proba(X)
        np.testing.assert_allclose(got[:, 1], expected, rtol=0, atol=TOL, err_msg=label)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        negative, positive = model.classes
        labels = np.where(expected >= model.threshold, positive, negative)
        np.testing.assert_array_equal(model.predict(X), labels, err_msg=label)
    one = [model.score(frame.iloc[[i]])[0] for i in range(20)]
    np.testing.assert_allclose(one, expected[:20], rtol=0, atol=TOL)


def test_the_fast_path_takes_the_frame_itself_not_the_full_pipeline(flavors: Project) -> None:
    """The sibling of the parity test: the fast path really answers (the matrix is its own)."""
    model = _load(flavors, "lightgbm")
    fast = model.fast_check.fast if model.fast_check else None
    assert fast is not None and fast.frames is not None
    frame, _ = model.test_data()
    matrix = fast.frames.encode(frame.head(50))
    assert matrix is not None
    np.testing.assert_array_equal(matrix, model.transformer.transform(frame.head(50)))
    # a frame the encoder declines goes to the full pipeline, which answers as it did
    assert fast.frames.encode(frame.drop(columns=["plan"])) is None
    with pytest.raises(SchemaError, match="missing feature column"):
        model.score(frame.drop(columns=["plan"]))


def test_one_record_answers_as_the_server_does(flavors: Project) -> None:
    model = _load(flavors, "lightgbm")
    frame, _ = model.test_data()
    records = client_records(frame.head(30))
    served = score_records(LoadedVersion.prepare(model), records, 100)["predictions"]
    for record, answer in zip(records, served, strict=True):
        got = model.predict_record(record)
        assert got["label"] == answer["label"]
        assert got["score"] == pytest.approx(answer["score"], abs=TOL)
    assert {type(model.predict_record(r)["label"]) for r in records} == {bool}


def test_one_record_and_one_row_take_their_own_route_to_the_same_matrix(
    flavors: Project,
) -> None:
    """A single record (or one-row frame) is assembled in Python floats: the matrix must be
    the batch's row bit for bit, and the parity check must have covered that route."""
    model = _load(flavors, "lightgbm")
    fast = model.fast_check.fast if model.fast_check else None
    assert fast is not None and fast.frames is not None
    assert "also one by one" in fast.verified and "framed alone" in fast.frames_verified
    frame, _ = model.test_data()
    frame = frame.head(40).reset_index(drop=True)
    records = client_records(frame)
    batch, expected = fast.encode(records), model.transformer.transform(frame)
    for i, record in enumerate(records):
        assert fast.encode([record]).tobytes() == batch[i : i + 1].tobytes()
        one_row = fast.frames.encode(frame.iloc[[i]])
        assert one_row is not None and one_row.tobytes() == expected[i : i + 1].tobytes()
    scores = model.score(frame)
    np.testing.assert_array_equal(
        model.predict_proba(frame), np.column_stack([1.0 - scores, scores])
    )  # fmt: skip
    np.testing.assert_array_equal(model.predict_proba(records[:1])[0], [1 - scores[0], scores[0]])
    # what the batch route refuses, the single route refuses, with the server's words
    for bad in (float("nan"), float("inf"), 10**400):
        with pytest.raises(SchemaError, match="record 0, field 'tenure_months': expected a finite"):
            model.predict_record({**records[0], "tenure_months": bad})
    assert fast.frames.encode(frame.iloc[[0]].assign(tenure_months=np.inf)) is None


def test_a_model_opened_without_prepare_takes_the_full_pipeline(flavors: Project) -> None:
    loaded = _load(flavors, "xgboost", fast=False)
    assert loaded.path == "reference" and loaded.engine == "reference"
    frame, _ = loaded.test_data()
    prepared = _load(flavors, "xgboost")
    assert prepared.path == "fast" and prepared.engine == "model"
    np.testing.assert_allclose(
        loaded.score(frame), prepared.score(frame), rtol=0, atol=TOL
    )  # fmt: skip


def test_a_model_the_fast_path_cannot_mirror_falls_back_visibly(flavors: Project) -> None:
    from sklearn.preprocessing import FunctionTransformer

    model = _load(flavors, "logistic_regression", fast=False)
    opaque_transformer = FunctionTransformer(model.transformer.transform)
    opaque = Model(model.folder, model.manifest, opaque_transformer, model.scorer)
    check = opaque.prepare()
    assert opaque.path == "reference" and check.fast is None
    assert "not compiled" in check.reason
    frame, _ = model.test_data()
    records = client_records(frame.head(40))
    np.testing.assert_allclose(opaque.score(records), model.reference_score(frame.head(40)))
    np.testing.assert_allclose(opaque.score(frame), model.reference_score(frame))


BAD = [
    ({"tenure_months": "12"}, "tenure_months", "a number, not a string"),
    ({"plan": None, "has_partner": "maybe"}, "has_partner", "a boolean"),
    ({"signup_date": "yesterday"}, "signup_date", "an ISO 8601 date-time string"),
]


@pytest.mark.parametrize(("change", "field", "expected"), BAD)
def test_bad_records_get_the_servers_error_on_both_paths(
    flavors: Project, change: dict[str, Any], field: str, expected: str
) -> None:
    model = _load(flavors, "lightgbm")
    unprepared = _load(flavors, "lightgbm", fast=False)
    frame, _ = model.test_data()
    records = client_records(frame.head(3))
    records[1] = {**records[1], **change}
    with pytest.raises(SchemaError) as server:
        records_to_frame(records, model.contract, max_records=100)
    for candidate in (model, unprepared):
        for call in (candidate.predict_proba, candidate.predict):
            with pytest.raises(SchemaError) as raised:
                call(records)
            assert str(raised.value) == str(server.value)
            assert raised.value.fields == server.value.fields
        with pytest.raises(SchemaError) as single:
            candidate.predict_record(records[1])
        problem = single.value.fields[0]
        assert problem["field"] == field and problem["expected"].startswith(expected)
    missing = {k: v for k, v in records[0].items() if k != "plan"}
    with pytest.raises(SchemaError, match="record 0, field 'plan': expected this field"):
        model.predict_record(missing)


@pytest.mark.parametrize(
    ("X", "message"),
    [
        ({"plan": "basic"}, "got one dict: use predict_record"),
        ([], "got an empty list"),
        ("plan=basic", "got str"),
        (np.zeros((2, 3)), "got ndarray"),
    ],
)
def test_inputs_it_cannot_read_are_refused_with_a_clear_message(
    flavors: Project, X: Any, message: str
) -> None:
    model = _load(flavors, "lightgbm")
    with pytest.raises(SchemaError, match=message):
        model.predict_proba(X)


@pytest.mark.skipif(not tree_compiler_available(), reason="the 'compiled' extra is missing")
def test_cached_compiled_trees_take_over_once_they_pass(flavors: Project) -> None:
    model = _load(flavors, "lightgbm", fast=False)
    folder = Settings(store=str(flavors.store)).compiled_dir()
    assert compile_trees(model, Path(folder)) is not None  # what a server would leave
    prepared = _load(flavors, "lightgbm")
    assert prepared.engine == "compiled trees"
    frame, _ = model.test_data()
    np.testing.assert_allclose(
        prepared.score(frame), model.reference_score(frame), rtol=0, atol=TOL
    )  # fmt: skip
    np.testing.assert_allclose(
        prepared.score(client_records(frame)), model.reference_score(frame), rtol=0, atol=TOL
    )
