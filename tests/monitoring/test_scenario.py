"""The monitoring scenario, end to end against a real server and the real CLI.

The quickstart model serves 20,000 records drawn like its training data, then 20,000 of
the same rows with the generator's drift knob turned (monthly charges up one standard
deviation, the premium plan's share doubled, payment_method gone null), each phase in
its own window. Outcomes arrive for a sample. The report must flag exactly the columns
the knob changed, only in the drifted window; its live precision and recall must equal
sklearn's on the same joined rows; and alerts must open once, reach a webhook, and
resolve when clean traffic returns.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from mlprod.data import make_churn_table
from mlprod.features import json_safe
from mlprod.pipelines import promote, train
from mlprod.pipelines._quickstart import SPEC
from support import Project, Receiver, Server, wait_for_totals

BUCKET = 20  # seconds per window: each phase (200 requests) is sent inside one window
ROWS = 20_000
LABELLED = 3_000  # outcomes posted per phase
FEATURES = (
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "last_login_days",
    "plan",
    "region",
    "payment_method",
    "has_partner",
    "paperless_billing",
    "signup_date",
)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("scenario")
    make_churn_table(ROWS, seed=7).to_csv(root / "customers.csv", index=False)
    (root / "mlprod.yaml").write_text(SPEC, encoding="utf-8")
    project = Project(root)
    run = train(project.spec, store=project.store)
    promote(
        "churn",
        run.version,
        "production",
        store=project.store,
        actor="t",
        force=True,
        reason="scenario",
    )
    return project


def phase_rows(drift: float) -> pd.DataFrame:
    """The training table's rows, with the drift knob at `drift` (rows line up across knobs)."""
    return make_churn_table(ROWS, seed=7, drift=drift)


def changed_columns() -> set[str]:
    """The features whose values the knob changes: a row-by-row comparison, not a statistic."""
    clean, drifted = phase_rows(0.0), phase_rows(1.0)
    return {c for c in FEATURES if not clean[c].astype(str).equals(drifted[c].astype(str))}


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = frame.drop(columns=["churned"]).to_dict("records")
    return [{k: json_safe(v) for k, v in row.items()} for row in rows]


def wait_for_window_start() -> None:
    """Sleep to just after the next window boundary, so a phase fills one window alone."""
    now = time.time()
    time.sleep(BUCKET - now % BUCKET + 0.2)


def send(url: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Score every row in batches of 100; the answers in row order."""
    answers: list[dict[str, Any]] = []
    payload = records(frame)
    with httpx.Client(base_url=url, timeout=30) as client:
        for start in range(0, len(payload), 100):
            body = {"records": payload[start : start + 100]}
            answer = client.post("/v1/models/churn/predict", json=body)
            answer.raise_for_status()
            answers += answer.json()["predictions"]
    return answers


def monitor(project: Project, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlprod",
            "monitor",
            "churn",
            "--window",
            f"{BUCKET}s",
            "--since",
            "1h",
            "--json",
        ],
        cwd=project.root,
        env={**project.env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def windows_of(report: dict[str, Any]) -> list[str]:
    return sorted({row["window_start"] for row in report["traffic"]})


@pytest.mark.slow
def test_drift_is_flagged_exactly_performance_matches_sklearn_alerts_open_and_resolve(
    quickstart: Project,
) -> None:
    expected = changed_columns()
    assert expected == {"monthly_charges", "total_charges", "plan", "payment_method"}
    webhook = Receiver()
    env = {
        "MLPROD_MONITOR_BUCKET": str(BUCKET),
        "MLPROD_MONITOR_FLUSH": "0.5",
        "MLPROD_WEBHOOK": webhook.url,
        "MLPROD_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    # the server's own alert checks (an hour's window) would interleave with the CLI's
    server = Server(quickstart, env={**env, "MLPROD_MONITOR_INTERVAL": "3600"})
    try:
        server.wait_ready()
        clean, drifted = phase_rows(0.0), phase_rows(1.0)
        wait_for_window_start()
        clean_answers = send(server.url, clean)
        wait_for_window_start()
        drifted_answers = send(server.url, drifted)
        wait_for_totals(quickstart, predictions=2 * ROWS)

        before = monitor(quickstart, env)
        clean_window, drifted_window = windows_of(before)
        assert {r["window_start"]: r["count"] for r in before["traffic"]} == {
            clean_window: ROWS,
            drifted_window: ROWS,
        }
        assert all(r["estimated"] for r in before["performance"])  # no labels yet

        flagged = {
            w: {
                r["feature"]
                for r in before["drift"]
                if r["window_start"] == w and r["flagged"] and r["feature"] != "score"
            }
            for w in (clean_window, drifted_window)
        }
        assert flagged == {clean_window: set(), drifted_window: expected}
        opened = {a["subject"] for a in before["alerts"] if a["kind"] == "drift"}
        assert opened >= expected  # the newest window is the drifted one

        rng = np.random.default_rng(5)
        joined = []
        for frame, answers in ((clean, clean_answers), (drifted, drifted_answers)):
            sample = rng.choice(len(frame), LABELLED, replace=False)
            outcomes = [
                {"prediction_id": answers[i]["id"], "label": bool(frame["churned"].iloc[i])}
                for i in sample
            ]
            posted = httpx.post(
                server.url + "/v1/outcomes", json={"outcomes": outcomes}, timeout=60
            )
            assert posted.json() == {"received": LABELLED, "duplicates": 0}
            joined.append([(answers[i], bool(frame["churned"].iloc[i])) for i in sample])
        wait_for_totals(quickstart, predictions=2 * ROWS, labelled=2 * LABELLED)

        after = monitor(quickstart, env)
        performance = {r["window_start"]: r for r in after["performance"]}
        for window, pairs in zip((clean_window, drifted_window), joined, strict=True):
            live = performance[window]
            truth = [observed for _, observed in pairs]
            predicted = [answer["label"] for answer, _ in pairs]
            scores = [answer["score"] for answer, _ in pairs]
            assert live["estimated"] is False and live["n_labelled"] == LABELLED
            assert live["precision"] == pytest.approx(precision_score(truth, predicted), abs=1e-12)
            assert live["recall"] == pytest.approx(recall_score(truth, predicted), abs=1e-12)
            assert live["roc_auc"] == pytest.approx(roc_auc_score(truth, scores), abs=0.01)
            assert live["precision_low"] < live["precision"] < live["precision_high"]
        assert after["outcomes"]["matched"] == 2 * LABELLED

        drift_alerts = [d for d in webhook.received if d["kind"] == "drift"]
        assert sorted(d["subject"] for d in drift_alerts if d["state"] == "open") == sorted(opened)
        wait_for_window_start()  # clean traffic again: the incident is over
        send(server.url, clean.head(2_000))
        wait_for_totals(quickstart, predictions=2 * ROWS + 2_000, labelled=2 * LABELLED)
        resolved = monitor(quickstart, env)
        assert not [a for a in resolved["alerts"] if a["kind"] == "drift"]
        states = [(d["subject"], d["state"]) for d in webhook.received if d["kind"] == "drift"]
        expected_states = [(s, "open") for s in opened] + [(s, "resolved") for s in opened]
        assert sorted(states) == sorted(expected_states)
    finally:
        server.stop()
        webhook.close()
