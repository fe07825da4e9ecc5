"""The dashboard in a real browser, against a real server with real traffic and outcomes.

Every number checked on a page is compared with what `mlprod monitor --json` (or
`mlprod models show --json`) reports for the same period; live updates are checked by
posting a prediction, an outcome and a promotion and waiting for the page to change.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mlprod.pipelines import promote
from mlprod.serving import create_token
from mlprod.store import Store
from support import Project, Server, cli_json, records_from, trained, wait_for_totals

LIVE_WITHIN_MS = 15_000  # a live update without a reload; a busy machine lags


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return trained(tmp_path_factory.mktemp("dashboard"), versions=2, rows=2000)


@pytest.fixture(scope="module")
def served(project: Project) -> Iterator[Server]:
    """mlprod serve --ui with 600 answered predictions, 200 of them labelled."""
    server = Server(project, "--ui")
    server.wait_ready()
    try:
        predictions = httpx.post(
            server.url + "/v1/models/churn/predict", json={"records": records_from(project, 600)}
        ).json()["predictions"]
        outcomes = [
            {"prediction_id": p["id"], "label": i % 3 == 0} for i, p in enumerate(predictions[:200])
        ]
        httpx.post(server.url + "/v1/outcomes", json={"outcomes": outcomes}).raise_for_status()
        wait_for_totals(project, predictions=600, labelled=200)
        yield server
    finally:
        server.stop()


def rate(row: dict[str, Any], metric: str) -> str:
    return f"{row[metric]:.3f} ({row[metric + '_low']:.3f}-{row[metric + '_high']:.3f})"


def field(page: Any, name: str, scope: str = "") -> Any:
    return page.locator(f"{scope} [data-field='{name}']".strip()).first


def wait_value(page: Any, scope: str, name: str, value: object, timeout: int) -> None:
    """Wait until the cell's data-value is `value` (the live region is re-rendered on change)."""
    cell = f"document.querySelector(\"{scope} [data-field='{name}']\")"
    page.wait_for_function(f"{cell}?.dataset.value == '{value}'", timeout=timeout)


def test_overview_shows_what_monitor_reports(page: Any, served: Server, project: Project) -> None:
    page.goto(served.url + "/ui/?period=24h")
    report = cli_json(
        project, "monitor", "churn", "--window", "1h", "--since", "24h", "--no-alerts"
    )
    live = next(r for r in report["live"] if r["version"] == 1)
    test = next(v for v in report["versions"] if v["version"] == 1)["test"]
    row = "tr[data-model='churn']"
    assert field(page, "live-precision", row).inner_text() == rate(live, "precision")
    assert field(page, "live-recall", row).inner_text() == rate(live, "recall")
    assert (
        float(field(page, "live-precision", row).get_attribute("data-value")) == live["precision"]
    )
    assert (
        field(page, "live-labelled", row).inner_text().startswith(f"{live['n_labelled']} labelled")
    )
    assert field(page, "test-precision", row).inner_text() == f"{test['precision']:.3f}"
    assert field(page, "traffic-1", row).inner_text() == f"{live['predictions']:,}"
    assert field(page, "production", row).get_attribute("data-value") == "1"
    assert field(page, "candidate", row).get_attribute("data-value") == "2"
    health = field(page, "health", row).get_attribute("data-value")
    assert health in ("healthy", "warning", "failing")
    assert "health-" + health in (page.locator(row).get_attribute("class") or "")


def test_model_page_shows_versions_charts_routes_and_audit(
    page: Any, served: Server, project: Project
) -> None:
    page.goto(served.url + "/ui/models/churn?period=24h")
    report = cli_json(
        project, "monitor", "churn", "--window", "1h", "--since", "24h", "--no-alerts"
    )
    live = next(r for r in report["live"] if r["version"] == 1)
    v1 = "tr[data-version='1']"
    assert field(page, "live-precision", v1).inner_text() == rate(live, "precision")
    assert field(page, "live-recall", v1).inner_text().startswith(rate(live, "recall"))
    assert field(page, "predictions", v1).inner_text() == f"{live['predictions']:,}"
    for chart in ("precision", "recall", "auc", "traffic", "drift"):
        page.locator(f"#chart-{chart} .main-svg").first.wait_for(timeout=5000)  # drawn by plotly.js
    drift_features = page.locator("#chart-drift .ytick text").all_text_contents()
    assert {"plan", "monthly_charges", "score"} <= set(drift_features)
    assert "promote" in page.locator("table").last.inner_text()  # the audit log
    assert "all traffic to the production alias" in page.inner_text("#live")


