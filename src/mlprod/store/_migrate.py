"""Migrations: Alembic, driven from code; users never need an alembic.ini."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported inside the functions that drive it: every command opens the store,
# and one at head only reads its revision (plain SQL), while Alembic costs a tenth of a
# second to import. `HEAD` lets that check skip Alembic's script directory too; a test
# holds it to Alembic's own head.
HEAD = "0010"
VERSION_TABLE = "alembic_version"

MIGRATION_LOCK = 0x6D6C70726F64  # "mlprod" in ASCII: the advisory lock key for migrations


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the migrations shipped inside the package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _migrations_dir() -> Path:
    return Path(str(resources.files("mlprod.store").joinpath("migrations")))


def head_revision() -> str:
    """The newest schema revision this code knows."""
    return HEAD


@functools.cache
def scripts_head() -> str:
    """The newest revision among the migration scripts, as Alembic reads them."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {_migrations_dir()}; the install is broken")
    return head


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision this code can migrate from."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    return frozenset(script.revision for script in scripts.walk_revisions())


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at; None for an empty database.

    Read with plain SQL (Alembic's table, one row at a single head); anything else is
    left to Alembic's own reading.
    """
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    if len(rows) == 1:
        return str(rows[0][0])
    if not rows:
        return None
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def upgrade_locked(connection: Connection) -> None:
    """Upgrade to head unless a concurrent opener already did, holding a migration lock.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: the caller's ``BEGIN
    IMMEDIATE`` already holds the database's write lock. Either way the revision is read
    again once the lock is held, so the second of two racing processes does nothing.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
    if current_revision(connection) != head_revision():
        upgrade(connection)


def upgrade(connection: Connection) -> None:
    """Bring the database on `connection` to head, inside the caller's transaction."""
    from alembic import command

    command.upgrade(alembic_config(connection), "head")
