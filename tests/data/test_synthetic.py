"""The quickstart table: deterministic, realistic in shape, and with a learnable signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlprod.data import make_churn_table

NUMERIC = ["tenure_months", "monthly_charges", "total_charges", "support_calls", "last_login_days"]
DTYPES = {
    "customer_id": "str",
    "signup_date": "datetime64[us]",
    "event_time": "datetime64[us]",
    "tenure_months": "float64",
    "monthly_charges": "float64",
    "total_charges": "float64",
    "support_calls": "int64",
    "last_login_days": "float64",
    "plan": "str",
    "region": "str",
    "payment_method": "str",
    "has_partner": "bool",
    "paperless_billing": "bool",
    "churned": "bool",
}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return make_churn_table()


def test_columns_and_dtypes(table: pd.DataFrame) -> None:
    assert {name: str(dtype) for name, dtype in table.dtypes.items()} == DTYPES
    assert len(table) == 20_000
    assert table["customer_id"].is_unique
    assert table["customer_id"].iloc[122] == "C000123"


def test_same_seed_same_bytes_other_seed_differs(table: pd.DataFrame) -> None:
    again = make_churn_table(seed=0)
    pd.testing.assert_frame_equal(again, table)
    hashes = pd.util.hash_pandas_object(again, index=False)
    np.testing.assert_array_equal(hashes, pd.util.hash_pandas_object(table, index=False))
    other = make_churn_table(seed=1)
    assert not other["churned"].equals(table["churned"])


def test_values_are_plausible(table: pd.DataFrame) -> None:
    assert set(table["plan"]) == {"basic", "standard", "premium", "family"}
    assert table["region"].nunique() == 6
    assert set(table["payment_method"].dropna()) == {
        "credit_card",
        "bank_transfer",
        "electronic_check",
        "mailed_check",
    }
    assert table["tenure_months"].dropna().between(0, 72).all()
    assert (table["monthly_charges"] > 0).all()
    assert (table["support_calls"] >= 0).all()
    assert (table["last_login_days"] >= 0).all()
    assert (table["signup_date"] <= table["event_time"]).all()
    span = table["event_time"].max() - table["event_time"].min()
    assert pd.Timedelta(days=500) < span < pd.Timedelta(days=560)
    assert not table["event_time"].is_monotonic_increasing


def test_missing_values_where_promised(table: pd.DataFrame) -> None:
    missing = table.isna().mean()
    assert 0.02 < missing["tenure_months"] < 0.04
    assert 0.01 < missing["payment_method"] < 0.03
    assert 0.01 < missing["total_charges"] < 0.06
    no_gaps = [c for c in table.columns if c not in {"tenure_months", "total_charges"}]
    assert missing[[c for c in no_gaps if c != "payment_method"]].eq(0).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_positive_rate_in_band(seed: int) -> None:
    rate = make_churn_table(10_000, seed=seed)["churned"].mean()
    assert 0.2 < rate < 0.3


def test_signal_is_learnable_and_trees_help(table: pd.DataFrame) -> None:
    features = pd.get_dummies(
        table[[*NUMERIC, "plan", "payment_method", "has_partner"]], dtype=float
    )
    features = features.fillna(features.median())
    y = table["churned"].to_numpy()
    fit, held = np.arange(14_000), np.arange(14_000, 20_000)
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    linear.fit(features.iloc[fit], y[fit])
    linear_auc = roc_auc_score(y[held], linear.predict_proba(features.iloc[held])[:, 1])
    trees = HistGradientBoostingClassifier(learning_rate=0.05, max_iter=200, random_state=0)
    trees.fit(features.iloc[fit], y[fit])
    trees_auc = roc_auc_score(y[held], trees.predict_proba(features.iloc[held])[:, 1])
    assert 0.75 < linear_auc < 0.88
    assert 0.80 < trees_auc < 0.90
    assert trees_auc > linear_auc


def test_short_tenure_churns_more(table: pd.DataFrame) -> None:
    short = table.loc[table["tenure_months"] < 6, "churned"].mean()
    long = table.loc[table["tenure_months"] > 36, "churned"].mean()
    assert short > 2 * long


def test_drift_moves_the_inputs(table: pd.DataFrame) -> None:
    drifted = make_churn_table(seed=0, drift=1.0)
    std = table["monthly_charges"].std(ddof=0)
    same_plan = drifted["plan"] == table["plan"]
    assert same_plan.mean() > 0.75
    shift = drifted["monthly_charges"] - table["monthly_charges"]
    np.testing.assert_allclose(shift[same_plan], std, atol=0.011)
    base_share = (table["plan"] == "premium").mean()
    assert (drifted["plan"] == "premium").mean() == pytest.approx(2 * base_share, rel=0.1)
    assert drifted["payment_method"].isna().all()
    assert str(drifted["payment_method"].dtype) == "str"
    pd.testing.assert_series_equal(drifted["event_time"], table["event_time"])


def test_small_drift_keeps_payment_method(table: pd.DataFrame) -> None:
    drifted = make_churn_table(seed=0, drift=0.5)
    assert drifted["payment_method"].isna().mean() < 0.03
    same_plan = drifted["plan"] == table["plan"]
    shift = drifted["monthly_charges"] - table["monthly_charges"]
    std = table["monthly_charges"].std(ddof=0)
    np.testing.assert_allclose(shift[same_plan], 0.5 * std, atol=0.011)


@pytest.mark.parametrize(("kwargs", "word"), [({"n_rows": 0}, "n_rows"), ({"drift": -1}, "drift")])
def test_rejects_bad_arguments(kwargs: dict[str, float], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        make_churn_table(**kwargs)  # type: ignore[arg-type]
