"""A three-class table and its project, for every test of multiclass versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ["bronze", "gold", "silver"]  # sorted: the order of the probabilities' columns

SPEC = """\
name: tiers
data:
  source: customers.csv
  target: tier
features:
  numeric: [spend, visits, tenure]
  categorical: [region]
split: {method: stratified, test_size: 0.25}
candidates: [logistic_regression, lightgbm]
selection_metric: log_loss
"""


def make_tiers(rows: int, seed: int = 0) -> pd.DataFrame:
    """Customers whose tier follows a noisy score of spend, visits and region.

    Gold is the rarest class, so per-class figures differ from the averages.
    """
    rng = np.random.default_rng(seed)
    spend = rng.gamma(2.0, 50.0, rows)
    visits = rng.poisson(4, rows).astype(float)
    tenure = rng.uniform(0, 60, rows)
    region = rng.choice(["north", "south", "east"], rows)
    score = 0.02 * spend + 0.3 * visits + np.where(region == "east", 0.8, 0.0)
    score += rng.normal(0, 0.8, rows)
    tier = np.where(score > 5.0, "gold", np.where(score > 2.4, "silver", "bronze"))
    return pd.DataFrame(
        {"spend": spend, "visits": visits, "tenure": tenure, "region": region, "tier": tier}
    )


def write_tiers(root: Path, spec: str = SPEC, rows: int = 1500) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    make_tiers(rows).to_csv(root / "customers.csv", index=False)
    (root / "mlprod.yaml").write_text(spec, encoding="utf-8")
    return root / "mlprod.yaml"
