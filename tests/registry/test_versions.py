"""Runs, versions, aliases and audit: the registry contract on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bundle_kit import Shelf
from mlprod.errors import ConflictError, NotFoundError, SpecError
from mlprod.registry import (
    alias_map,
    audit_log,
    create_run,
    delete_alias,
    finish_run,
    get_run,
    get_version,
    list_models,
    list_runs,
    list_versions,
    register_version,
    resolve,
    set_alias,
    versions_with_alias,
)
from mlprod.registry._records import VersionRecord
from mlprod.registry._refs import ModelRef
from mlprod.store._store import Store

SPEC = {"name": "churn", "data": {"target": "churned"}, "gates": {"roc_auc": ">= 0.7"}}
LIBS = {"numpy": "2.1.0", "scikit-learn": "1.5.2"}


def new_run(store: Store, model: str = "churn", **extra: Any) -> str:
    return create_run(
        store, model, user="ana", spec=SPEC, git_commit="abc123", library_versions=LIBS, **extra
    )


def register(
    store: Store,
    model: str = "churn",
    run_id: str | None = None,
    shelf: Shelf | None = None,
    **extra: Any,
) -> VersionRecord:
    """A version; with `shelf`, of a real stored bundle that a promotion can load."""
    bundle_id, files = shelf.put(model) if shelf else (uuid.uuid4().hex, {})
    values: dict[str, Any] = {
        "bundle_id": bundle_id,
        "files": files,
        "flavor": "sklearn",
        "metrics": {"roc_auc": {"value": 0.81, "low": 0.78, "high": 0.84}},
        "gates": [{"metric": "roc_auc", "passed": True, "message": "roc_auc >= 0.7"}],
        "gates_passed": True,
        "signature": {"fields": [{"name": "tenure", "kind": "numeric"}], "classes": [False, True]},
        "threshold": 0.42,
    }
    values.update(extra)
    return register_version(store, model, run_id=run_id or new_run(store, model), **values)


def near_now(moment: datetime) -> bool:
    return moment.tzinfo is not None and abs(datetime.now(UTC) - moment) < timedelta(minutes=1)


# --- opening


# --- runs


def test_run_round_trip(store: Store) -> None:
    run_id = new_run(store)
    started = get_run(store, run_id)
    assert len(run_id) == 32
    assert started.model_dump(exclude={"started_at"}) == {
        "id": run_id, "model": "churn", "status": "running", "user": "ana", "ended_at": None,
        "spec": SPEC, "params": {}, "metrics": {}, "fingerprint": {}, "candidates": [],
        "git_commit": "abc123", "library_versions": LIBS, "parent_run_id": None,
        "version": None, "error": None,
    }  # fmt: skip
    assert near_now(started.started_at)
    assert started.started_at.utcoffset() == timedelta(0)

    finish_run(store,
        run_id, status="finished", params={"model": "lightgbm", "lr": 0.1},
        metrics={"roc_auc": {"value": 0.8}}, fingerprint={"rows": 3000},
        candidates=[{"name": "lr", "score": 0.7}], version=1,
    )  # fmt: skip
    done = get_run(store, run_id)
    assert done.status == "finished"
    assert done.params == {"model": "lightgbm", "lr": 0.1}
    assert done.metrics == {"roc_auc": {"value": 0.8}}
    assert done.fingerprint == {"rows": 3000}
    assert done.candidates == [{"name": "lr", "score": 0.7}]
    assert done.version == 1
    assert done.ended_at is not None
    assert done.ended_at >= done.started_at
    assert done.started_at == started.started_at
    json.dumps(done.model_dump(mode="json"))

    finish_run(store, run_id, status="failed", error="boom")
    failed = get_run(store, run_id)
    assert (failed.status, failed.error, failed.params) == ("failed", "boom", done.params)


def test_finish_run_errors(store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"no run 'f+' to finish"):
        finish_run(store, "f" * 32, status="finished")
    run_id = new_run(store)
    with pytest.raises(SpecError, match="'finished' or 'failed'"):
        finish_run(store, run_id, status="running")  # type: ignore[arg-type]
    assert get_run(store, run_id).status == "running"


def test_parent_run_is_recorded_and_checked(store: Store) -> None:
    parent = new_run(store)
    child = new_run(store, parent_run_id=parent)
    assert get_run(store, child).parent_run_id == parent
    with pytest.raises(NotFoundError, match="parent run"):
        new_run(store, parent_run_id="0" * 32)
    with pytest.raises(SpecError, match="invalid model name"):
        new_run(store, model="Churn Model")


def test_run_lookup_by_prefix(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    planned = iter(["abcd1111" + "0" * 24, "abcd2222" + "0" * 24, "ef01" + "9" * 28])

    class FakeUUID:
        def __init__(self) -> None:
            self.hex = next(planned)

    monkeypatch.setattr("mlprod.registry._runs.uuid.uuid4", FakeUUID)
    first, second, third = new_run(store), new_run(store), new_run(store)
    monkeypatch.undo()
    assert get_run(store, "abcd1").id == first
    assert get_run(store, "ABCD2").id == second
    assert get_run(store, "ef01").id == third
    assert get_run(store, first).id == first
    with pytest.raises(ConflictError) as info:
        get_run(store, "abcd")
    assert first in str(info.value)
    assert second in str(info.value)
    assert "matches 2 runs" in str(info.value)
    for missing in ("abcd3", "ffff"):
        with pytest.raises(NotFoundError, match="mlprod runs list"):
            get_run(store, missing)
    for bad in ("abc", "abcd%", "abcd_", "../etc", "", "x" * 40):
        with pytest.raises(NotFoundError, match="at least 4"):
            get_run(store, bad)


def test_list_runs_newest_first(store: Store) -> None:
    a = new_run(store, "churn")
    b = new_run(store, "fraud")
    c = new_run(store, "churn")
    assert [r.id for r in list_runs(store)] == [c, b, a]
    assert [r.id for r in list_runs(store, "churn")] == [c, a]
    assert [r.id for r in list_runs(store, limit=2)] == [c, b]
    assert list_runs(store, "nothing") == []


# --- versions


def test_versions_number_from_one_per_model(store: Store) -> None:
    run_id = new_run(store)
    first = register(store, run_id=run_id)
    assert [register(store).version for _ in range(2)] == [2, 3]
    assert register(store, "fraud").version == 1
    assert [v.version for v in list_versions(store, "churn")] == [1, 2, 3]
    assert list_versions(store, "nothing") == []
    assert list_models(store) == ["churn", "fraud"]

    got = get_version(store, "churn", 1)
    assert got == first
    assert got.model_dump(exclude={"created_at", "bundle_id"}) == {
        "model": "churn", "version": 1, "run_id": run_id, "flavor": "sklearn", "files": {},
        "metrics": {"roc_auc": {"value": 0.81, "low": 0.78, "high": 0.84}},
        "gates": [{"metric": "roc_auc", "passed": True, "message": "roc_auc >= 0.7"}],
        "gates_passed": True, "threshold": 0.42, "aliases": [],
        "signature": {"fields": [{"name": "tenure", "kind": "numeric"}], "classes": [False, True]},
    }  # fmt: skip
    assert near_now(got.created_at)
    assert got.created_at.utcoffset() == timedelta(0)
    assert got.ref == "churn@1"


def test_register_version_checks_its_run(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no run"):
        register(store, run_id="0" * 32)
    fraud_run = new_run(store, "fraud")
    with pytest.raises(ConflictError, match="trained 'fraud', not 'churn'"):
        register(store, "churn", run_id=fraud_run)
    assert list_versions(store, "churn") == []


def test_json_values_are_plain_and_finite(store: Store) -> None:
    weird = {"auc": float("nan"), "inf": float("-inf"), "n": np.int64(3), "x": np.float32(0.5)}
    record = register(store, metrics=weird, signature={"edges": np.array([0.0, 1.5, np.inf])})
    for got in (record, get_version(store, "churn", record.version)):
        assert got.metrics == {"auc": None, "inf": None, "n": 3, "x": 0.5}
        assert got.signature == {"edges": [0.0, 1.5, None]}
    run_id = new_run(store)
    finish_run(store, run_id, status="finished", metrics={"auc": np.float64("nan")})
    assert get_run(store, run_id).metrics == {"auc": None}


def test_unstorable_values_write_nothing(store: Store) -> None:
    run_id = new_run(store)
    with pytest.raises(TypeError, match="cannot store object as JSON"):
        register(store, run_id=run_id, metrics={"bad": object()})
    with pytest.raises(TypeError, match="cannot store object as JSON"):
        finish_run(store, run_id, status="finished", params={"bad": object()})
    assert list_versions(store, "churn") == []
    assert get_run(store, run_id).status == "running"
    assert register(store).version == 1


def test_resolve(store: Store, shelf: Shelf) -> None:
    for _ in range(3):
        register(store, shelf=shelf)
    set_alias(store, "churn", "production", 2, artifacts=shelf.artifacts, actor="ana")
    assert resolve(store, "churn").version == 3
    assert resolve(store, "churn@2").version == 2
    assert resolve(store, "churn@production").version == 2
    assert resolve(store, "churn@production").aliases == ["production"]
    assert resolve(store, ModelRef(name="churn", alias="production")).version == 2


def test_resolve_errors_say_what_exists(store: Store, shelf: Shelf) -> None:
    for _ in range(3):
        register(store, shelf=shelf)
    register(store, "fraud", shelf=shelf)
    set_alias(store, "churn", "production", 2, artifacts=shelf.artifacts, actor="ana")
    with pytest.raises(NotFoundError, match=r"no model 'chrun' \(models: churn, fraud\)"):
        resolve(store, "chrun@production")
    with pytest.raises(NotFoundError, match=r"churn has no version 7 \(versions: 1-3\)"):
        resolve(store, "churn@7")
    with pytest.raises(NotFoundError) as info:
        resolve(store, "churn@staging")
    assert "aliases: production -> 2; versions: 1-3" in str(info.value)
    assert "mlprod promote churn VERSION --alias staging" in str(info.value)
    new_run(store, "empty")
    with pytest.raises(NotFoundError, match="empty has no versions yet"):
        resolve(store, "empty")
    with pytest.raises(SpecError, match="invalid model reference"):
        resolve(store, "churn@")
    with pytest.raises(NotFoundError, match=r"no version 9 \(versions: 1-3\)"):
        get_version(store, "churn", 9)


# --- aliases and audit


def test_alias_moves_are_audited(store: Store, shelf: Shelf) -> None:
    for _ in range(3):
        register(store, shelf=shelf)
    first = set_alias(store, "churn", "production", 1, artifacts=shelf.artifacts, actor="ana")
    moved = set_alias(
        store,
        "churn",
        "production",
        3,
        artifacts=shelf.artifacts,
        actor="bo",
        reason="better recall",
        action="force-promote",
    )
    assert (first.alias, first.from_version, first.to_version, first.actor) == (
        "production", None, 1, "ana",
    )  # fmt: skip
    assert (moved.action, moved.from_version, moved.to_version, moved.actor, moved.reason) == (
        "force-promote", 1, 3, "bo", "better recall",
    )  # fmt: skip
    assert moved.id > first.id
    assert near_now(moved.at)
    assert audit_log(store) == [moved, first]
    assert audit_log(store, "churn", limit=1) == [moved]
    assert audit_log(store, "fraud") == []
    assert alias_map(store, "churn") == {"production": 3}
    assert get_version(store, "churn", 1).aliases == []
    assert get_version(store, "churn", 3).aliases == ["production"]


def test_many_aliases_per_version_and_across_models(store: Store, shelf: Shelf) -> None:
    (
        register(store, shelf=shelf),
        register(store, shelf=shelf),
        register(store, "fraud", shelf=shelf),
    )
    set_alias(store, "churn", "staging", 2, artifacts=shelf.artifacts, actor="ana")
    set_alias(store, "churn", "production", 2, artifacts=shelf.artifacts, actor="ana")
    set_alias(store, "fraud", "production", 1, artifacts=shelf.artifacts, actor="ana")
    set_alias(store, "churn", "canary", 1, artifacts=shelf.artifacts, actor="ana")
    assert alias_map(store, "churn") == {"canary": 1, "production": 2, "staging": 2}
    assert alias_map(store, "nothing") == {}
    assert [v.aliases for v in list_versions(store, "churn")] == [
        ["canary"], ["production", "staging"],
    ]  # fmt: skip
    served = versions_with_alias(store, "production")
    assert [(v.model, v.version) for v in served] == [("churn", 2), ("fraud", 1)]
    assert served[0].aliases == ["production", "staging"]
    assert versions_with_alias(store, "nothing") == []


def test_bad_alias_moves_change_nothing(store: Store, shelf: Shelf) -> None:
    register(store, shelf=shelf)
    with pytest.raises(SpecError, match="plain number means a version"):
        set_alias(store, "churn", "2", 1, artifacts=shelf.artifacts, actor="ana")
    with pytest.raises(NotFoundError, match=r"no version 5 \(versions: 1\)"):
        set_alias(store, "churn", "production", 5, artifacts=shelf.artifacts, actor="ana")
    with pytest.raises(NotFoundError, match="no model 'fraud'"):
        set_alias(store, "fraud", "production", 1, artifacts=shelf.artifacts, actor="ana")
    assert alias_map(store, "churn") == {}
    assert audit_log(store) == []


def test_delete_alias(store: Store, shelf: Shelf) -> None:
    register(store, shelf=shelf), register(store, shelf=shelf)
    set_alias(store, "churn", "production", 2, artifacts=shelf.artifacts, actor="ana")
    set_alias(store, "churn", "staging", 1, artifacts=shelf.artifacts, actor="ana")
    entry = delete_alias(store, "churn", "production", actor="bo", reason="incident 42")
    assert (entry.action, entry.from_version, entry.to_version, entry.reason) == (
        "delete-alias", 2, None, "incident 42",
    )  # fmt: skip
    assert alias_map(store, "churn") == {"staging": 1}
    assert audit_log(store)[0] == entry
    with pytest.raises(NotFoundError, match=r"no alias 'production' \(aliases: staging -> 1\)"):
        delete_alias(store, "churn", "production", actor="bo")
    with pytest.raises(NotFoundError, match="churn has no alias 'production'"):
        resolve(store, "churn@production")


# --- concurrency: separate processes against one store, as a team's trainers would be

WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from mlprod.registry import create_run, register_version, set_alias
    from mlprod.store import LocalArtifacts, Store

    url, go, task, count = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    artifacts = LocalArtifacts(sys.argv[5])
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    with Store.open(url) as store:  # the first open of a fresh store races the migration
        if task == "register":
            run = create_run(store, "churn", user="w", spec={}, git_commit=None,
                             library_versions={})
            done = [
                register_version(
                    store, "churn", run_id=run, bundle_id="0" * 32, flavor="sklearn",
                    metrics={}, gates=[], gates_passed=True, signature={}, threshold=0.5,
                    files={},
                ).version
                for _ in range(count)
            ]
        else:
            done = [
                set_alias(store, "churn", "production", 1 + (i + count) % 4,
                          artifacts=artifacts, actor=task).id
                for i in range(count)
            ]
    print(json.dumps(done))
    """
)


