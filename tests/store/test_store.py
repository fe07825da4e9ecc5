"""The store itself: opening SQLite and PostgreSQL, what it reports, and clear failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlprod.errors import StoreError
from mlprod.store import Store, hide_password


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
