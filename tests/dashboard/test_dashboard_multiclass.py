"""A multiclass model on the dashboard, in a real browser: its figures are the report's.

A tiers version has three hours of answers and outcomes; every per-class figure on its
model page, and the overview's macro F1 and accuracy, must read what `mlprod monitor
--json` reports for the same period, and the per-class and class-share charts are drawn.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from support import Project, Server, cli_json
from tiers_kit import CLASSES
from tiers_live import MODEL, trained_with_traffic

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return trained_with_traffic(tmp_path_factory.mktemp("board-tiers"))


@pytest.fixture(scope="module")
def board(project: Project) -> Iterator[Server]:
    server = Server(project, command="dashboard")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def report(project: Project) -> dict[str, Any]:
    found: dict[str, Any] = cli_json(
        project, "monitor", MODEL, "--window", "1h", "--since", "24h", "--no-alerts"
    )
    return found


def rate(row: dict[str, Any], metric: str) -> str:
    return f"{row[metric]:.3f} ({row[metric + '_low']:.3f}-{row[metric + '_high']:.3f})"


def field(page: Any, scope: str, name: str) -> Any:
    return page.locator(f"{scope} [data-field='{name}']").first


def test_model_page_shows_each_class_as_the_report_does(
    page: Any, board: Server, project: Project
) -> None:
    page.goto(board.url + f"/ui/models/{MODEL}?period=24h")
    document = report(project)
    live = next(r for r in document["live"] if r["version"] == 1)
    test = next(v for v in document["versions"] if v["version"] == 1)["test"]
    assert live["n_labelled"] == 900 and not live["estimated"]
    summary = "[data-section='class-summary']"
    assert field(page, summary, "live-accuracy").inner_text() == rate(live, "accuracy")
    assert field(page, summary, "live-macro-f1").inner_text() == rate(live, "macro_f1")
    assert (
        float(field(page, summary, "live-macro-f1").get_attribute("data-value"))
        == (live["macro_f1"])
    )
    shares = [r for r in document["drift"] if r["version"] == 1 and r["shares"] is not None]
    answered = sum(r["count"] for r in shares)
    assert answered == 2100
    for name in CLASSES:
        row = f"tr[data-class='{name}']"
        for metric in ("precision", "recall"):
            key = f"{metric}[{name}]"
            cell = field(page, row, f"live-{metric}")
            assert cell.inner_text() == rate(live, key), key
            assert float(cell.get_attribute("data-value")) == live[key], key
            assert field(page, row, f"test-{metric}").inner_text() == f"{test[key]:.3f}"
        share = sum(r["count"] * r["shares"][name] for r in shares) / answered
        assert float(field(page, row, "share").get_attribute("data-value")) == pytest.approx(
            share, abs=1e-12
        )
        assert (
            float(field(page, row, "reference-share").get_attribute("data-value"))
            == (shares[-1]["reference_shares"][name])
        )
    version = "tr[data-version='1']"
    assert field(page, version, "live-macro-f1").inner_text() == rate(live, "macro_f1")
    assert field(page, version, "live-accuracy").inner_text() == rate(live, "accuracy")
    for chart in ("class-precision", "class-recall", "accuracy", "shares", "traffic", "drift"):
        page.locator(f"#chart-{chart} .main-svg").first.wait_for(timeout=5000)  # plotly.js
    legend = page.locator("#chart-shares .legendtext").all_text_contents()
    assert legend == CLASSES
    drifted = page.locator("#chart-drift .ytick text").all_text_contents()
    assert "predicted class" in drifted


def test_overview_shows_macro_f1_and_accuracy_for_a_multiclass_model(
    page: Any, board: Server, project: Project
) -> None:
    page.goto(board.url + "/ui/?period=24h")
    live = next(r for r in report(project)["live"] if r["version"] == 1)
    row = f"tr[data-model='{MODEL}']"
    assert field(page, row, "live-macro-f1").inner_text() == rate(live, "macro_f1")
    assert field(page, row, "live-accuracy").inner_text() == rate(live, "accuracy")
    assert "macro F1 / accuracy" in page.locator(row).inner_text()
    assert field(page, row, "live-labelled").get_attribute("data-value") == "900"
    assert page.locator(f"{row} [data-field='live-precision']").count() == 0
