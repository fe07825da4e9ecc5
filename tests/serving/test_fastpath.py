"""The fast predict path gives the reference path's scores, or steps aside and says why."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import mlprod
from bundle_kit import linear_model
from mlprod.bundle import Model
from mlprod.errors import SchemaError
from mlprod.features import FeatureTransformer
from mlprod.records._coerce import datetime_parts
from mlprod.records._fastpath import (
    FastPath,
    check_fast_path,
    client_records,
    compile_fast_path,
)
from mlprod.serving import records_to_frame, score_records
from mlprod.serving._loaded import LoadedVersion
from support import SMALL_SPEC, Project, Server, write_project

FLAVORS = {"lightgbm": 1, "xgboost": 2, "logistic_regression": 3}
TOL = 1e-9


@pytest.fixture(scope="module")
def flavors(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """churn@1 LightGBM (production), @2 XGBoost, @3 logistic regression, on 3,000 rows."""
    from mlprod.pipelines import promote, train

    project = write_project(tmp_path_factory.mktemp("flavors"))
    for candidate in FLAVORS:
        spec = SMALL_SPEC.replace("[logistic_regression, lightgbm]", f"[{candidate}]")
        project.spec.write_text(spec, encoding="utf-8")
        train(project.spec, store=project.store)
    promote("churn", 1, "production", store=project.store, actor="test", force=True, reason="t")
    return project


def _load(project: Project, flavor: str) -> Model:
    model = mlprod.load(f"churn@{FLAVORS[flavor]}", store=project.store)
    assert model.flavor == ("sklearn" if flavor == "logistic_regression" else flavor)
    return model


@pytest.fixture(scope="module")
def lightgbm(flavors: Project) -> tuple[Model, FastPath]:
    """churn@1 and its fast path, checked once for the tests that only feed them records
    (each load and compile verifies parity again: seconds per test case)."""
    model = _load(flavors, "lightgbm")
    return model, _fast(model)


def _fast(model: Model) -> FastPath:
    fast = compile_fast_path(model)
    assert fast is not None, check_fast_path(model).reason
    return fast


def _reference(model: Model, records: list[Any]) -> np.ndarray:
    return model.score(records_to_frame(records, model.signature["fields"], max_records=10**6))


@pytest.mark.parametrize("flavor", list(FLAVORS))
def test_fast_path_reproduces_the_test_set_exactly(flavors: Project, flavor: str) -> None:
    model = _load(flavors, flavor)
    fast = _fast(model)
    frame, _ = model.test_data()
    records = client_records(frame)
    assert any(r["tenure_months"] is None for r in records)  # missing values are exercised
    np.testing.assert_array_equal(fast.encode(records), model.transformer.transform(frame))
    got = fast.score_records(records, max_records=len(records))
    np.testing.assert_allclose(got, model.score(frame), rtol=0, atol=TOL)
    one_by_one = [fast.score_records([r])[0] for r in records[:50]]
    np.testing.assert_allclose(one_by_one, got[:50], rtol=0, atol=TOL)


def _adversarial(base: dict[str, Any]) -> list[dict[str, Any]]:
    changes: list[dict[str, Any]] = [
        {"plan": "platinum-plus", "region": "atlantis", "payment_method": "barter"},
        dict.fromkeys(base),  # nulls everywhere
        {"plan": 5}, {"plan": 5.0}, {"plan": "5"}, {"plan": True}, {"plan": 10**17 + 1},
        {"region": ""}, {"payment_method": "__missing__"}, {"payment_method": None},
        {"has_partner": "yes"}, {"has_partner": 0}, {"has_partner": 1}, {"has_partner": " TRUE "},
        {"paperless_billing": "n"}, {"paperless_billing": "0"}, {"paperless_billing": False},
        {"signup_date": "2021-03-04T23:30:00-05:00"}, {"signup_date": "2021-03-04T01:00:00+09:00"},
        {"signup_date": "2021-03-04T12:00:00Z"}, {"signup_date": "2021-03-04 12:00"},
        {"signup_date": "2020-02-29"}, {"signup_date": "2021-03-04T12:00:00.123456789+01:30"},
        {"tenure_months": 0},
        {"monthly_charges": 10**20}, {"total_charges": -1e9}, {"support_calls": 2**60 + 1},
        {"unexpected": [1, 2]},
    ]  # fmt: skip
    return [{**base, **change} for change in changes]


@pytest.mark.parametrize("flavor", list(FLAVORS))
def test_adversarial_records_score_as_the_reference_scores_them(
    flavors: Project, flavor: str
) -> None:
    model = _load(flavors, flavor)
    fast = _fast(model)
    base = client_records(model.test_data()[0].head(1))[0]
    records = _adversarial(base)
    expected = _reference(model, records)
    np.testing.assert_allclose(fast.score_records(records), expected, rtol=0, atol=TOL)
    for record, score in zip(records, expected, strict=True):  # alone, as in a 1-record request
        np.testing.assert_allclose(fast.score_records([record]), [score], rtol=0, atol=TOL)
        assert np.allclose(_reference(model, [record]), [score], rtol=0, atol=TOL)
    # unusual ISO spellings go through pandas, batch and all, as the reference does
    dates = ("20240501T101010", "2024-W18-3", "2024-05-01T12Z", "2024-05-01")
    odd = [{**base, "signup_date": d} for d in dates]
    np.testing.assert_allclose(fast.score_records(odd), _reference(model, odd), rtol=0, atol=TOL)
    assert len(set(fast.score_records(odd)[:3].tolist())) == 1  # the same instant, 3 spellings


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"tenure_months": "12.5"}, "a number, not a string"),
        ({"tenure_months": " 7 "}, "a number, not a string"),
        ({"last_login_days": "1_000"}, "a number, not a string"),
        ({"monthly_charges": ""}, "a number, not a string"),
        ({"signup_date": "now"}, "ISO 8601"),
        ({"signup_date": "today"}, "ISO 8601"),
        ({"signup_date": "May 1, 2024"}, "ISO 8601"),
        ({"signup_date": ""}, "ISO 8601"),
    ],
)
def test_values_are_never_guessed_at_on_either_path(
    lightgbm: tuple[Model, FastPath], change: dict[str, Any], expected: str
) -> None:
    model, fast = lightgbm
    base = client_records(model.test_data()[0].head(1))[0]
    record = {**base, **change}
    (name,) = change
    for score in (fast.score_records, lambda r: _reference(model, r)):
        with pytest.raises(SchemaError) as caught:
            score([base, record])
        (problem,) = caught.value.fields
        assert problem["record"] == 1 and problem["field"] == name
        assert expected in str(problem["expected"]) and problem["got"] == repr(change[name])


def test_strict_iso_dates_split_into_the_parts_pandas_gives(rng: np.random.Generator) -> None:
    from mlprod.records._coerce import iso_parts
    from mlprod.records._fastpath import _datetime_values

    seconds = rng.integers(-2_000_000_000, 4_000_000_000, size=600)  # years 1906 to 2096
    layouts = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d"]
    offsets = ["", "Z", "+05:30", "-08:00", "+0100", "+14:00", "-11:45"]
    texts = []
    for i, stamp in enumerate(pd.to_datetime(seconds, unit="s")):
        layout = layouts[i % len(layouts)]
        offset = "" if layout == "%Y-%m-%d" else offsets[i % len(offsets)]
        texts.append(stamp.strftime(layout) + offset)
    assert all(iso_parts(text) is not None for text in texts)  # all on the fast parser
    fast = np.array(_datetime_values(texts), dtype=float).T
    np.testing.assert_array_equal(fast, datetime_parts(pd.Series(texts)))


def _synthetic_model(folder: Path, rng: np.random.Generator) -> Model:
    n = 600
    cities = [f"city-{i}" for i in range(45)]
    weights = np.array([30.0] * 20 + [1.0] * 25)  # 20 common, 25 rare: infrequent + cap
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),  # never missing at fit: no indicator column
            "gap": np.where(rng.random(n) < 0.3, np.nan, rng.normal(size=n)),
            "empty": np.full(n, np.nan),  # always missing at fit: kept, filled with 0
            "city": rng.choice(cities, size=n, p=weights / weights.sum()),
            "code": rng.choice(np.array([1.0, 2.0, 3.0, np.nan]), size=n),
            "flag": rng.choice(np.array([True, False, None], dtype=object), size=n),
            "when": [
                None if i % 9 == 0 else f"20{10 + i % 15}-0{1 + i % 9}-1{i % 10}T0{i % 10}:30:00"
                for i in range(n)
            ],
        }
    )
    kinds = {"x": "numeric", "gap": "numeric", "empty": "numeric", "city": "categorical",
             "code": "categorical", "flag": "boolean", "when": "datetime"}  # fmt: skip
    return linear_model(folder, "synthetic", frame, kinds, lambda width: rng.normal(size=width))


def test_rare_unseen_and_empty_columns_encode_as_the_transformer_does(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    model = _synthetic_model(tmp_path / "bundle", rng)
    onehot = model.transformer.encoder_.named_transformers_["cat"].steps[-1][1]
    assert onehot.infrequent_categories_[0] is not None  # rare cities share a column
    fast = _fast(model)
    base = client_records(model.test_data()[0].head(1))[0]
    changes: list[dict[str, Any]] = [
        {"city": "city-44"}, {"city": "city-0"}, {"city": "nowhere"}, {"city": None},
        {"code": 2}, {"code": "2"}, {"code": 2.0}, {"code": 7}, {"code": None},
        {"x": None}, {"gap": None}, {"empty": 3.5}, {"empty": None}, {"flag": None},
        {"flag": "no"}, {"when": None}, {"when": "2024-01-01T00:30:00+01:00"},
    ]  # fmt: skip
    records = [{**base, **change} for change in changes]
    frame = records_to_frame(records, fast.fields, max_records=100)
    np.testing.assert_array_equal(fast.encode(records), model.transformer.transform(frame))
    np.testing.assert_allclose(fast.score_records(records), model.score(frame), rtol=0, atol=TOL)


BAD: list[Any] = [
    [],
    {"records": 1},
    [1],
    [{"tenure_months": 3}],  # every other field missing
    "tenure_months=nan",
]


@pytest.mark.parametrize(
    "change",
    [
        {"tenure_months": float("nan")},
        {"tenure_months": float("inf")},
        {"tenure_months": 10**400},
        {"tenure_months": True},
        {"tenure_months": "twelve"},
        {"has_partner": "maybe"},
        {"has_partner": 2},
        {"plan": {"name": "basic"}},
        {"plan": float("nan")},
        {"signup_date": "yesterday-ish"},
        {"signup_date": 20240501},
        {"signup_date": "2024-02-30"},
    ],
)
def test_invalid_values_get_the_reference_422_word_for_word(
    lightgbm: tuple[Model, FastPath], change: dict[str, Any]
) -> None:
    model, fast = lightgbm
    base = client_records(model.test_data()[0].head(2))
    records = [base[0], {**base[1], **change}]
    with pytest.raises(SchemaError) as reference:
        records_to_frame(records, model.signature["fields"], max_records=100)
    with pytest.raises(SchemaError) as served:
        fast.score_records(records, max_records=100)
    assert (served.value.message, served.value.fields) == (
        reference.value.message,
        reference.value.fields,
    )
    assert served.value.fields[0]["record"] == 1


@pytest.mark.parametrize("records", [*BAD, "too many"])
def test_malformed_batches_get_the_reference_422(
    lightgbm: tuple[Model, FastPath], records: Any
) -> None:
    model, fast = lightgbm
    if records == "too many":
        records = client_records(model.test_data()[0].head(3))
    with pytest.raises(SchemaError) as reference:
        records_to_frame(records, model.signature["fields"], max_records=2)
    with pytest.raises(SchemaError) as served:
        fast.score_records(records, max_records=2)
    assert served.value.message == reference.value.message


class _Nudged(FeatureTransformer):
    """A transformer whose output the fast path cannot know about: verification must catch it."""

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        out = super().transform(X)
        out[:, 0] += 1.0
        return out


def _with_transformer(model: Model, transformer: Any) -> Model:
    other = Model(model.folder, model.manifest, transformer, model.scorer)
    other.version = model.version
    return other


@pytest.mark.parametrize("flavor", ["lightgbm", "logistic_regression"])
def test_a_version_the_fast_path_cannot_reproduce_serves_on_the_reference_path(
    flavors: Project, flavor: str, caplog: pytest.LogCaptureFixture
) -> None:
    from sklearn.preprocessing import FunctionTransformer

    model = _load(flavors, flavor)
    nudged = _Nudged(kinds=model.transformer.kinds)
    nudged.__dict__.update({k: v for k, v in vars(model.transformer).items() if k.endswith("_")})
    opaque = FunctionTransformer(model.transformer.transform)
    for transformer, reason in [(nudged, "differ from the reference"), (opaque, "not compiled")]:
        other = _with_transformer(model, transformer)
        with caplog.at_level(logging.WARNING, logger="mlprod.serving"):
            loaded = LoadedVersion.prepare(other)
        assert loaded.fast is None and loaded.path == "reference"
        assert reason in check_fast_path(other).reason
        assert "serves on the reference path" in caplog.text
        frame, _ = model.test_data()
        records = client_records(frame.head(20))
        answer = score_records(loaded, records, 100)  # what the server answers
        served = [p["score"] for p in answer["predictions"]]
        np.testing.assert_allclose(served, other.score(frame.head(20)), rtol=0, atol=1e-12)


def test_client_records_are_what_a_client_sends() -> None:
    frame = pd.DataFrame(
        {
            "n": [1.5, np.nan],
            "i": pd.array([3, pd.NA], dtype="Int64"),
            "s": ["a", None],
            "b": [True, False],
            "t": pd.to_datetime(["2024-05-01 12:00", None]).tz_localize("Europe/Paris"),
        }
    )
    assert client_records(frame) == [
        {"n": 1.5, "i": 3, "s": "a", "b": True, "t": "2024-05-01T12:00:00+02:00"},
        {"n": None, "i": None, "s": None, "b": False, "t": None},
    ]


@pytest.fixture(scope="module")
def flavors_server(flavors: Project) -> Iterator[Server]:
    running = Server(flavors)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def _load_pinned(url: str, record: dict[str, Any]) -> None:
    """The first request to a pinned version loads it, within that request's time budget:
    on a busy machine the load can outlast it (503 "loading", the load carries on). Parity
    is the point here, so wait until the version answers."""
    deadline = time.monotonic() + 120
    post = httpx.post
    while (status := post(url, json={"records": [record]}, timeout=30).status_code) in (503, 504):
        assert time.monotonic() < deadline, "the pinned version never loaded"
        time.sleep(0.5)
    assert status == 200


def test_served_scores_equal_the_loaded_models_over_rest(
    flavors: Project, flavors_server: Server
) -> None:
    models = httpx.get(flavors_server.url + "/v1/models").json()["models"]
    assert models[0]["routes"][0]["serving_path"] == "fast"
    model = mlprod.load("churn@production", store=flavors.store)
    frame = pd.read_csv(flavors.root / "customers.csv").drop(columns=["churned"])
    records = client_records(frame.head(1200))
    records += _adversarial(records[0])
    served: list[float] = []
    for size in (1, 7, 64, 65, 300):
        batch, records = records[:size], records[size:]
        url = flavors_server.url + "/v1/models/churn/predict"
        answer = httpx.post(url, json={"records": batch}, timeout=30).json()
        served += [p["score"] for p in answer["predictions"]]
    pinned = flavors_server.url + "/v1/models/churn/versions/2/predict"  # XGBoost
    _load_pinned(pinned, records[0])
    while records:
        batch, records = records[:500], records[500:]
        url = pinned
        answer = httpx.post(url, json={"records": batch}, timeout=30).json()
        served += [p["score"] for p in answer["predictions"]]
    everything = client_records(frame.head(1200)) + _adversarial(client_records(frame.head(1))[0])
    first = 1 + 7 + 64 + 65 + 300
    expected = np.concatenate(
        [
            model.score(pd.DataFrame(everything[:first])),
            _reference(_load(flavors, "xgboost"), everything[first:]),
        ]
    )
    assert len(served) == len(everything)
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-12)


def test_models_show_says_which_path_each_version_serves_with(flavors: Project) -> None:
    def show(*extra: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "mlprod", "models", "show", "churn", *extra],
            cwd=flavors.root,
            env=flavors.env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return done.stdout

    versions = json.loads(show("--json"))["versions"]
    assert [v["serving_path"] for v in versions] == ["fast", "fast", "fast"]
    assert "matches the reference path" in versions[0]["serving_path_reason"]
    table = show()
    assert "path" in table and table.count("fast") >= 3


def test_an_attached_fast_path_does_not_keep_its_model_alive(flavors: Project) -> None:
    """A pool drops retired versions; nothing else may pin them (or their fast paths)."""
    import gc
    import weakref

    model = _load(flavors, "lightgbm")
    loaded = LoadedVersion.prepare(model)
    assert loaded.fast is not None
    alive = weakref.ref(model)
    del model, loaded
    gc.collect()
    assert alive() is None
