"""The thresholds monitoring holds a model to come from the spec recorded with its version."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from mlprod.monitoring import agreed_thresholds
from mlprod.registry import create_run, register_version
from mlprod.registry._aliases import move_alias
from mlprod.spec import Gate, MonitorSpec, ProjectSpec
from mlprod.store import Store

SPEC = ProjectSpec.model_validate(
    {
        "name": "churn",
        "data": {"source": "customers.csv", "target": "churned"},
        "gates": {"recall": {"threshold": ">= 0.6", "bound": "lower"}},
        "monitor": {"drift": {"psi": 0.3}, "min_labels": 50},
    }
).resolved()


def version(store: Store, spec: dict[str, Any]) -> int:
    """A version registered from a run that recorded `spec`, as training does."""
    run = create_run(store, "churn", user="ana", spec=spec, git_commit=None, library_versions={})
    return register_version(
        store, "churn", run_id=run, bundle_id=uuid.uuid4().hex, flavor="sklearn", metrics={},
        gates=[], gates_passed=True, signature={"fields": []}, threshold=0.5, files={},
    ).version  # fmt: skip


def promote(store: Store, number: int) -> None:
    """Point production at `number` (no bundle here to check it serves, as promote would)."""
    move_alias(store, "churn", "production", number, actor="ana", action="promote", reason=None)


def test_the_production_versions_recorded_spec_sets_the_thresholds(store: Store) -> None:
    assert agreed_thresholds(store, "churn") == (MonitorSpec(), {})  # no version yet
    first = version(store, SPEC)
    monitor, gates = agreed_thresholds(store, "churn")
    assert monitor.drift.psi == 0.3 and monitor.min_labels == 50
    assert gates == {"recall": Gate(op=">=", value=0.6, bound="lower")}
    # A newer version with other thresholds: production's, not the newest, still count.
    promote(store, first)
    version(store, {**SPEC, "monitor": {"drift": {"psi": 0.2}}, "gates": {}})
    assert agreed_thresholds(store, "churn")[0].drift.psi == 0.3
    # Sections monitoring does not read may be anything another mlprod version wrote.
    promote(store, version(store, {**SPEC, "training": 7}))
    assert agreed_thresholds(store, "churn")[0].drift.psi == 0.3


def test_unreadable_thresholds_fall_back_to_the_defaults_with_a_warning(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    version(store, {**SPEC, "monitor": {"drift": {"psi": "a lot"}}})
    with caplog.at_level("WARNING", logger="mlprod.monitoring"):
        assert agreed_thresholds(store, "churn") == (MonitorSpec(), {})
    assert "using default monitoring thresholds for churn" in caplog.text
