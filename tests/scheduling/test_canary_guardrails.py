"""A canary's guardrails roll it back before outcomes arrive: a challenger that answers
slowly, or fails to score, stops at the next check. Real store, real prediction rows."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from mlprod._time import ManualClock, utc_now
from mlprod.predlog import insert_predictions
from mlprod.scheduling import LoopContext, list_decisions
from mlprod.scheduling._canary import check_canary
from mlprod.scheduling._decisions import open_canary
from mlprod.spec import ProjectSpec
from mlprod.store import Store, open_artifacts
from support import Project, trained

SPEC = {
    "name": "churn",
    "data": {"source": "rows.csv", "target": "churned"},
    "retrain": {"canary": {"weight": 30, "min_labels": 500, "latency_factor": 2.0,
                           "min_latency_ms": 20.0, "max_error_rate": 0.02}},
}  # fmt: skip


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Two registered versions of churn, trained once; each test works on a copy."""
    return trained(tmp_path_factory.mktemp("canary"), versions=2, rows=600)


@pytest.fixture
def context(template: Project, tmp_path: Path) -> Iterator[LoopContext]:
    project = Project(shutil.copytree(template.root, tmp_path / "project"))
    settings = project.settings()
    with Store.from_settings(settings) as store:
        yield LoopContext(store, open_artifacts(settings), settings, clock=ManualClock(utc_now()))


def _answer(ctx: LoopContext, version: int, latencies: list[float], *, scored: int) -> None:
    """Predictions of `version` since now, the first `scored` of them with a score."""
    now = ctx.clock.now()
    insert_predictions(
        ctx.store,
        [
            {"id": f"v{version}-{i}", "model": "churn", "version": version,
             "at": now + timedelta(seconds=i), "record": {"plan": "pro"},
             "score": 0.4 if i < scored else None, "latency_ms": latency}
            for i, latency in enumerate(latencies)
        ],
    )  # fmt: skip


def _check(ctx: LoopContext) -> str | None:
    spec = ProjectSpec.model_validate(yaml.safe_load(yaml.safe_dump(SPEC)))
    canary = open_canary(ctx.store, "churn", champion=1, challenger=2, weight=30,
                         at=ctx.clock.now())  # fmt: skip
    decision = check_canary(ctx, spec, canary)
    if decision is None:
        return None
    assert decision.outcome == "rolled_back"
    assert [d.reason for d in list_decisions(ctx.store, "churn")] == [decision.reason]
    return decision.reason


def test_a_challenger_slower_than_twice_the_champion_is_rolled_back(
    context: LoopContext,
) -> None:
    _answer(context, 1, [5.0] * 100, scored=100)
    _answer(context, 2, [5.0] * 40 + [45.0] * 20, scored=60)  # p99 45 ms: over 2 x 5 and 20
    reason = _check(context)
    assert reason is not None and reason.startswith("p99 latency of v2 is 45.0 ms, over 20.0 ms")


def test_a_slow_looking_p99_under_the_floor_keeps_the_canary_running(
    context: LoopContext,
) -> None:
    _answer(context, 1, [2.0] * 100, scored=100)
    _answer(context, 2, [15.0] * 60, scored=60)  # 7.5x the champion, but under 20 ms
    assert _check(context) is None
    assert list_decisions(context.store, "churn") == []


def test_too_few_latencies_decide_nothing_yet(context: LoopContext) -> None:
    _answer(context, 1, [5.0] * 100, scored=100)
    _answer(context, 2, [90.0] * 49, scored=49)  # one short of the 50 a p99 needs
    assert _check(context) is None


def test_a_challenger_that_scores_nothing_is_rolled_back(context: LoopContext) -> None:
    _answer(context, 1, [5.0] * 100, scored=100)
    _answer(context, 2, [5.0] * 100, scored=97)  # 3% without a score: over 2%
    reason = _check(context)
    assert reason is not None
    assert reason.startswith("3 of 100 requests failed or scored nothing while v2 took traffic")
