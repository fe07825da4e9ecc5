"""Bad artifacts meet the registry: the store's hashes decide, and broken versions take no traffic.

On SQLite and PostgreSQL: a model file swapped in the artifact store, its hash rewritten in
the manifest, is refused against the hashes the store kept; promote, deploy and rollback
refuse a version that does not load, verify and answer a warm-up, forced or not.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from bundle_kit import Shelf, good_and_evil, rewrite_manifest, swap_file
from mlprod.bundle import Model
from mlprod.errors import BrokenVersionError, IntegrityError
from mlprod.registry import (
    Route,
    alias_map,
    change_marker,
    create_run,
    get_deployment,
    get_version,
    open_version,
    register_version,
    rollback,
    set_alias,
    set_deployment,
)
from mlprod.store import Store
from mlprod.store import schema as t


@pytest.fixture(scope="module")
def xgb(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return good_and_evil(tmp_path_factory.mktemp("xgb"))


@pytest.fixture
def xgb_shelf(xgb: dict[str, Path], tmp_path: Path) -> Shelf:
    return Shelf(tmp_path / "xgb-artifacts", xgb["good"])


def _versions(store: Store, shelf: Shelf, count: int) -> None:
    """`count` versions of churn, each its own stored copy of the bundle."""
    run = create_run(store, "churn", user="t", spec={}, git_commit=None, library_versions={})
    for _ in range(count):
        bundle_id, files = shelf.put("churn", fresh=True)  # damage one version, not all
        register_version(store,
            "churn", run_id=run, bundle_id=bundle_id, flavor="xgboost", metrics={}, gates=[],
            gates_passed=True, signature={"fields": []}, threshold=0.5, files=files,
        )  # fmt: skip


def _folder(store: Store, shelf: Shelf, version: int) -> Path:
    return shelf.artifacts.path(get_version(store, "churn", version).bundle_id)


def test_the_swap_attack_is_refused_against_the_stores_hashes(
    store: Store, xgb_shelf: Shelf, xgb: dict[str, Path]
) -> None:
    _versions(store, xgb_shelf, 1)
    record = get_version(store, "churn", 1)
    assert record.files is not None and set(record.files) == {
        "manifest.json", "metrics.json", "model.ubj", "test.parquet", "transformer.skops",
    }  # fmt: skip
    model = open_version(xgb_shelf.artifacts, record)
    frame, _ = model.test_data()
    honest = int(np.sum(model.score(frame) >= 0.5))

    folder = _folder(store, xgb_shelf, 1)
    swap_file(folder, "model.ubj", xgb["evil"] / "model.ubj")
    fooled = Model.open(folder)  # its own manifest was rewritten to match: fooled
    assert int(np.sum(fooled.score(frame) >= 0.5)) != honest
    with pytest.raises(IntegrityError, match=r"model\.ubj") as caught:
        open_version(xgb_shelf.artifacts, get_version(store, "churn", 1))
    assert "modified after registration" in str(caught.value)


DAMAGE: dict[str, Callable[[Path, dict[str, Path]], Any]] = {
    "swapped model": lambda folder, xgb: swap_file(folder, "model.ubj", xgb["evil"] / "model.ubj"),
    "truncated model": lambda folder, xgb: (folder / "model.ubj").write_bytes(b"\x7b"),
    "manifest path out of the bundle": lambda folder, xgb: rewrite_manifest(
        folder, model_file="../model.ubj"
    ),
    "bundle gone": lambda folder, xgb: shutil.rmtree(folder),
}
REASONS = {
    "swapped model": r"model\.ubj",
    "truncated model": r"model\.ubj",
    "manifest path out of the bundle": r"manifest\.json",
    "bundle gone": "no artifact",
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_promote_deploy_and_rollback_refuse_a_damaged_version_with_the_reason(
    store: Store, xgb_shelf: Shelf, xgb: dict[str, Path], damage: str
) -> None:
    _versions(store, xgb_shelf, 3)
    art = xgb_shelf.artifacts
    set_alias(store, "churn", "production", 2, artifacts=art, actor="ann")
    set_alias(store, "churn", "production", 1, artifacts=art, actor="ann")
    DAMAGE[damage](_folder(store, xgb_shelf, 2), xgb)
    marker = change_marker(store)
    attempts = {
        "become 'production'": lambda: set_alias(
            store, "churn", "production", 2, artifacts=art, actor="ann", force=True, reason="x"
        ),
        "become 'staging'": lambda: set_alias(
            store, "churn", "staging", 2, artifacts=art, actor="ann"
        ),
        "take traffic": lambda: set_deployment(
            store, "churn", [Route(version=1, weight=90), Route(version=2, weight=10)],
            artifacts=art, actor="ann",
        ),
        "shadow": lambda: set_deployment(
            store, "churn", [Route(version=1)], [2], artifacts=art, actor="ann"
        ),
        "take 'production' back": lambda: rollback(store, "churn", artifacts=art, actor="ann"),
    }  # fmt: skip
    for role, attempt in attempts.items():
        with pytest.raises(BrokenVersionError, match=REASONS[damage]) as caught:
            attempt()
        message = str(caught.value)
        assert message.startswith(f"churn@2 cannot {role}: it does not load"), message
        assert "--force does not override this" in message
        assert caught.value.status == 409
    assert change_marker(store) == marker  # nothing moved, nothing audited
    assert alias_map(store, "churn") == {"production": 1}
    assert get_deployment(store, "churn") is None
    # the undamaged versions still move
    set_deployment(
        store, "churn", [Route(version=1, weight=90), Route(version=3, weight=10)],
        artifacts=art, actor="ann",
    )  # fmt: skip
    assert set_alias(store, "churn", "production", 3, artifacts=art, actor="ann").to_version == 3


def test_a_version_registered_before_the_store_kept_hashes_loads_against_its_manifest(
    store: Store, xgb_shelf: Shelf
) -> None:
    """Revision 0008 leaves older versions' files NULL: their manifest is the check, as before."""
    _versions(store, xgb_shelf, 2)
    store.write(lambda conn: conn.execute(sa.update(t.versions).values(files=None)))
    art = xgb_shelf.artifacts
    legacy = get_version(store, "churn", 1)
    assert legacy.files is None
    assert open_version(art, legacy).warm_up().shape == (5,)
    assert set_alias(store, "churn", "production", 1, artifacts=art, actor="a").to_version == 1
    folder = _folder(store, xgb_shelf, 2)
    (folder / "test.parquet").write_bytes(b"PAR1")  # the manifest still catches a plain edit
    with pytest.raises(BrokenVersionError, match=r"test\.parquet was modified"):
        set_alias(store, "churn", "production", 2, artifacts=art, actor="a")
    # a file its manifest was rewritten to accept, but no library can read, fails the load
    swap_file(folder, "model.ubj", folder / "metrics.json")
    swap_file(folder, "test.parquet", _folder(store, xgb_shelf, 1) / "test.parquet")
    with pytest.raises(BrokenVersionError, match="does not load") as caught:
        set_alias(store, "churn", "production", 2, artifacts=art, actor="a")
    assert "XGBoost" in str(caught.value) or "xgboost" in str(caught.value).lower()


