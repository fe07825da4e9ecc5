"""Schema migrations: run from code, at head after one open, safe to race, matching the tables."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mlprod.errors import StoreError
from mlprod.registry import (
    Route,
    audit_log,
    create_run,
    get_run,
    list_deployments,
    list_models,
    resolve,
)
from mlprod.store import Store, _migrate, schema

TABLES = {
    "models", "runs", "versions", "aliases", "audit",  # 0001
    "deployments", "predictions", "tokens",  # 0002
    "window_stats", "feature_counts", "request_errors", "outcomes", "alerts",  # 0004
    "trials", "curves",  # 0005
    "job_runs", "decisions", "canaries",  # 0006
    "batch_jobs",  # 0007
    "batch_predictions",  # 0009
    "alembic_version",
}  # fmt: skip
HEAD = "0010"


def revision_rows(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())
    finally:
        engine.dispose()


def test_migrations_ship_inside_the_package() -> None:
    folder = _migrate._migrations_dir()
    assert (folder / "env.py").is_file()
    assert (folder / "script.py.mako").is_file()
    assert (folder / "versions" / "0001_initial.py").is_file()
    assert (folder / "versions" / "0002_serving.py").is_file()
    assert (folder / "versions" / "0003_sampling.py").is_file()
    assert (folder / "versions" / "0004_monitoring.py").is_file()
    assert (folder / "versions" / "0005_experiments.py").is_file()
    assert _migrate.head_revision() == HEAD
    # The constant that spares every open an Alembic import is the scripts' own head.
    assert _migrate.scripts_head() == HEAD


def test_the_revision_read_without_alembic_is_alembics(store_url: str) -> None:
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            assert _migrate.current_revision(conn) is None  # an empty database
        Store.open(store_url).close()
        with engine.connect() as conn:
            ours = _migrate.current_revision(conn)
            assert ours == MigrationContext.configure(conn).get_current_revision() == HEAD
    finally:
        engine.dispose()


def test_fresh_store_is_migrated_to_head(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no alembic.ini anywhere near
    with Store.open(store_url) as store:
        tables = set(sa.inspect(store.engine).get_table_names())
        indexes = {i["name"] for i in sa.inspect(store.engine).get_indexes("runs")}
    assert tables == TABLES
    assert "ix_runs_model_started_at" in indexes
    assert revision_rows(store_url) == [_migrate.head_revision()]


def test_tables_match_the_migrations(store_url: str) -> None:
    """The Core tables the code queries and the schema Alembic builds are the same."""
    with Store.open(store_url) as store, store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    assert differences == []


def test_second_open_does_not_migrate(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store.open(store_url) as store:
        run_id = create_run(store, "churn", user="a", spec={}, git_commit=None, library_versions={})

    def refuse(connection: object) -> None:
        raise AssertionError("a store at head must not be migrated again")

    monkeypatch.setattr(_migrate, "upgrade_locked", refuse)
    with Store.open(store_url) as store:
        assert get_run(store, run_id).model == "churn"
    assert revision_rows(store_url) == [HEAD]


def test_unmigrated_store_says_how_to_fix_it(store_url: str) -> None:
    with Store.open(store_url, migrate=False) as store:
        assert "models" not in sa.inspect(store.engine).get_table_names()
        for use in (
            lambda: list_models(store),
            lambda: resolve(store, "churn"),
            lambda: audit_log(store),
        ):
            with pytest.raises(StoreError, match="Open it with migration") as info:
                use()
            assert info.value.status == 503
            assert store.url in str(info.value)
    with Store.open(store_url) as store:
        assert list_models(store) == []
    with Store.open(store_url, migrate=False) as store:
        assert list_models(store) == []


def test_store_from_a_newer_mlprod_is_refused(store_url: str) -> None:
    Store.open(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(StoreError, match="'9999', newer than this mlprod knows"):
        Store.open(store_url)


def test_downgrade_and_upgrade_again(store_url: str) -> None:
    Store.open(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        command.downgrade(_migrate.alembic_config(conn), "base")
    assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    engine.dispose()
    with Store.open(store_url) as store:
        assert set(sa.inspect(store.engine).get_table_names()) == TABLES


def test_offline_mode_renders_sql_for_review(capsys: pytest.CaptureFixture[str]) -> None:
    config = _migrate.alembic_config()
    config.set_main_option("sqlalchemy.url", "postgresql+psycopg://dba@db/mlprod")
    command.upgrade(config, "head", sql=True)
    sql = capsys.readouterr().out
    for table in ("models", "runs", "versions", "aliases", "audit"):
        assert f"CREATE TABLE {table} (" in sql
    assert "TIMESTAMP WITH TIME ZONE" in sql


def test_a_deployment_made_before_sampling_keeps_its_routes(store_url: str) -> None:
    """0002 -> 0003 adds the sample rate without touching existing deployments."""
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        command.upgrade(_migrate.alembic_config(conn), "0002")
        conn.execute(
            sa.text(
                "INSERT INTO deployments (model, routes, shadows, updated_at, updated_by) "
                "VALUES ('churn', '[{\"version\": 1, \"weight\": 100}]', '[2]', "
                "'2026-11-01 10:00:00+00:00', 'ana')"
            )
        )
    engine.dispose()
    with Store.open(store_url) as store:
        (deployment,) = list_deployments(store)
    assert deployment.routes == [Route(version=1, weight=100)]
    assert deployment.shadows == [2]
    assert deployment.log_sample_rate is None
    assert revision_rows(store_url) == [HEAD]
