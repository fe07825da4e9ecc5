"""Migrations: Alembic, driven from code; users never need an alembic.ini."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

MIGRATION_LOCK = 0x6D6C70726F64  # "mlprod" in ASCII: the advisory lock key for migrations


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the migrations shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", str(_migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _migrations_dir() -> Path:
    return Path(str(resources.files("mlprod.store").joinpath("migrations")))


@functools.cache
def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {_migrations_dir()}; the install is broken")
    return head


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision this code can migrate from."""
    scripts = ScriptDirectory.from_config(alembic_config())
    return frozenset(script.revision for script in scripts.walk_revisions())


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at; None for an empty database."""
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
    command.upgrade(alembic_config(connection), "head")
