"""Deployments in the store: routes, shadows, clear and rollback, all audited."""

from __future__ import annotations

import pytest

from mlprod.errors import ConflictError, NotFoundError, SpecError
from mlprod.registry import (
    Route,
    Store,
    change_marker,
    clear_deployment,
    get_deployment,
    list_deployments,
    rollback,
    set_deployment,
)


def _store_with_versions(url: str, count: int) -> Store:
    store = Store.open(url)
    run = store.create_run("churn", user="t", spec={}, git_commit=None, library_versions={})
    for _ in range(count):
        store.register_version(
            "churn", run_id=run, bundle_id="0" * 32, flavor="sklearn", metrics={}, gates=[],
            gates_passed=True, signature={"fields": []}, threshold=0.5,
        )  # fmt: skip
    return store


def test_routes_and_shadows_round_trip_and_are_audited(store_url: str) -> None:
    with _store_with_versions(store_url, 3) as store:
        before = change_marker(store)
        result = set_deployment(
            store,
            "churn",
            [Route(version=1, weight=95), Route(version=2, weight=5)],
            [3],
            actor="ann",
            reason="canary",
        )
        assert result.describe() == "1=95% 2=5%; shadow 3"
        found = get_deployment(store, "churn")
        assert found is not None
        assert [(r.version, r.weight) for r in found.routes] == [(1, 95.0), (2, 5.0)]
        assert found.shadows == [3]
        assert found.updated_by == "ann"
        assert [d.model for d in list_deployments(store)] == ["churn"]
        assert change_marker(store) > before
        entry = store.audit_log("churn")[0]
        assert (entry.action, entry.actor, entry.to_version) == ("deploy", "ann", 1)
        assert entry.reason == "1=95% 2=5%; shadow 3 (canary)"
        assert clear_deployment(store, "churn", actor="ann") is True
        assert get_deployment(store, "churn") is None
        assert store.audit_log("churn")[0].action == "undeploy"


@pytest.mark.parametrize(
    ("routes", "shadows", "message"),
    [
        ([], [], "at least one route"),
        ([(1, 50), (1, 50)], [], "routed twice"),
        ([(1, 100)], [1], "both routed and shadowed"),
    ],
)
def test_bad_deployments_are_refused(
    store_url: str, routes: list[tuple[int, float]], shadows: list[int], message: str
) -> None:
    with _store_with_versions(store_url, 1) as store, pytest.raises(SpecError, match=message):
        set_deployment(
            store, "churn", [Route(version=v, weight=w) for v, w in routes], shadows, actor="a"
        )


def test_unknown_version_is_refused_and_nothing_changes(store_url: str) -> None:
    with _store_with_versions(store_url, 1) as store:
        with pytest.raises(NotFoundError, match="no version 7"):
            set_deployment(store, "churn", [Route(version=7, weight=1)], actor="a")
        assert get_deployment(store, "churn") is None


def test_rollback_moves_the_alias_back_and_clears_routes(store_url: str) -> None:
    with _store_with_versions(store_url, 3) as store:
        with pytest.raises(ConflictError, match="no earlier version"):
            rollback(store, "churn", actor="a")
        store.set_alias("churn", "production", 1, actor="a")
        store.set_alias("churn", "production", 2, actor="a")
        set_deployment(
            store, "churn", [Route(version=2, weight=90), Route(version=3, weight=10)], actor="a"
        )
        entry = rollback(store, "churn", actor="bob", reason="bad canary")
        assert (entry.action, entry.from_version, entry.to_version, entry.reason) == (
            "rollback",
            2,
            1,
            "bad canary",
        )
        assert store.aliases("churn") == {"production": 1}
        assert get_deployment(store, "churn") is None
