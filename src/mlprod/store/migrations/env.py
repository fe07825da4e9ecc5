"""Alembic environment for the metadata store, run from code by ``Store.open``.

``Store.open`` passes its own connection (already inside a locked transaction) through
``config.attributes["connection"]``; the URL path exists for ``alembic`` run by hand, and
offline mode renders SQL for a DBA to review.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection

from mlprod.store.schema import metadata


def _run_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    config = context.config
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_online(connection)
        return
    engine = sa.create_engine(str(config.get_main_option("sqlalchemy.url")))
    try:
        with engine.begin() as own:
            _run_online(own)
    finally:
        engine.dispose()


_main()
