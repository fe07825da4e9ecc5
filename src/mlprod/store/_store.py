"""The metadata store: one SQL database (SQLite or PostgreSQL) and its transactions.

Same code and same tests on both. Every write is one short transaction, retried when
another process got there first: SQLite takes the write lock up front (``BEGIN
IMMEDIATE``) so writers queue instead of failing with "database is locked"; PostgreSQL
relies on unique keys and row locks, and a writer that loses a race simply tries again.
What lives in the tables (runs, versions, the prediction log, live windows, ...) belongs
to the packages that own it; they all go through `Store.read` and `Store.write`.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from mlprod.errors import ConflictError, NotFoundError, StoreError
from mlprod.store import _migrate
from mlprod.store._engine import HINT, create_engine, hide_password, scrub

if TYPE_CHECKING:
    from mlprod.settings import Settings

T = TypeVar("T")
ATTEMPTS = 20
_BUSY_STATES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available


class MetadataStore(Protocol):
    """What every package needs of the metadata store: transactions and its dialect.

    `Store` is the implementation (SQLAlchemy over SQLite or PostgreSQL); the contract
    tests run every store-backed function against both.
    """

    url: str
    engine: Engine

    @property
    def dialect(self) -> str: ...

    def read(self, work: Callable[[Connection], T]) -> T: ...

    def write(self, work: Callable[[Connection], T], *, conflicts: bool = False) -> T: ...

    def close(self) -> None: ...


class Store:
    """One SQL database holding everything mlprod records; open it with `Store.open`.

    Example::

        with Store.open("sqlite:///.mlprod/mlprod.db") as store:
            store.read(lambda conn: conn.execute(sa.select(schema.models)).all())
    """

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Connect, and bring the schema to head unless `migrate` is False.

        A store already at head costs one query. Concurrent first opens are safe: the
        upgrade runs under a lock (PostgreSQL advisory lock, SQLite write lock) and
        re-checks the revision once it holds it.
        """
        store = cls(create_engine(url), hide_password(url))
        try:
            store.upgrade(migrate=migrate)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def open_later(cls, url: str) -> Store:
        """The store at `url` without touching it: call `upgrade` once its database answers.

        A server must come up while its database is down (an orchestrator would otherwise
        restart it in a loop); it retries `upgrade` until the database is back.
        """
        return cls(create_engine(url), hide_password(url))

    def upgrade(self, *, migrate: bool = True) -> None:
        """Check the schema's revision and bring it to head (one query when already there).

        Without `migrate` it only reads the revision: a `StoreError` says the store is
        unreachable.
        """
        revision = self.read(_migrate.current_revision)
        if migrate and revision != _migrate.head_revision():
            self._check_known(revision)
            self.write(_migrate.upgrade_locked)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, migrate: bool = True, create: bool = True
    ) -> Store:
        """The store `settings` name (``MLPROD_STORE``, or ``.mlprod/`` by default).

        With `create` False a folder store must exist already: a command that only reads
        must not leave an empty ``.mlprod/`` in a folder that holds no project.
        """
        url = settings.store_url()
        if not create and "://" not in settings.store:
            database = Path(url.removeprefix("sqlite:///"))
            if not database.is_file():
                raise NotFoundError(
                    f"no mlprod store at {database.parent} (store {settings.store!r}, no "
                    f"{database.name} in it): run the command in the project's folder, pass "
                    "--store FOLDER_OR_URL or set MLPROD_STORE, or create one with mlprod train"
                )
        return cls.open(url, migrate=migrate)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql`` (or another SQLAlchemy dialect name)."""
        return self.engine.dialect.name

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # --- transactions

    def read(self, work: Callable[[Connection], T]) -> T:
        """`work` in one read transaction, retried while the database is busy.

        Example::

            count = store.read(lambda conn: conn.execute(query).scalar_one())
        """
        return self._attempt(work, write=False, conflicts=False)

    def write(self, work: Callable[[Connection], T], *, conflicts: bool = False) -> T:
        """`work` in one write transaction, retried while another writer holds the lock.

        `conflicts` also retries unique-key violations (the loser of a race re-reads and
        tries again); without it a violation is a `ConflictError`.
        """
        return self._attempt(work, write=True, conflicts=conflicts)

    def _attempt(self, work: Callable[[Connection], T], *, write: bool, conflicts: bool) -> T:
        last: sa_exc.DBAPIError | None = None
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0.005, 0.02 * min(2**attempt, 25)))
            try:
                with self._transaction(write) as conn:
                    return work(conn)
            except sa_exc.IntegrityError as exc:
                if not conflicts:
                    raise ConflictError(f"the store refused the change: {exc.orig}") from exc
                last = exc
            except sa_exc.DBAPIError as exc:
                if not _is_busy(exc):
                    raise self._failure(exc) from None
                last = exc
        raise ConflictError(
            f"the store at {self.url} stayed busy through {ATTEMPTS} attempts "
            f"(last: {last.orig if last else 'unknown'}); other writers are racing, retry shortly"
        )

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Connection]:
        conn = self.engine.connect()
        try:
            if write:
                conn.execution_options(mlprod_write=True)
            with conn.begin():
                yield conn
        finally:
            conn.close()

    def _failure(self, exc: sa_exc.DBAPIError) -> StoreError:
        """Translate a database error into what the user should do about it."""
        detail = scrub(str(exc.orig), self.engine.url.password)
        code = getattr(exc.orig, "sqlstate", None)
        if code in {"42P01", "42703"} or re.search(r"no such (table|column)", detail):
            return StoreError(
                f"the metadata store at {self.url} is not set up for this version of mlprod "
                f"({detail.splitlines()[0]}). Open it with migration: Store.open(url) "
                "(migrate=True, the default) or any mlprod command."
            )
        if exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError):
            return StoreError(f"cannot reach the metadata store at {self.url}: {detail}. {HINT}")
        return StoreError(f"the metadata store at {self.url} failed: {detail}. {HINT}")

    def _check_known(self, revision: str | None) -> None:
        if revision is not None and revision not in _migrate.known_revisions():
            raise StoreError(
                f"the metadata store at {self.url} is at schema revision {revision!r}, newer "
                f"than this mlprod knows (head {_migrate.head_revision()!r}); upgrade mlprod"
            )


def _is_busy(exc: sa_exc.DBAPIError) -> bool:
    """A lock or race another attempt can get past: SQLite busy, PostgreSQL 40001/40P01."""
    if getattr(exc.orig, "sqlstate", None) in _BUSY_STATES:
        return True
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


def row_exists(conn: Connection, table: sa.Table, where: sa.ColumnElement[bool]) -> bool:
    """Whether `table` has a row matching `where` (inside the caller's transaction)."""
    query = sa.select(sa.literal(1)).select_from(table).where(where).limit(1)
    return conn.execute(query).first() is not None
