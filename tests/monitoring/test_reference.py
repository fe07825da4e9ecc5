"""Reference bins: set at training, and live values counted into them the same way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlprod.data import make_churn_table
from mlprod.features import json_safe
from mlprod.monitoring import Binner, build_reference
from mlprod.monitoring._reference import (
    LEGACY_SCORE_BINS,
    SCORE_BINS,
    add_score_histograms,
    bin_labels,
    numeric_counts,
    score_bin,
    score_histogram,
)

KINDS = {
    "tenure_months": "numeric",
    "monthly_charges": "numeric",
    "support_calls": "numeric",
    "plan": "categorical",
    "payment_method": "categorical",
    "has_partner": "boolean",
    "signup_date": "datetime",
}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return make_churn_table(4000, seed=11)


@pytest.fixture(scope="module")
def reference(table: pd.DataFrame) -> dict[str, object]:
    rng = np.random.default_rng(1)
    scores = rng.random(1000)
    labels = (rng.random(1000) < scores).astype(int)  # calibrated by construction
    return build_reference(table, KINDS, scores, labels)


def test_numeric_bins_are_quantiles_with_a_missing_bin(
    table: pd.DataFrame, reference: dict
) -> None:
    feature = reference["features"]["monthly_charges"]
    assert len(feature["edges"]) == 9 and feature["edges"] == sorted(feature["edges"])
    counts = np.array(feature["counts"])
    assert counts.sum() == len(table) and counts[-1] == 0  # no missing charges
    assert counts[:-1].min() >= 0.08 * len(table)  # deciles: about 10% each
    tenure = np.array(reference["features"]["tenure_months"]["counts"])
    assert tenure[-1] == table["tenure_months"].isna().sum()


def test_category_bins_are_top_other_unseen_missing(table: pd.DataFrame, reference: dict) -> None:
    plan = reference["features"]["plan"]
    shares = table["plan"].value_counts()
    assert plan["categories"] == list(shares.index)
    assert plan["counts"] == [*shares.tolist(), 0, 0, 0]
    payment = reference["features"]["payment_method"]
    assert payment["counts"][-1] == table["payment_method"].isna().sum()
    assert bin_labels(plan)[-3:] == ["other", "unseen", "missing"]
    partner = reference["features"]["has_partner"]
    assert sorted(partner["categories"]) == ["false", "true"]
    assert partner["counts"][partner["categories"].index("true")] == table["has_partner"].sum()


def test_json_records_count_exactly_like_the_frame(table: pd.DataFrame, reference: dict) -> None:
    """The server counts JSON records, batch scoring counts frames: the bins must agree."""
    binner = Binner(reference)
    records = [{k: json_safe(v) for k, v in row.items()} for row in table.to_dict("records")]
    from_records = binner.count_records(records)
    from_frame = binner.count_frame(table)
    for name, feature in reference["features"].items():
        np.testing.assert_array_equal(from_records[name], feature["counts"], err_msg=name)
        np.testing.assert_array_equal(from_frame[name], feature["counts"], err_msg=name)


@pytest.mark.parametrize("dtype", ["object", "string", "str", "category"])
def test_a_typed_column_counts_per_distinct_value_like_records(
    table: pd.DataFrame, reference: dict, dtype: str
) -> None:
    """Batch chunks count a typed column once per distinct value; the bins must be the
    ones records get, unseen and missing values included, for every column type."""
    binner = Binner(reference)
    plan = reference["features"]["plan"]["categories"]
    rng = np.random.default_rng(3)
    values = [plan[0], plan[-1], "platinum", None, plan[0], "", "5"]
    frame = pd.DataFrame({"plan": pd.Series(rng.choice(np.array(values, dtype=object), 5000))})
    partner = pd.Series(rng.random(5000) < 0.3)
    frames = [
        frame.astype({"plan": dtype}).assign(has_partner=partner),
        frame.astype({"plan": dtype}).assign(has_partner=partner.astype("boolean")),
    ]
    frames[1].loc[::7, "has_partner"] = pd.NA
    for variant in frames:
        records = [{k: json_safe(v) for k, v in row.items()} for row in variant.to_dict("records")]
        expected = binner.count_records(records)
        counted = Binner(reference).count_frame(variant)
        for name in ("plan", "has_partner"):
            np.testing.assert_array_equal(counted[name], expected[name], err_msg=name)
    numbers = pd.DataFrame({"plan": pd.Series([5, 5, 7, None], dtype="Float64")})
    spelled = binner.count_records([{"plan": "5"}, {"plan": 5}, {"plan": 7.0}, {"plan": None}])
    np.testing.assert_array_equal(Binner(reference).count_frame(numbers)["plan"], spelled["plan"])


@pytest.mark.parametrize("dtype", ["object", "str", "category", "Int64", "boolean", "many"])
def test_reference_counts_equal_a_label_per_row(dtype: str) -> None:
    """Reference bins come from labels found once per distinct value: they must be what
    labelling every row (`category_string`, `boolean_value`) and counting gives."""
    from mlprod.features import MISSING, boolean_value, category_string
    from mlprod.monitoring._reference import _feature_reference

    rng = np.random.default_rng(5)
    pools = {
        "object": np.array(["a", "b", 3, 3.0, True, None, "", "b"], dtype=object),
        "str": np.array(["x", "y", "z", None, "y"], dtype=object),
        "category": np.array(["p", "q", None, "q"], dtype=object),
        "Int64": np.array([1, 2, 2, None, 40], dtype=object),
        "boolean": np.array([True, False, None, True], dtype=object),
        "many": np.array([f"c{i}" for i in range(60)] + [None], dtype=object),  # > top 20
    }
    pool = pools[dtype]
    values = pd.Series(rng.choice(pool, 3000)).astype("str" if dtype == "many" else dtype)
    for kind in ("categorical", "boolean"):
        if kind == "boolean":
            labels = []
            for value in values.tolist():
                number = boolean_value(value)
                labels.append(MISSING if np.isnan(number) else ("true" if number else "false"))
        else:
            labels = [category_string(value) for value in values.tolist()]
        reference = _feature_reference(values, kind)
        present = pd.Series([label for label in labels if label != MISSING], dtype=object)
        assert reference["known"] == list(present.value_counts().index)
        lookup = {label: i for i, label in enumerate(reference["categories"])}
        top = len(reference["categories"])
        expected = np.zeros(top + 3, dtype=int)
        for label in labels:
            expected[top + 2 if label == MISSING else lookup.get(label, top)] += 1
        assert reference["counts"] == expected.tolist(), (dtype, kind)


def test_live_spellings_land_where_training_put_them(reference: dict) -> None:
    binner = Binner(reference)
    plan = reference["features"]["plan"]["categories"]
    records = [
        {"plan": plan[0], "has_partner": True, "support_calls": "3"},
        {"plan": "platinum", "has_partner": "yes", "support_calls": None},
        {"plan": None, "has_partner": 0, "support_calls": "many"},
    ]
    counts = binner.count_records(records)
    top = len(plan)
    assert counts["plan"].tolist() == [1] + [0] * (top - 1) + [0, 1, 1]  # top, unseen, missing
    partner = reference["features"]["has_partner"]["categories"]
    assert counts["has_partner"][partner.index("true")] == 2  # True and "yes"
    assert counts["has_partner"][partner.index("false")] == 1
    assert counts["support_calls"][-1] == 2  # null and an unparseable string are missing
    assert counts["tenure_months"][-1] == 3  # an absent field is missing too


def test_calibration_is_monotone_and_a_probability(reference: dict) -> None:
    binner = Binner(reference)
    grid = np.linspace(0, 1, 101)
    calibrated = binner.calibrated(grid)
    assert np.all(np.diff(calibrated) >= 0)
    assert calibrated.min() >= 0 and calibrated.max() <= 1
    assert abs(calibrated[50] - 0.5) < 0.15  # the scores were calibrated by construction


def test_score_bins_and_histogram() -> None:
    scores = np.array([0.0, 0.01, 0.5, 0.999, 1.0, np.nan, np.inf])
    counted = score_histogram(scores)
    assert counted.size == SCORE_BINS and counted.sum() == 5  # non-finite scores left out
    assert counted[0] == 1 and counted[-1] == 1 and counted[score_bin(0.5)] == 1
    assert score_bin(0.001) < score_bin(0.002) < score_bin(0.005) < score_bin(0.01)  # fine low
    assert score_bin(0.999) < score_bin(0.9995)  # and high
    counts = numeric_counts(np.where(np.isfinite(scores), scores, np.nan), [0.25, 0.75])
    assert counts.tolist() == [2, 1, 2, 2]  # below, between, above, missing


def test_live_score_bins_fold_exactly_into_the_legacy_equal_width_bins(
    rng: np.random.Generator,
) -> None:
    """A window opened by an older server (50 equal-width bins) takes new counts exactly."""
    scores = rng.beta(0.5, 8.0, 5000)
    legacy = np.histogram(scores[:2000], bins=LEGACY_SCORE_BINS, range=(0, 1))[0]
    summed = add_score_histograms(legacy.tolist(), score_histogram(scores[2000:]))
    expected = np.histogram(scores, bins=LEGACY_SCORE_BINS, range=(0, 1))[0]
    assert summed.tolist() == expected.tolist()
    assert add_score_histograms(score_histogram(scores), []).sum() == 5000
