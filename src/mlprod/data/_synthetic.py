"""A seeded, churn-like customer table for the quickstart, the docs and the tests.

Real enough to exercise every stage: mixed column kinds, missing values, an event-time
column, a target with a learnable but noisy signal (ROC AUC about 0.8-0.85 on held-out
rows, boosted trees a little ahead of logistic regression thanks to thresholds and
interactions), and a `drift` knob for monitoring tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PLANS = ("basic", "standard", "premium", "family")
REGIONS = ("north", "south", "east", "west", "central", "coastal")
PAYMENT_METHODS = ("credit_card", "bank_transfer", "electronic_check", "mailed_check")
_PLAN_SHARES = np.array([0.35, 0.35, 0.15, 0.15])
_PLAN_PRICE = np.array([28.0, 55.0, 92.0, 78.0])
_PLAN_EFFECT = np.array([0.35, 0.0, -0.2, -0.65])
_PAYMENT_SHARES = np.array([0.3, 0.25, 0.3, 0.15])
_PAYMENT_EFFECT = np.array([-0.5, -0.4, 0.75, 0.15])
_START = np.datetime64("2024-01-01T00:00:00", "us")
_SPAN_SECONDS = 548 * 86_400  # about 18 months of snapshots
_DAYS_PER_MONTH = 30.44
_INTERCEPT = 1.1


def make_churn_table(n_rows: int = 20_000, seed: int = 0, *, drift: float = 0.0) -> pd.DataFrame:
    """`n_rows` customers with a ``churned`` label; identical output for identical arguments.

    Columns: customer_id (str, unique), signup_date and event_time (datetime64[us]),
    tenure_months (float, ~3% missing), monthly_charges (float), total_charges (float,
    missing for customers with 0 months of tenure and ~1.5% more), support_calls (int64),
    last_login_days (float), plan, region, payment_method (str; payment_method ~2%
    missing), has_partner, paperless_billing and churned (bool, ~25% True).

    ``drift`` shifts the inputs the way production data drifts, for monitoring tests:
    monthly_charges move up by ``drift`` standard deviations (of the undrifted table),
    the share of the "premium" plan is multiplied by ``1 + min(drift, 1)`` (doubled
    from 1 on), and from ``drift >= 1`` payment_method is entirely missing (an upstream
    feed broke). The label follows the same rule from the drifted inputs (covariate
    shift, not a new concept; higher charges raise the churn rate, to ~43% at 1), and
    the random draws do not depend on ``drift``, so rows line up with the undrifted
    table of the same seed.

    Example::

        df = make_churn_table(5_000, seed=1)
        live = make_churn_table(5_000, seed=2, drift=1.0)
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    if drift < 0:
        raise ValueError(f"drift must be >= 0, got {drift}")
    rng = np.random.default_rng(seed)
    draws = _draw(rng, n_rows)
    plan = _plan(draws["plan_u"], drift)
    charges = _charges(draws["plan_u"], draws["charge_noise"], drift)
    payment = np.searchsorted(np.cumsum(_PAYMENT_SHARES)[:-1], draws["payment_u"], side="right")
    tenure = draws["tenure"]
    churned = _churn_probability(draws, plan, payment, charges) > draws["churn_u"]
    return pd.DataFrame(
        {
            "customer_id": _customer_ids(n_rows),
            "signup_date": _signup_dates(draws["event_time"], tenure),
            "event_time": draws["event_time"],
            "tenure_months": np.where(draws["tenure_missing_u"] < 0.03, np.nan, tenure),
            "monthly_charges": charges,
            "total_charges": _total_charges(draws, charges),
            "support_calls": draws["support_calls"],
            "last_login_days": draws["last_login_days"],
            "plan": _labels(PLANS, plan),
            "region": _labels(REGIONS, draws["region"]),
            "payment_method": _payment_labels(payment, draws["payment_missing_u"], drift),
            "has_partner": draws["has_partner"],
            "paperless_billing": draws["paperless_u"] < np.where(payment == 2, 0.8, 0.5),
            "churned": churned,
        }
    )


