"""Deployments in the store: routes, shadows, clear and rollback, all audited."""

from __future__ import annotations

import pytest

from bundle_kit import Shelf
from mlprod.errors import ConflictError, GateFailedError, NotFoundError, SpecError
from mlprod.registry import (
    Route,
    alias_map,
    audit_log,
    change_marker,
    clear_deployment,
    create_run,
    get_deployment,
    list_deployments,
    register_version,
    rollback,
    set_alias,
    set_deployment,
)
from mlprod.store import Store


def _store_with_versions(
    url: str, shelf: Shelf, count: int, failing: tuple[int, ...] = ()
) -> Store:
    """`count` versions of churn (one real bundle); those in `failing` failed their gates."""
    store = Store.open(url)
    run = create_run(store, "churn", user="t", spec={}, git_commit=None, library_versions={})
    bundle_id, files = shelf.put("churn")
    for number in range(1, count + 1):
        passed = number not in failing
        gates = [{"metric": "recall", "passed": passed, "message": f"recall gate of v{number}"}]
        register_version(store,
            "churn", run_id=run, bundle_id=bundle_id, flavor="sklearn", metrics={}, gates=gates,
            gates_passed=passed, signature={"fields": []}, threshold=0.5, files=files,
        )  # fmt: skip
    return store


def test_routes_and_shadows_round_trip_and_are_audited(store_url: str, shelf: Shelf) -> None:
    with _store_with_versions(store_url, shelf, 3) as store:
        before = change_marker(store)
        result = set_deployment(
            store,
            "churn",
            [Route(version=1, weight=95), Route(version=2, weight=5)],
            [3],
            artifacts=shelf.artifacts,
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
        entry = audit_log(store, "churn")[0]
        assert (entry.action, entry.actor, entry.to_version) == ("deploy", "ann", 1)
        assert entry.reason == "1=95% 2=5%; shadow 3 (canary)"
        assert clear_deployment(store, "churn", actor="ann") is True
        assert get_deployment(store, "churn") is None
        assert audit_log(store, "churn")[0].action == "undeploy"


@pytest.mark.parametrize(
    ("routes", "shadows", "message"),
    [
        ([], [], "at least one route"),
        ([(1, 50), (1, 50)], [], "routed twice"),
        ([(1, 100)], [1], "both routed and shadowed"),
    ],
)
def test_bad_deployments_are_refused(
    store_url: str, shelf: Shelf, routes: list[tuple[int, float]], shadows: list[int], message: str
) -> None:
    with (
        _store_with_versions(store_url, shelf, 1) as store,
        pytest.raises(SpecError, match=message),
    ):
        set_deployment(
            store,
            "churn",
            [Route(version=v, weight=w) for v, w in routes],
            shadows,
            artifacts=shelf.artifacts,
            actor="a",
        )


def test_unknown_version_is_refused_and_nothing_changes(store_url: str, shelf: Shelf) -> None:
    with _store_with_versions(store_url, shelf, 1) as store:
        with pytest.raises(NotFoundError, match="no version 7"):
            set_deployment(
                store, "churn", [Route(version=7, weight=1)], artifacts=shelf.artifacts, actor="a"
            )
        assert get_deployment(store, "churn") is None


def test_rollback_moves_the_alias_back_and_clears_routes(store_url: str, shelf: Shelf) -> None:
    with _store_with_versions(store_url, shelf, 3) as store:
        with pytest.raises(ConflictError, match="no earlier version"):
            rollback(store, "churn", artifacts=shelf.artifacts, actor="a")
        set_alias(store, "churn", "production", 1, artifacts=shelf.artifacts, actor="a")
        set_alias(store, "churn", "production", 2, artifacts=shelf.artifacts, actor="a")
        set_deployment(
            store,
            "churn",
            [Route(version=2, weight=90), Route(version=3, weight=10)],
            artifacts=shelf.artifacts,
            actor="a",
        )
        entry = rollback(
            store, "churn", artifacts=shelf.artifacts, actor="bob", reason="bad canary"
        )
        assert (entry.action, entry.from_version, entry.to_version, entry.reason) == (
            "rollback",
            2,
            1,
            "bad canary",
        )
        assert alias_map(store, "churn") == {"production": 1}
        assert get_deployment(store, "churn") is None


def test_no_traffic_reaches_a_version_that_failed_its_gates_without_force(
    store_url: str, shelf: Shelf
) -> None:
    """Alias, route, canary and rollback: the check sits where they are stored."""
    with _store_with_versions(store_url, shelf, 3, failing=(3,)) as store:
        set_alias(store, "churn", "production", 1, artifacts=shelf.artifacts, actor="ann")
        marker = change_marker(store)
        art = shelf.artifacts
        refused = [
            lambda: set_alias(store, "churn", "production", 3, artifacts=art, actor="ann"),
            lambda: set_alias(store, "churn", "staging", 3, artifacts=art, actor="ann"),
            lambda: set_deployment(
                store, "churn", [Route(version=3, weight=100)], artifacts=art, actor="ann"
            ),
            lambda: set_deployment(
                store, "churn", [Route(version=1, weight=90), Route(version=3, weight=10)],
                artifacts=art, actor="ann",
            ),
        ]  # fmt: skip
        for attempt in refused:
            with pytest.raises(GateFailedError, match="churn@3 failed its gates") as info:
                attempt()
            assert "recall gate of v3" in str(info.value) and "--force" in str(info.value)
        assert change_marker(store) == marker  # nothing was written
        assert get_deployment(store, "churn") is None and alias_map(store, "churn") == {
            "production": 1
        }
        with pytest.raises(SpecError, match="--force needs --reason"):
            set_deployment(
                store,
                "churn",
                [Route(version=3)],
                artifacts=shelf.artifacts,
                actor="ann",
                force=True,
            )

        shadowed = set_deployment(
            store, "churn", [Route(version=1)], [3], artifacts=shelf.artifacts, actor="ann"
        )
        assert shadowed.shadows == [3]  # a shadow answers no one: watching it is allowed
        set_deployment(
            store, "churn", [Route(version=1, weight=90), Route(version=3, weight=10)],
            artifacts=shelf.artifacts, actor="ann", force=True, reason="hotfix canary",
        )  # fmt: skip
        entry = audit_log(store, "churn")[0]
        assert (entry.action, entry.reason) == ("force-deploy", "1=90% 3=10% (hotfix canary)")
        forced = set_alias(
            store,
            "churn",
            "production",
            3,
            artifacts=shelf.artifacts,
            actor="ann",
            force=True,
            reason="hotfix",
        )
        assert forced.action == "force-promote"
        set_alias(store, "churn", "production", 2, artifacts=shelf.artifacts, actor="ann")
        with pytest.raises(GateFailedError, match="cannot take 'production' back"):
            rollback(store, "churn", artifacts=shelf.artifacts, actor="ann")
        assert alias_map(store, "churn")["production"] == 2
        back = rollback(
            store, "churn", artifacts=shelf.artifacts, actor="ann", force=True, reason="v2 broke"
        )
        assert (back.action, back.to_version) == ("force-rollback", 3)
