"""A network's training on the dashboard, in a real browser: the run's page redraws its
telemetry charts as epochs reach the store, and the version page shows them afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlprod.registry import create_run, finish_run, record_curve, register_version
from mlprod.store import Store
from mlprod.training import make_estimator
from support import Project, Server

pytest.importorskip("torch", reason="the mlp candidate needs pip install 'mlprod[torch]'")
pytestmark = pytest.mark.browser


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture
def board(project: Project) -> Iterator[Server]:
    with Store.open(project.settings().store_url()):
        pass  # the store exists before the dashboard opens it
    server = Server(project, command="dashboard")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _curves() -> list[dict[str, Any]]:
    """The curve a network hands its run after each of its epochs."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] > 0).astype(int)
    seen: list[dict[str, Any]] = []
    make_estimator("mlp", {"width": 8, "max_epochs": 6, "patience": 10}, seed=0).fit(
        X, y, on_epoch=seen.append
    )
    return seen


def test_training_page_follows_the_epochs_and_the_version_page_keeps_them(
    page: Any, board: Server, project: Project
) -> None:
    curves = _curves()
    with Store.open(project.settings().store_url()) as store:
        run = create_run(store, "churn", user="ana", spec={}, git_commit=None, library_versions={})
        record_curve(store, run, "mlp", curves[1])  # two epochs so far
    page.goto(f"{board.url}/ui/runs/{run}/training")
    assert page.inner_text("#run-status") == "running"
    for chart in ("training", "network", "activations", "gradients", "updates"):
        page.locator(f"#chart-mlp-{chart} .main-svg").first.wait_for(timeout=10_000)
    assert page.get_attribute("[data-candidate='mlp'] [data-epochs]", "data-epochs") == "2"
    assert "linear0" in page.inner_text("#chart-mlp-activations")
    assert "Linear" in page.inner_text("#chart-mlp-network")

    with Store.open(project.settings().store_url()) as store:
        record_curve(store, run, "mlp", curves[-1])  # training went on
    page.wait_for_function(
        "document.querySelector(\"[data-candidate='mlp'] [data-epochs]\").dataset.epochs"
        f" == '{len(curves)}'",
        timeout=15_000,
    )  # redrawn by the page's polling, without a reload

    with Store.open(project.settings().store_url()) as store:
        version = register_version(
            store, "churn", run_id=run, bundle_id="a" * 32, flavor="mlp", metrics={},
            gates=[], gates_passed=True, signature={"fields": [], "classes": [0, 1]},
            threshold=0.5, files={},
        ).version  # fmt: skip
        finish_run(store, run, status="finished", version=version)
    page.wait_for_function(
        "document.querySelector('#run-status').dataset.status == 'finished'", timeout=15_000
    )
    page.goto(f"{board.url}/ui/models/churn/versions/{version}")
    assert "Training telemetry" in page.inner_text("main")
    page.locator("#chart-mlp-updates .main-svg").first.wait_for(timeout=10_000)
    assert f"{len(curves)} epochs" in page.inner_text("[data-candidate='mlp']")