def _draw(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Every random number the table needs, in a fixed order so `drift` cannot reorder them."""
    draws: dict[str, np.ndarray] = {
        name: rng.random(n) for name in ("plan_u", "payment_u", "payment_missing_u")
    }
    draws["region"] = rng.integers(0, len(REGIONS), n)
    draws["tenure"] = np.round(np.clip(rng.gamma(1.1, 22.0, n), 0, 72))
    draws["tenure_missing_u"] = rng.random(n)
    draws["charge_noise"] = rng.normal(0.0, 0.15, n)
    draws["total_noise"] = rng.normal(1.0, 0.03, n)
    draws["total_missing_u"] = rng.random(n)
    draws["has_partner"] = rng.random(n) < 0.48
    draws["paperless_u"] = rng.random(n)
    unhappy = rng.normal(0.0, 1.0, n)  # unobserved dissatisfaction behind calls and logins
    draws["unhappy"] = unhappy
    draws["support_calls"] = rng.poisson(np.exp(0.1 + 0.45 * unhappy)).astype(np.int64)
    draws["last_login_days"] = np.round(rng.exponential(7.0 * np.exp(0.35 * unhappy)), 1)
    seconds = rng.integers(0, _SPAN_SECONDS, n).astype("timedelta64[s]")
    draws["event_time"] = _START + seconds
    draws["noise"] = rng.normal(0.0, 0.55, n)
    draws["churn_u"] = rng.random(n)
    return draws


def _plan(u: np.ndarray, drift: float) -> np.ndarray:
    shares = _PLAN_SHARES.copy()
    shares[2] *= 1.0 + min(drift, 1.0)
    others = [0, 1, 3]
    shares[others] *= (1.0 - shares[2]) / shares[others].sum()
    plan: np.ndarray = np.searchsorted(np.cumsum(shares)[:-1], u, side="right")
    return plan


def _charges(plan_u: np.ndarray, noise: np.ndarray, drift: float) -> np.ndarray:
    """Plan price with multiplicative noise (never negative), moved up by `drift` sd.

    The sd is that of the undrifted table, so ``drift=1`` means one sd of the data a
    model was trained on, whatever the drifted plan mix adds on top.
    """
    charges = _PLAN_PRICE[_plan(plan_u, drift)] * np.exp(noise)
    if drift:
        charges += drift * float(np.std(_PLAN_PRICE[_plan(plan_u, 0.0)] * np.exp(noise)))
    rounded: np.ndarray = np.round(charges, 2)
    return rounded


def _churn_probability(
    draws: dict[str, np.ndarray], plan: np.ndarray, payment: np.ndarray, charges: np.ndarray
) -> np.ndarray:
    """Logistic in the inputs, with a step and two interactions that trees find easily."""
    tenure, calls = draws["tenure"], draws["support_calls"]
    login = draws["last_login_days"]
    logit = (
        _INTERCEPT
        - 1.2 * np.log1p(tenure)
        + 0.028 * (charges - 60.0)
        + 0.5 * calls
        + _PLAN_EFFECT[plan]
        + _PAYMENT_EFFECT[payment]
        + 2.0 * (login > 21)
        + 0.015 * login
        + 2.0 * ((tenure < 6) & (calls >= 3))
        + 1.7 * ((plan == 2) & (charges > 100))
        - 0.5 * draws["has_partner"]
        + 0.28 * draws["unhappy"]
        + draws["noise"]
    )
    probability: np.ndarray = 1.0 / (1.0 + np.exp(-logit))
    return probability


def _customer_ids(n: int) -> list[str]:
    width = max(6, len(str(n)))
    return [f"C{i:0{width}d}" for i in range(1, n + 1)]


def _signup_dates(event_time: np.ndarray, tenure: np.ndarray) -> np.ndarray:
    days = np.round(tenure * _DAYS_PER_MONTH).astype("timedelta64[D]")
    signup: np.ndarray = (event_time.astype("datetime64[D]") - days).astype("datetime64[us]")
    return signup


def _total_charges(draws: dict[str, np.ndarray], charges: np.ndarray) -> np.ndarray:
    total = np.round(charges * draws["tenure"] * draws["total_noise"], 2)
    missing = (draws["tenure"] == 0) | (draws["total_missing_u"] < 0.015)
    result: np.ndarray = np.where(missing, np.nan, total)
    return result


def _labels(names: tuple[str, ...], codes: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(names, dtype=object)[codes], dtype="str")


def _payment_labels(codes: np.ndarray, missing_u: np.ndarray, drift: float) -> pd.Series:
    labels = np.asarray(PAYMENT_METHODS, dtype=object)[codes]
    labels[(missing_u < 0.02) | (drift >= 1.0)] = None
    return pd.Series(labels, dtype="str")


_REGIMES = (  # label logit weights of a, b, c and the segment effect, per regime
    (1.6, -1.2, 0.0, (0.6, 0.0, -0.6)),
    (-1.6, 0.0, 1.3, (-0.6, 0.0, 0.6)),
)


def make_regime_table(
    n_rows: int, seed: int, *, start: str | pd.Timestamp, end: str | pd.Timestamp, regime: int
) -> pd.DataFrame:
    """A table whose label follows one of two relations (a concept change between them).

    The inputs (numbers a, b, c, d, a segment, an account id, event_time spread evenly
    over [start, end)) have the same distribution in both regimes; only how the label
    ``converted`` depends on them changes, so a model of regime 0 is wrong in regime 1
    although nothing in its inputs drifts. For closed-loop tests and benchmarks.

    Example::

        before = make_regime_table(4000, 1, start="2026-01-01", end="2026-03-01", regime=0)
        after = make_regime_table(4000, 2, start="2026-03-01", end="2026-05-01", regime=1)
    """
    if regime not in (0, 1):
        raise ValueError(f"regime is 0 or 1, got {regime}")
    rng = np.random.default_rng(seed)
    numbers = rng.normal(size=(n_rows, 4))
    segment = rng.integers(0, 3, n_rows)
    wa, wb, wc, effect = _REGIMES[regime]
    logit = wa * numbers[:, 0] + wb * numbers[:, 1] + wc * numbers[:, 2] + np.take(effect, segment)
    first, last = pd.Timestamp(start), pd.Timestamp(end)
    offsets = np.sort(rng.random(n_rows)) * (last - first).total_seconds()
    return pd.DataFrame(
        {
            "account_id": [f"A{seed:03d}-{i:06d}" for i in range(n_rows)],
            "event_time": first + pd.to_timedelta(offsets, unit="s"),
            "a": numbers[:, 0],
            "b": numbers[:, 1],
            "c": numbers[:, 2],
            "d": numbers[:, 3],
            "segment": np.array(["red", "green", "blue"])[segment],
            "converted": rng.random(n_rows) < 1 / (1 + np.exp(-logit)),
        }
    )
