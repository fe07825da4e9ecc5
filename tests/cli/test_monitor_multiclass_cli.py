"""`mlprod monitor` and `mlprod outcomes ingest` for a multiclass model, as users run them."""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd
import pytest

from mlprod.monitoring import outcome_counts
from mlprod.predlog import read_predictions
from mlprod.store import Store
from support import Project, run_cli
from tiers_kit import CLASSES
from tiers_live import MODEL, trained_with_traffic


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return trained_with_traffic(tmp_path_factory.mktemp("monitor-tiers"))


def shown(row: dict[str, Any], metric: str) -> str:
    """A figure as the text report prints it: 0.812 (0.78-0.84)."""
    return f"{row[metric]:.3f} ({row[metric + '_low']:.2f}-{row[metric + '_high']:.2f})"


def test_monitor_prints_each_class_and_the_class_share_row(project: Project) -> None:
    document = json.loads(run_cli(project, "monitor", MODEL, "--no-alerts", "--json").stdout)
    live = document["live"][0]
    assert live["classes"] == CLASSES and live["n_labelled"] == 900
    text = run_cli(project, "monitor", MODEL, "--no-alerts").stdout
    assert shown(live, "accuracy") in text and shown(live, "macro_f1") in text
    test = document["versions"][0]["test"]
    for name in CLASSES:
        line = next(line for line in text.splitlines() if re.match(rf"\W*{name}\W", line))
        cells = [cell.strip() for cell in re.split(r"[│┃]", line) if cell.strip()]
        assert cells[:5] == [
            name,
            shown(live, f"precision[{name}]"),
            shown(live, f"recall[{name}]"),
            f"{test[f'precision[{name}]']:.3f}",
            f"{test[f'recall[{name}]']:.3f}",
        ]
    drift = next(line for line in text.splitlines() if "predicted class" in line)
    newest = max(r["window_start"] for r in document["drift"])
    row = next(
        r
        for r in document["drift"]
        if r["feature"] == "predicted class" and r["window_start"] == newest
    )
    assert f"{row['psi']:.3f}" in drift and "ok" in drift
    assert f"{document['outcomes']['invalid']:,} invalid" in text


def test_outcomes_ingest_judges_multiclass_labels(project: Project) -> None:
    with Store.open(project.settings().store_url()) as store:
        answered = read_predictions(store, MODEL)
        before = outcome_counts(store, MODEL)
    waiting = answered[~answered["id"].isin(_labelled(project))].head(20)
    labels = [str(label).upper() for label in waiting["label"]]  # classes in any case
    labels[:2] = ["platinum", "Gold-ish"]
    pd.DataFrame({"prediction_id": waiting["id"], "label": labels}).to_csv(
        project.root / "tiers-outcomes.csv", index=False
    )
    counts = json.loads(
        run_cli(project, "outcomes", "ingest", "tiers-outcomes.csv", "--json").stdout
    )
    assert counts == {"received": 20, "duplicates": 0, "matched": 20}
    with Store.open(project.settings().store_url()) as store:
        after = outcome_counts(store, MODEL)
    assert after["matched"] - before["matched"] == 18
    assert after["invalid"] - before["invalid"] == 2


def _labelled(project: Project) -> set[str]:
    import sqlalchemy as sa

    from mlprod.store import schema as t

    query = sa.select(t.outcomes.c.matched_id).where(t.outcomes.c.matched_id.is_not(None))
    with Store.open(project.settings().store_url()) as store:
        return set(store.read(lambda conn: conn.execute(query).scalars().all()))