def run_workers(
    url: str, tmp_path: Path, task: str, processes: int, count: int, artifacts: str = ""
) -> list[list[int]]:
    """Start `processes` workers, release them at once, and collect what each did."""
    go = tmp_path / f"go-{task}"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(go), task if task == "register" else f"w{i}",
             str(count + i), artifacts or str(tmp_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(processes)
    ]  # fmt: skip
    go.touch()
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err
        results.append(json.loads(out))
    return results


def test_concurrent_registrations_get_distinct_consecutive_versions(
    store_url: str, tmp_path: Path
) -> None:
    results = run_workers(store_url, tmp_path, "register", processes=4, count=5)
    # worker i registered 5 + i versions; every number is handed out exactly once
    numbers = sorted(n for result in results for n in result)
    assert numbers == list(range(1, 4 * 5 + 6 + 1))
    for result in results:
        assert result == sorted(result)
    with Store.open(store_url) as store:
        assert [v.version for v in list_versions(store, "churn")] == numbers
        assert len(list_runs(store, "churn")) == 4


@pytest.mark.slow
def test_concurrent_alias_moves_form_one_unbroken_audit_chain(
    store_url: str, tmp_path: Path, shelf: Shelf
) -> None:
    with Store.open(store_url) as store:
        for _ in range(4):
            register(store, shelf=shelf)
    root = str(shelf.artifacts.root)
    run_workers(store_url, tmp_path, "alias", processes=4, count=5, artifacts=root)
    with Store.open(store_url) as store:
        log = list(reversed(audit_log(store, "churn")))
        final = alias_map(store, "churn")["production"]
    assert len(log) == 4 * 5 + 6
    assert log[0].from_version is None
    for before, after in itertools.pairwise(log):
        assert after.from_version == before.to_version, (before, after)
    assert log[-1].to_version == final