def test_versions_from_before_0008_come_through_the_migration_without_hashes(
    store_url: str,
) -> None:
    from alembic import command

    from mlprod.store import _migrate

    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        command.upgrade(_migrate.alembic_config(conn), "0007")
        conn.execute(sa.text("INSERT INTO models (name, created_at) VALUES ('churn', :at)"),
                     {"at": "2026-11-01 10:00:00+00:00"})  # fmt: skip
        conn.execute(
            sa.text(
                "INSERT INTO runs (id, model, status, user_name, started_at, spec, params, "
                "metrics, fingerprint, candidates, library_versions) VALUES (:id, 'churn', "
                "'finished', 'ana', :at, '{}', '{}', '{}', '{}', '[]', '{}')"
            ),
            {"id": "0" * 32, "at": "2026-11-01 10:00:00+00:00"},
        )
        conn.execute(
            sa.text(
                "INSERT INTO versions (model, version, run_id, created_at, bundle_id, flavor, "
                "metrics, gates, gates_passed, signature, threshold) VALUES ('churn', 1, :id, "
                ":at, :bundle, 'xgboost', '{}', '[]', :passed, '{}', 0.5)"
            ),
            {"id": "0" * 32, "at": "2026-11-01 10:00:00+00:00", "bundle": "1" * 32,
             "passed": True},
        )  # fmt: skip
    engine.dispose()
    with Store.open(store_url) as store:
        record = get_version(store, "churn", 1)
    assert (record.bundle_id, record.files) == ("1" * 32, None)
