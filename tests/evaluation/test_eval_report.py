"""build_charts() and write_report(): what the charts show and what the HTML file holds."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from plotly.offline import get_plotlyjs
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

from mlprod.errors import TrainingError
from mlprod.evaluation import (
    GateResult,
    MetricValue,
    build_charts,
    check_gates,
    evaluate,
    write_report,
)
from mlprod.spec import Gate

CHART_KEYS = ["roc", "pr", "confusion", "calibration", "score_distribution"]
HOSTILE = "</script><script>alert(1)</script>"


def scored(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = (rng.random(n) < 0.3).astype(int)
    return y, 1 / (1 + np.exp(-(2 * y + rng.normal(size=n) - 1.5)))


def test_chart_keys(rng: np.random.Generator) -> None:
    y, s = scored(rng, 500)
    assert list(build_charts(y, s, 0.5)) == CHART_KEYS
    assert list(build_charts(y, s, 0.5, {})) == CHART_KEYS
    assert list(build_charts(y, s, 0.5, {"age": 1.0})) == [*CHART_KEYS, "feature_importance"]


def test_charts_show_the_right_numbers(rng: np.random.Generator) -> None:
    y, s = scored(rng, 2000)
    charts = build_charts(y, s, 0.4)
    assert f"AUC = {roc_auc_score(y, s):.3f}" in charts["roc"].layout.title.text
    assert f"AUC = {roc_auc_score(y, s):.3f}" in charts["roc"].data[0].name
    assert f"AP = {average_precision_score(y, s):.3f}" in charts["pr"].layout.title.text
    heatmap = charts["confusion"].data[0]
    assert np.array(heatmap.z).tolist() == confusion_matrix(y, s >= 0.4).tolist()
    assert "0.4" in charts["confusion"].layout.title.text
    diagonal, reliability = charts["calibration"].data
    assert list(diagonal.x) == [0, 1]
    assert list(diagonal.y) == [0, 1]
    assert len(reliability.x) == 10  # continuous scores: ten quantile bins
    assert sum(reliability.customdata) == 2000
    assert np.mean(reliability.x) == pytest.approx(np.mean(s))  # equal-count bins
    negatives, positives = charts["score_distribution"].data
    assert sum(negatives.y) == np.sum(y == 0)
    assert sum(positives.y) == np.sum(y == 1)


def test_importance_is_top_30_sorted_largest_on_top() -> None:
    importance = {f"f{i}": float(i) for i in range(40)}
    bars = build_charts(np.array([0, 1, 0, 1]), np.array([0.2, 0.7, 0.4, 0.9]), 0.5, importance)[
        "feature_importance"
    ].data[0]
    assert bars.orientation == "h"
    assert len(bars.y) == 30
    assert list(bars.x) == sorted(bars.x)  # plotly draws the last bar at the top
    assert bars.y[-1] == "f39"
    assert "f9" not in bars.y


def test_chart_size_does_not_grow_with_rows(rng: np.random.Generator) -> None:
    y, s = scored(rng, 200_000)
    charts = build_charts(y, s, 0.5)
    assert sum(len(fig.to_json()) for fig in charts.values()) < 400_000


def test_charts_reject_non_finite_scores() -> None:
    with pytest.raises(TrainingError, match="1 non-finite"):
        build_charts(np.array([0, 1, 0]), np.array([0.1, np.nan, 0.3]), 0.5)


class Report(NamedTuple):
    path: Path
    metrics: dict[str, MetricValue]
    gates: list[GateResult]
    charts: dict[str, Any]


@pytest.fixture
def report(rng: np.random.Generator, tmp_path: Path) -> Report:
    y, s = scored(rng, 1000)
    metrics = evaluate(y, s, 0.5, n_boot=50)
    gates = check_gates(
        metrics,
        {"roc_auc": Gate(op=">=", value=0.5), "brier": Gate(op="<", value=0.01, bound="upper")},
    )
    charts = build_charts(y, s, 0.5, {"age": 0.6, HOSTILE: 0.4})
    path = write_report(
        tmp_path / "deep" / "report.html",
        title="churn <v3> & friends",
        summary={"model": "churn", "version": 3, "run id": "run-abc123", "threshold": 0.5},
        metrics=metrics,
        gates=gates,
        charts=charts,
        candidates=[
            {"name": "logistic_regression", "validation_score": 0.81234, "fit_seconds": 0.52},
            {"name": "lightgbm", "validation_score": 0.84321, "fit_seconds": 3.1, "error": None},
        ],
    )
    return Report(path, metrics, gates, charts)


def test_report_is_self_contained(report: Report) -> None:
    page = report.path.read_text(encoding="utf-8")
    sources = re.findall(r"<script\b[^>]*\bsrc\s*=\s*[\"']?([^\"' >]*)", page, re.IGNORECASE)
    assert not [src for src in sources if src.lower().startswith(("http://", "https://", "//"))]
    assert get_plotlyjs()[:2000] in page
    assert "cdn.plot.ly" not in page.split(get_plotlyjs())[1]  # nothing outside the bundle


def test_report_shows_metrics_gates_candidates_and_summary(
    report: Report,
) -> None:
    page = report.path.read_text(encoding="utf-8")
    for name, metric in report.metrics.items():
        assert f"<td>{name}</td>" in page
        assert f"{metric.value:.4f}" in page
        assert f"{metric.low:.4f} &ndash; {metric.high:.4f}" in page
    passed, failed = report.gates
    assert passed.passed
    assert not failed.passed
    assert html.escape(passed.message, quote=False) in page
    assert html.escape(failed.message, quote=False) in page
    assert '<td class="fail">FAIL</td>' in page
    assert '<td class="pass">PASS</td>' in page
    for text in ("logistic_regression", "lightgbm", "0.84321", "validation score", "run-abc123"):
        assert text in page


def test_report_draws_every_chart(report: Report) -> None:
    page = report.path.read_text(encoding="utf-8")
    figures = re.findall(r"var fig = (.*);\n", page)
    charts = report.charts
    assert len(figures) == len(charts)
    for key, figure_json in zip(charts, figures, strict=True):
        assert f'<div class="chart" id="chart-{key}"></div>' in page
        assert f'Plotly.newPlot("chart-{key}"' in page
        assert json.loads(figure_json) == json.loads(charts[key].to_json())


def test_report_escapes_user_text(report: Report) -> None:
    page = report.path.read_text(encoding="utf-8")
    assert HOSTILE not in page  # a feature name cannot close the script tag
    assert "<title>churn &lt;v3&gt; &amp; friends</title>" in page


def test_report_without_gates_or_candidates(tmp_path: Path) -> None:
    path = write_report(
        str(tmp_path / "r.html"), title="t", summary={}, metrics={}, gates=[], charts={}
    )
    page = path.read_text(encoding="utf-8")
    assert isinstance(path, Path)
    assert "No gates are configured" in page
    assert "Candidates" not in page
