"""The dashboard's run comparison for multiclass runs: per-class figures and their charts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlprod.pipelines import TrainedRun, train
from support import Project, Server
from tiers_kit import CLASSES, SPEC, write_tiers


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[TrainedRun]]]:
    root = tmp_path_factory.mktemp("board-tiers")
    path = write_tiers(root)
    runs = [train(path, store=str(root / ".mlprod"))]
    path.write_text(SPEC.replace("[logistic_regression, lightgbm]", "[logistic_regression]"))
    runs.append(train(path, store=str(root / ".mlprod")))
    server = Server(Project(Path(root)), command="dashboard")
    try:
        server.wait_ready()
        yield server, runs
    finally:
        server.stop()


def test_multiclass_runs_compare_per_class_with_confusion_and_roc_charts(
    board: tuple[Server, list[TrainedRun]],
) -> None:
    server, runs = board
    query = "&".join(f"run={run.id}" for run in runs)
    page = httpx.get(f"{server.url}/ui/runs/compare?{query}", headers={"accept": "text/html"})
    assert page.status_code == 200
    html = page.text
    shown = re.findall(r'<tr data-metric="([^"]+)">', html)
    per_class = [f"{m}[{c}]" for c in CLASSES for m in ("precision", "recall")]
    assert shown == ["accuracy", "macro_f1", "weighted_f1", "roc_auc", "log_loss", *per_class]
    for run in runs:
        for name in ("macro_f1", "recall[gold]", "precision[bronze]"):
            cell = re.search(
                rf'<tr data-metric="{re.escape(name)}">.*?<td data-run="{run.id}" '
                r'data-value="([^"]+)"',
                html,
                re.S,
            )
            assert cell is not None and float(cell.group(1)) == run.metrics[name].value
    charts = json.loads(re.search(r'<script id="charts"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert sorted(charts) == ["chart-confusion_overlay", "chart-roc_overlay"]
    for key in charts:
        assert f'<div id="{key}" class="chart">' in html
    names = [t["name"] for t in charts["chart-roc_overlay"]["data"] if t.get("showlegend")]
    assert [name.split(" (")[0] for name in names] == [
        f"tiers@{run.version}" for run in runs
    ]  # one legend entry per run; its curves in every class's panel
