"""Pinned versions load on the pool's loader: once per version, an unknown one never, and a
failed load's error answers a while before the next try (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundle_kit import Shelf, good_and_evil
from mlprod.errors import MlprodError, NotFoundError
from mlprod.registry import create_run, get_version, register_version
from mlprod.serving import _pool
from mlprod.serving._pool import ModelPool
from mlprod.store import Store


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return good_and_evil(tmp_path_factory.mktemp("pinned"))


@pytest.fixture
def pool(store: Store, bundles: dict[str, Path], tmp_path: Path) -> ModelPool:
    """churn@1 sound, churn@2 damaged in the artifact store after registration."""
    shelf = Shelf(tmp_path / "artifacts", bundles["good"])
    run = create_run(store, "churn", user="t", spec={}, git_commit=None, library_versions={})
    for _ in range(2):
        bundle_id, files = shelf.put("churn", fresh=True)
        register_version(store,
            "churn", run_id=run, bundle_id=bundle_id, flavor="xgboost", metrics={}, gates=[],
            gates_passed=True, signature={"fields": []}, threshold=0.5, files=files,
        )  # fmt: skip
    damaged = shelf.artifacts.path(get_version(store, "churn", 2).bundle_id) / "metrics.json"
    damaged.write_bytes(damaged.read_bytes() + b" ")
    pool = ModelPool(store, shelf.artifacts, "production")
    yield pool
    pool.stop()


def test_a_version_loads_once_and_then_answers_at_once(pool: ModelPool) -> None:
    assert not pool.is_loaded("churn", 1)
    first = pool.pinned_later("churn", 1)
    assert pool.pinned_later("churn", 1) is first or first.done()  # one load, not two
    loaded = first.result(timeout=120)
    assert pool.is_loaded("churn", 1)
    again = pool.pinned_later("churn", 1)
    assert again.done() and again.result() is loaded


def test_an_unknown_version_is_not_found_before_any_load(pool: ModelPool) -> None:
    with pytest.raises(NotFoundError, match=r"no version|versions"):
        pool.check_pinned("churn", 99)
    pool.check_pinned("churn", 2)  # it exists, broken or not


def test_a_failed_load_answers_with_its_error_for_a_while(pool: ModelPool) -> None:
    failed = pool.pinned_later("churn", 2)
    with pytest.raises(MlprodError, match=r"metrics\.json"):
        failed.result(timeout=120)
    assert pool.pinned_later("churn", 2) is failed  # within FAILED_FOR: no second load
    assert not pool.is_loaded("churn", 2)


def test_a_failed_load_is_tried_again_once_its_time_is_up(
    pool: ModelPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pool, "FAILED_FOR", 0.0)
    failed = pool.pinned_later("churn", 2)
    with pytest.raises(MlprodError, match=r"metrics\.json"):
        failed.result(timeout=120)
    retried = pool.pinned_later("churn", 2)
    assert retried is not failed  # a new load, which fails the same way
    with pytest.raises(MlprodError, match=r"metrics\.json"):
        retried.result(timeout=120)
