"""The metadata store contract, run against a fresh SQLite file and a fresh PostgreSQL DB."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlprod.errors import ConflictError, NotFoundError, SpecError, StoreError
from mlprod.registry._records import VersionRecord
from mlprod.registry._refs import ModelRef
from mlprod.registry._store import Store
from mlprod.registry._tables import hide_password

SPEC = {"name": "churn", "data": {"target": "churned"}, "gates": {"roc_auc": ">= 0.7"}}
LIBS = {"numpy": "2.1.0", "scikit-learn": "1.5.2"}


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as opened:
        yield opened


def new_run(store: Store, model: str = "churn", **extra: Any) -> str:
    return store.create_run(
        model, user="ana", spec=SPEC, git_commit="abc123", library_versions=LIBS, **extra
    )


def register(
    store: Store, model: str = "churn", run_id: str | None = None, **extra: Any
) -> VersionRecord:
    values: dict[str, Any] = {
        "bundle_id": uuid.uuid4().hex,
        "flavor": "sklearn",
        "metrics": {"roc_auc": {"value": 0.81, "low": 0.78, "high": 0.84}},
        "gates": [{"metric": "roc_auc", "passed": True, "message": "roc_auc >= 0.7"}],
        "gates_passed": True,
        "signature": {"fields": [{"name": "tenure", "kind": "numeric"}], "classes": [False, True]},
        "threshold": 0.42,
    }
    values.update(extra)
    return store.register_version(model, run_id=run_id or new_run(store, model), **values)


def near_now(moment: datetime) -> bool:
    return moment.tzinfo is not None and abs(datetime.now(UTC) - moment) < timedelta(minutes=1)


# --- opening


def test_open_reports_dialect_and_hides_nothing_it_needs(store: Store, store_url: str) -> None:
    assert store.dialect == ("sqlite" if store_url.startswith("sqlite") else "postgresql")
    assert store.url == hide_password(store_url)
    assert repr(store) == f"Store({store.url!r})"


def test_sqlite_is_set_up_for_concurrent_writers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'deep' / 'er' / 'mlprod.db'}"
    with Store.open(url) as store, store.engine.connect() as conn:
        assert (tmp_path / "deep" / "er" / "mlprod.db").is_file()
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_unreachable_store_names_the_url_without_the_password() -> None:
    url = "postgresql+psycopg://nobody:secret@127.0.0.1:1/x"
    with pytest.raises(StoreError) as info:
        Store.open(url)
    message = str(info.value)
    assert "secret" not in message
    assert "postgresql+psycopg://nobody:***@127.0.0.1:1/x" in message
    assert "MLPROD_STORE" in message
    assert info.value.status == 503


@pytest.mark.parametrize(
    "url", ["not a url", "nosuchdb://host/x", "postgresql+nodriver://u:secret@h/x"]
)
def test_unusable_url_is_a_store_error(url: str) -> None:
    with pytest.raises(StoreError, match="MLPROD_STORE") as info:
        Store.open(url)
    assert "secret" not in str(info.value)


def test_hide_password() -> None:
    assert hide_password("postgresql+psycopg://u:secret@h:5432/db") == (
        "postgresql+psycopg://u:***@h:5432/db"
    )
    assert hide_password("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


# --- runs


def test_run_round_trip(store: Store) -> None:
    run_id = new_run(store)
    started = store.get_run(run_id)
    assert len(run_id) == 32
    assert started.model_dump(exclude={"started_at"}) == {
        "id": run_id, "model": "churn", "status": "running", "user": "ana", "ended_at": None,
        "spec": SPEC, "params": {}, "metrics": {}, "fingerprint": {}, "candidates": [],
        "git_commit": "abc123", "library_versions": LIBS, "parent_run_id": None,
        "version": None, "error": None,
    }  # fmt: skip
    assert near_now(started.started_at)
    assert started.started_at.utcoffset() == timedelta(0)

    store.finish_run(
        run_id, status="finished", params={"model": "lightgbm", "lr": 0.1},
        metrics={"roc_auc": {"value": 0.8}}, fingerprint={"rows": 3000},
        candidates=[{"name": "lr", "score": 0.7}], version=1,
    )  # fmt: skip
    done = store.get_run(run_id)
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

    store.finish_run(run_id, status="failed", error="boom")
    failed = store.get_run(run_id)
    assert (failed.status, failed.error, failed.params) == ("failed", "boom", done.params)


def test_finish_run_errors(store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"no run 'f+' to finish"):
        store.finish_run("f" * 32, status="finished")
    run_id = new_run(store)
    with pytest.raises(SpecError, match="'finished' or 'failed'"):
        store.finish_run(run_id, status="running")  # type: ignore[arg-type]
    assert store.get_run(run_id).status == "running"


def test_parent_run_is_recorded_and_checked(store: Store) -> None:
    parent = new_run(store)
    child = new_run(store, parent_run_id=parent)
    assert store.get_run(child).parent_run_id == parent
    with pytest.raises(NotFoundError, match="parent run"):
        new_run(store, parent_run_id="0" * 32)
    with pytest.raises(SpecError, match="invalid model name"):
        new_run(store, model="Churn Model")


def test_run_lookup_by_prefix(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    planned = iter(["abcd1111" + "0" * 24, "abcd2222" + "0" * 24, "ef01" + "9" * 28])

    class FakeUUID:
        def __init__(self) -> None:
            self.hex = next(planned)

    monkeypatch.setattr("mlprod.registry._store.uuid.uuid4", FakeUUID)
    first, second, third = new_run(store), new_run(store), new_run(store)
    monkeypatch.undo()
    assert store.get_run("abcd1").id == first
    assert store.get_run("ABCD2").id == second
    assert store.get_run("ef01").id == third
    assert store.get_run(first).id == first
    with pytest.raises(ConflictError) as info:
        store.get_run("abcd")
    assert first in str(info.value)
    assert second in str(info.value)
    assert "matches 2 runs" in str(info.value)
    for missing in ("abcd3", "ffff"):
        with pytest.raises(NotFoundError, match="mlprod runs list"):
            store.get_run(missing)
    for bad in ("abc", "abcd%", "abcd_", "../etc", "", "x" * 40):
        with pytest.raises(NotFoundError, match="at least 4"):
            store.get_run(bad)


def test_list_runs_newest_first(store: Store) -> None:
    a = new_run(store, "churn")
    b = new_run(store, "fraud")
    c = new_run(store, "churn")
    assert [r.id for r in store.list_runs()] == [c, b, a]
    assert [r.id for r in store.list_runs("churn")] == [c, a]
    assert [r.id for r in store.list_runs(limit=2)] == [c, b]
    assert store.list_runs("nothing") == []


# --- versions


def test_versions_number_from_one_per_model(store: Store) -> None:
    run_id = new_run(store)
    first = register(store, run_id=run_id)
    assert [register(store).version for _ in range(2)] == [2, 3]
    assert register(store, "fraud").version == 1
    assert [v.version for v in store.list_versions("churn")] == [1, 2, 3]
    assert store.list_versions("nothing") == []
    assert store.list_models() == ["churn", "fraud"]

    got = store.get_version("churn", 1)
    assert got == first
    assert got.model_dump(exclude={"created_at", "bundle_id"}) == {
        "model": "churn", "version": 1, "run_id": run_id, "flavor": "sklearn",
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
    assert store.list_versions("churn") == []


def test_json_values_are_plain_and_finite(store: Store) -> None:
    weird = {"auc": float("nan"), "inf": float("-inf"), "n": np.int64(3), "x": np.float32(0.5)}
    record = register(store, metrics=weird, signature={"edges": np.array([0.0, 1.5, np.inf])})
    for got in (record, store.get_version("churn", record.version)):
        assert got.metrics == {"auc": None, "inf": None, "n": 3, "x": 0.5}
        assert got.signature == {"edges": [0.0, 1.5, None]}
    run_id = new_run(store)
    store.finish_run(run_id, status="finished", metrics={"auc": np.float64("nan")})
    assert store.get_run(run_id).metrics == {"auc": None}


def test_unstorable_values_write_nothing(store: Store) -> None:
    run_id = new_run(store)
    with pytest.raises(TypeError, match="cannot store object as JSON"):
        register(store, run_id=run_id, metrics={"bad": object()})
    with pytest.raises(TypeError, match="cannot store object as JSON"):
        store.finish_run(run_id, status="finished", params={"bad": object()})
    assert store.list_versions("churn") == []
    assert store.get_run(run_id).status == "running"
    assert register(store).version == 1


def test_resolve(store: Store) -> None:
    for _ in range(3):
        register(store)
    store.set_alias("churn", "production", 2, actor="ana")
    assert store.resolve("churn").version == 3
    assert store.resolve("churn@2").version == 2
    assert store.resolve("churn@production").version == 2
    assert store.resolve("churn@production").aliases == ["production"]
    assert store.resolve(ModelRef(name="churn", alias="production")).version == 2


def test_resolve_errors_say_what_exists(store: Store) -> None:
    for _ in range(3):
        register(store)
    register(store, "fraud")
    store.set_alias("churn", "production", 2, actor="ana")
    with pytest.raises(NotFoundError, match=r"no model 'chrun' \(models: churn, fraud\)"):
        store.resolve("chrun@production")
    with pytest.raises(NotFoundError, match=r"churn has no version 7 \(versions: 1-3\)"):
        store.resolve("churn@7")
    with pytest.raises(NotFoundError) as info:
        store.resolve("churn@staging")
    assert "aliases: production -> 2; versions: 1-3" in str(info.value)
    assert "mlprod promote churn VERSION --alias staging" in str(info.value)
    new_run(store, "empty")
    with pytest.raises(NotFoundError, match="empty has no versions yet"):
        store.resolve("empty")
    with pytest.raises(SpecError, match="invalid model reference"):
        store.resolve("churn@")
    with pytest.raises(NotFoundError, match=r"no version 9 \(versions: 1-3\)"):
        store.get_version("churn", 9)


# --- aliases and audit


def test_alias_moves_are_audited(store: Store) -> None:
    for _ in range(3):
        register(store)
    first = store.set_alias("churn", "production", 1, actor="ana")
    moved = store.set_alias(
        "churn", "production", 3, actor="bo", reason="better recall", action="force-promote"
    )
    assert (first.alias, first.from_version, first.to_version, first.actor) == (
        "production", None, 1, "ana",
    )  # fmt: skip
    assert (moved.action, moved.from_version, moved.to_version, moved.actor, moved.reason) == (
        "force-promote", 1, 3, "bo", "better recall",
    )  # fmt: skip
    assert moved.id > first.id
    assert near_now(moved.at)
    assert store.audit_log() == [moved, first]
    assert store.audit_log("churn", limit=1) == [moved]
    assert store.audit_log("fraud") == []
    assert store.aliases("churn") == {"production": 3}
    assert store.get_version("churn", 1).aliases == []
    assert store.get_version("churn", 3).aliases == ["production"]


def test_many_aliases_per_version_and_across_models(store: Store) -> None:
    register(store), register(store), register(store, "fraud")
    store.set_alias("churn", "staging", 2, actor="ana")
    store.set_alias("churn", "production", 2, actor="ana")
    store.set_alias("fraud", "production", 1, actor="ana")
    store.set_alias("churn", "canary", 1, actor="ana")
    assert store.aliases("churn") == {"canary": 1, "production": 2, "staging": 2}
    assert store.aliases("nothing") == {}
    assert [v.aliases for v in store.list_versions("churn")] == [
        ["canary"], ["production", "staging"],
    ]  # fmt: skip
    served = store.versions_with_alias("production")
    assert [(v.model, v.version) for v in served] == [("churn", 2), ("fraud", 1)]
    assert served[0].aliases == ["production", "staging"]
    assert store.versions_with_alias("nothing") == []


def test_bad_alias_moves_change_nothing(store: Store) -> None:
    register(store)
    with pytest.raises(SpecError, match="plain number means a version"):
        store.set_alias("churn", "2", 1, actor="ana")
    with pytest.raises(NotFoundError, match=r"no version 5 \(versions: 1\)"):
        store.set_alias("churn", "production", 5, actor="ana")
    with pytest.raises(NotFoundError, match="no model 'fraud'"):
        store.set_alias("fraud", "production", 1, actor="ana")
    assert store.aliases("churn") == {}
    assert store.audit_log() == []


def test_delete_alias(store: Store) -> None:
    register(store), register(store)
    store.set_alias("churn", "production", 2, actor="ana")
    store.set_alias("churn", "staging", 1, actor="ana")
    entry = store.delete_alias("churn", "production", actor="bo", reason="incident 42")
    assert (entry.action, entry.from_version, entry.to_version, entry.reason) == (
        "delete-alias", 2, None, "incident 42",
    )  # fmt: skip
    assert store.aliases("churn") == {"staging": 1}
    assert store.audit_log()[0] == entry
    with pytest.raises(NotFoundError, match=r"no alias 'production' \(aliases: staging -> 1\)"):
        store.delete_alias("churn", "production", actor="bo")
    with pytest.raises(NotFoundError, match="churn has no alias 'production'"):
        store.resolve("churn@production")


# --- concurrency: separate processes against one store, as a team's trainers would be

WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from mlprod.registry._store import Store

    url, go, task, count = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    with Store.open(url) as store:  # the first open of a fresh store races the migration
        if task == "register":
            run = store.create_run("churn", user="w", spec={}, git_commit=None,
                                   library_versions={})
            done = [
                store.register_version(
                    "churn", run_id=run, bundle_id="0" * 32, flavor="sklearn", metrics={},
                    gates=[], gates_passed=True, signature={}, threshold=0.5,
                ).version
                for _ in range(count)
            ]
        else:
            done = [
                store.set_alias("churn", "production", 1 + (i + count) % 4, actor=task).id
                for i in range(count)
            ]
    print(json.dumps(done))
    """
)


def run_workers(url: str, tmp_path: Path, task: str, processes: int, count: int) -> list[list[int]]:
    """Start `processes` workers, release them at once, and collect what each did."""
    go = tmp_path / f"go-{task}"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(go), task if task == "register" else f"w{i}",
             str(count + i)],
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
        assert [v.version for v in store.list_versions("churn")] == numbers
        assert len(store.list_runs("churn")) == 4


def test_concurrent_alias_moves_form_one_unbroken_audit_chain(
    store_url: str, tmp_path: Path
) -> None:
    with Store.open(store_url) as store:
        for _ in range(4):
            register(store)
    run_workers(store_url, tmp_path, "alias", processes=4, count=5)
    with Store.open(store_url) as store:
        log = list(reversed(store.audit_log("churn")))
        final = store.aliases("churn")["production"]
    assert len(log) == 4 * 5 + 6
    assert log[0].from_version is None
    for before, after in itertools.pairwise(log):
        assert after.from_version == before.to_version, (before, after)
    assert log[-1].to_version == final