def test_version_page_shows_the_registered_metrics_and_report(
    page: Any, served: Server, project: Project
) -> None:
    shown = cli_json(project, "models", "show", "churn")
    version = next(v for v in shown["versions"] if v["version"] == 1)
    page.goto(served.url + "/ui/models/churn/versions/1")
    for metric, value in version["metrics"].items():
        cell = page.locator(f"tr[data-metric='{metric}'] td[data-value]")
        assert cell.inner_text() == f"{value['value']:.4f}", metric
    assert version["run_id"] in page.inner_text("main")
    frame = page.frame_locator("iframe.report")
    frame.locator("text=ROC curve").first.wait_for(timeout=10_000)


def test_new_predictions_and_outcomes_appear_without_a_reload(
    page: Any, served: Server, project: Project
) -> None:
    page.goto(served.url + "/ui/?period=24h")
    row = "tr[data-model='churn']"
    page.wait_for_function("document.getElementById('live').dataset.updates !== '0'")
    traffic = int(field(page, "traffic-1", row).get_attribute("data-value"))
    labelled = int(field(page, "live-labelled", row).get_attribute("data-value"))

    answer = httpx.post(
        served.url + "/v1/models/churn/predict", json={"records": records_from(project, 3)}
    ).json()
    wait_value(page, row, "traffic-1", traffic + 3, LIVE_WITHIN_MS)
    outcome = {"prediction_id": answer["predictions"][0]["id"], "label": True}
    httpx.post(served.url + "/v1/outcomes", json={"outcomes": [outcome]}).raise_for_status()
    wait_value(page, row, "live-labelled", labelled + 1, LIVE_WITHIN_MS)


def test_admin_actions_need_an_admin_token_and_show_up_live(
    page: Any, served: Server, project: Project
) -> None:
    with Store.open(project.settings().store_url()) as store:
        _, reader = create_token(store, "reader", ["predict"], actor="t")
        _, admin = create_token(store, "ops", ["admin"], actor="t")
    page.goto(served.url + "/ui/models/churn?period=24h")
    promote_form = page.locator("form[data-action$='/promote']")
    promote_form.locator("select[name=version]").select_option("2")

    page.fill("#admin-token", reader)
    promote_form.locator("button").click()
    page.wait_for_function("document.getElementById('admin-result').textContent !== ''")
    assert "needs 'admin'" in page.inner_text("#admin-result")

    overview = page.context.new_page()
    overview.goto(served.url + "/ui/?period=24h")
    overview.wait_for_function("document.getElementById('live').dataset.updates !== '0'")
    page.fill("#admin-token", admin)
    promote_form.locator("input[name=reason]").fill("canary looked good")
    promote_form.locator("button").click()
    page.wait_for_function("document.getElementById('admin-result').textContent === 'done'")
    wait_value(overview, "tr[data-model='churn']", "production", 2, LIVE_WITHIN_MS)
    audit = cli_json(project, "models", "show", "churn")
    assert [v["version"] for v in audit["versions"] if "production" in v["aliases"]] == [2]
    promote("churn", 1, "production", store=project.store, actor="t")  # back for other tests


def test_runs_are_searched_with_the_cli_filter_language_and_compared(
    page: Any, served: Server, project: Project
) -> None:
    runs = cli_json(project, "runs", "list", "--model", "churn")["runs"]
    page.goto(served.url + "/ui/runs?model=churn&where=roc_auc+>+0.5&sort=-roc_auc")
    shown = page.locator("tr[data-run]")
    assert shown.count() == len(runs) == 2
    values = [
        float(v)
        for v in page.locator("tr[data-run] [data-field='roc_auc']").evaluate_all(
            "cells => cells.map(c => c.dataset.value)"
        )
    ]
    assert values == sorted((r["metrics"]["roc_auc"]["value"] for r in runs), reverse=True)

    page.goto(served.url + "/ui/runs?where=params.model+==+'nothing'")
    assert page.locator("tr[data-run]").count() == 0
    page.goto(served.url + "/ui/runs?where=__import__('os')")
    assert page.locator("#filter-error").inner_text() != ""  # refused, never evaluated

    page.goto(served.url + "/ui/runs?model=churn")
    for box in page.locator("input[name=run]").all():
        box.check()
    page.locator("button", has_text="compare selected").click()
    page.wait_for_url("**/ui/runs/compare?**")
    for run in runs:
        cell = page.locator(f"tr[data-metric='recall'] td[data-run='{run['id']}']")
        assert float(cell.get_attribute("data-value")) == run["metrics"]["recall"]["value"]
    page.locator("#chart-roc_overlay .main-svg").first.wait_for(timeout=5000)
    legend = page.locator("#chart-roc_overlay .legendtext").all_text_contents()
    assert sum("churn@" in entry for entry in legend) == 2  # both runs' curves, overlaid
