"""Tuning studies live beside the store, never among its tables, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from mlprod.store import Store
from mlprod.training import study_storage


def test_optuna_tables_never_mix_with_the_metadata_tables(store_url: str) -> None:
    import optuna

    with Store.open(store_url) as store:
        before = set(sa.inspect(store.engine).get_table_names())
        with study_storage(store, heartbeat=5) as storage:
            optuna.create_study(storage=storage, study_name="s")
            assert storage.get_all_studies()[0].study_name == "s"
        assert set(sa.inspect(store.engine).get_table_names()) == before
        if store.dialect == "postgresql":
            assert "studies" in sa.inspect(store.engine).get_table_names(schema="optuna")
