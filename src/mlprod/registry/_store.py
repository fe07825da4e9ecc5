"""The metadata store: runs, versions, aliases and the audit log, on SQLite or PostgreSQL.

Same code and same tests on both. Every write is one short transaction, retried when
another process got there first: SQLite takes the write lock up front (``BEGIN
IMMEDIATE``) so writers queue instead of failing with "database is locked"; PostgreSQL
relies on unique keys and row locks, and a writer that loses a race simply tries again.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, Row

from mlprod.errors import ConflictError, NotFoundError, SpecError, StoreError
from mlprod.registry import _tables as t
from mlprod.registry._records import AuditRecord, RunRecord, VersionRecord
from mlprod.registry._refs import ModelRef, check_alias, check_name, parse_ref

T = TypeVar("T")
ATTEMPTS = 20
_RUN_PREFIX = re.compile(r"[0-9a-f]{4,32}")
_BUSY_STATES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available


class Store:
    """Runs, versions, aliases and audit in one SQL database; open it with `Store.open`.

    Example::

        with Store.open("sqlite:///.mlprod/mlprod.db") as store:
            run_id = store.create_run("churn", user="ana", spec={}, git_commit=None,
                                      library_versions={})
            store.resolve("churn@production").version
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
        store = cls(t.create_engine(url), t.hide_password(url))
        try:
            revision = store._run(t.current_revision, write=False)
            if migrate and revision != t.head_revision():
                store._check_known(revision)
                store._run(t.upgrade_locked, write=True)
        except BaseException:
            store.close()
            raise
        return store

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

    # --- runs

    def create_run(
        self,
        model: str,
        *,
        user: str,
        spec: dict[str, Any],
        git_commit: str | None,
        library_versions: dict[str, str],
        parent_run_id: str | None = None,
    ) -> str:
        """Record that a run started; returns its id (32 hex digits)."""
        check_name(model)
        run_id = uuid.uuid4().hex
        row = {
            "id": run_id, "model": model, "status": "running", "user_name": user,
            "started_at": _now(), "spec": t.plain_json(spec), "params": {}, "metrics": {},
            "fingerprint": {}, "candidates": [], "git_commit": git_commit,
            "library_versions": t.plain_json(library_versions), "parent_run_id": parent_run_id,
        }  # fmt: skip

        def work(conn: Connection) -> None:
            parent = t.runs.c.id == parent_run_id
            if parent_run_id is not None and not _exists(conn, t.runs, parent):
                raise NotFoundError(f"parent run {parent_run_id!r} does not exist: pass a full id")
            _ensure_model(conn, model)
            conn.execute(sa.insert(t.runs).values(row))

        self._run(work, write=True)
        return run_id

    def finish_run(
        self,
        run_id: str,
        *,
        status: Literal["finished", "failed"],
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        fingerprint: dict[str, Any] | None = None,
        candidates: list[dict[str, Any]] | None = None,
        version: int | None = None,
        error: str | None = None,
    ) -> None:
        """Close a run; fields passed as None keep what the run already holds."""
        if status not in ("finished", "failed"):
            raise SpecError(f"a run finishes as 'finished' or 'failed', got {status!r}")
        given: dict[str, Any] = {"params": params, "metrics": metrics, "fingerprint": fingerprint,
                 "candidates": candidates, "version": version, "error": error}  # fmt: skip
        values = {key: t.plain_json(value) for key, value in given.items() if value is not None}
        values.update(status=status, ended_at=_now())
        update = sa.update(t.runs).where(t.runs.c.id == run_id).values(values)
        if self._run(lambda conn: conn.execute(update).rowcount, write=True) == 0:
            raise NotFoundError(f"no run {run_id!r} to finish; it must come from create_run")

    def get_run(self, run_id: str) -> RunRecord:
        """One run by id or by a unique prefix of at least 4 characters."""
        prefix = run_id.strip().lower() if isinstance(run_id, str) else ""
        if not _RUN_PREFIX.fullmatch(prefix):
            raise NotFoundError(
                f"no run {run_id!r}: run ids are hex digits; give at least 4 of them "
                "(`mlprod runs list` shows recent runs)"
            )
        where = t.runs.c.id == prefix if len(prefix) == 32 else t.runs.c.id.like(prefix + "%")
        query = sa.select(t.runs).where(where).order_by(t.runs.c.started_at.desc()).limit(11)
        rows = self._run(lambda conn: conn.execute(query).all(), write=False)
        if not rows:
            raise NotFoundError(f"no run {run_id!r}; `mlprod runs list` shows recent runs")
        if len(rows) > 1:
            shown = ", ".join(row.id for row in rows[:10]) + (", ..." if len(rows) > 10 else "")
            raise ConflictError(
                f"run prefix {run_id!r} matches {'more than 10' if len(rows) > 10 else len(rows)} "
                f"runs ({shown}); give more characters"
            )
        return _run_record(rows[0])

    def list_runs(self, model: str | None = None, *, limit: int = 50) -> list[RunRecord]:
        """The newest runs first, of one model or of all."""
        query = sa.select(t.runs).order_by(t.runs.c.started_at.desc(), t.runs.c.id.desc())
        if model is not None:
            query = query.where(t.runs.c.model == model)
        rows = self._run(lambda conn: conn.execute(query.limit(max(limit, 0))).all(), write=False)
        return [_run_record(row) for row in rows]

    # --- versions

    def register_version(
        self,
        model: str,
        *,
        run_id: str,
        bundle_id: str,
        flavor: str,
        metrics: dict[str, Any],
        gates: list[dict[str, Any]],
        gates_passed: bool,
        signature: dict[str, Any],
        threshold: float,
    ) -> VersionRecord:
        """Register the next version of `model` (1, 2, ...), created complete or not at all.

        Concurrent registrations get distinct numbers: the loser of a race on the
        (model, version) key rolls back and tries the next number.
        """
        check_name(model)
        row = {"model": model, "run_id": run_id, "bundle_id": bundle_id, "flavor": flavor,
               "metrics": t.plain_json(metrics), "gates": t.plain_json(gates),
               "gates_passed": bool(gates_passed), "signature": t.plain_json(signature),
               "threshold": float(threshold)}  # fmt: skip

        def work(conn: Connection) -> VersionRecord:
            owner = conn.execute(sa.select(t.runs.c.model).where(t.runs.c.id == run_id)).scalar()
            if owner is None:
                raise NotFoundError(f"no run {run_id!r}: register a version from a created run")
            if owner != model:
                raise ConflictError(f"run {run_id} trained {owner!r}, not {model!r}")
            _ensure_model(conn, model)
            latest = conn.execute(sa.select(sa.func.max(t.versions.c.version)).where(
                t.versions.c.model == model)).scalar()  # fmt: skip
            values = {**row, "version": (latest or 0) + 1, "created_at": _now()}
            conn.execute(sa.insert(t.versions).values(values))
            return _version_record(values, [])

        return self._run(work, write=True, conflicts=True)

    def get_version(self, model: str, version: int) -> VersionRecord:
        """One version; NotFoundError lists the versions that exist."""
        return self._run(lambda conn: _version(conn, model, version), write=False)

    def list_versions(self, model: str) -> list[VersionRecord]:
        """Every version of `model`, oldest first; empty for an unknown model."""
        query = sa.select(t.versions).where(t.versions.c.model == model)
        return self._run(lambda conn: _versions(conn, query), write=False)

    def list_models(self) -> list[str]:
        """Names of every model with at least one run, sorted."""
        query = sa.select(t.models.c.name).order_by(t.models.c.name)
        return list(self._run(lambda conn: conn.execute(query).scalars().all(), write=False))

    def resolve(self, ref: str | ModelRef) -> VersionRecord:
        """The version a reference means: ``churn`` (newest), ``churn@production``, ``churn@3``."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        return self._run(lambda conn: _resolve(conn, parsed), write=False)

    # --- aliases and audit

    def set_alias(
        self,
        model: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str | None = None,
        action: str = "promote",
    ) -> AuditRecord:
        """Point `alias` at a version and audit the move, in one transaction."""
        check_alias(alias)

        def work(conn: Connection) -> AuditRecord:
            _version(conn, model, version)
            previous = _lock_alias(conn, model, alias)
            values = {"version": version, "updated_at": _now()}
            if previous is None:
                conn.execute(sa.insert(t.aliases).values(model=model, alias=alias, **values))
            else:
                conn.execute(sa.update(t.aliases).where(_alias_is(model, alias)).values(values))
            return _audit(conn, actor, action, model, alias, previous, version, reason)

        return self._run(work, write=True, conflicts=True)

    def delete_alias(
        self, model: str, alias: str, *, actor: str, reason: str | None = None
    ) -> AuditRecord:
        """Remove an alias from its version; audited like a move, with no target."""

        def work(conn: Connection) -> AuditRecord:
            previous = _lock_alias(conn, model, alias)
            if previous is None:
                raise NotFoundError(
                    f"{model} has no alias {alias!r} (aliases: {_aliases_text(conn, model)})"
                )
            conn.execute(sa.delete(t.aliases).where(_alias_is(model, alias)))
            return _audit(conn, actor, "delete-alias", model, alias, previous, None, reason)

        return self._run(work, write=True, conflicts=True)

    def aliases(self, model: str) -> dict[str, int]:
        """Alias -> version for `model`, sorted by alias; empty for an unknown model."""
        return self._run(lambda conn: _alias_map(conn, model), write=False)

    def versions_with_alias(self, alias: str) -> list[VersionRecord]:
        """Every model's version that holds `alias` (what a server serves), by model name."""
        holds = sa.and_(
            t.aliases.c.model == t.versions.c.model, t.aliases.c.version == t.versions.c.version
        )
        query = sa.select(t.versions).join(t.aliases, holds).where(t.aliases.c.alias == alias)
        return self._run(lambda conn: _versions(conn, query), write=False)

    def audit_log(self, model: str | None = None, *, limit: int = 100) -> list[AuditRecord]:
        """Alias moves, newest first."""
        query = sa.select(t.audit).order_by(t.audit.c.id.desc()).limit(max(limit, 0))
        if model is not None:
            query = query.where(t.audit.c.model == model)
        rows = self._run(lambda conn: conn.execute(query).all(), write=False)
        return [AuditRecord.model_validate(dict(row._mapping)) for row in rows]

    # --- transactions

    def _run(self, work: Callable[[Connection], T], *, write: bool, conflicts: bool = False) -> T:
        """`work` in one transaction, retried while another writer holds the lock or wins a race.

        `conflicts` also retries unique-key violations: the caller re-reads and tries again.
        """
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
        detail = t.scrub(str(exc.orig), self.engine.url.password)
        code = getattr(exc.orig, "sqlstate", None)
        if code in {"42P01", "42703"} or re.search(r"no such (table|column)", detail):
            return StoreError(
                f"the metadata store at {self.url} is not set up for this version of mlprod "
                f"({detail.splitlines()[0]}). Open it with migration: Store.open(url) "
                "(migrate=True, the default) or any mlprod command."
            )
        if exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError):
            return StoreError(f"cannot reach the metadata store at {self.url}: {detail}. {t.HINT}")
        return StoreError(f"the metadata store at {self.url} failed: {detail}. {t.HINT}")

    def _check_known(self, revision: str | None) -> None:
        if revision is not None and revision not in t.known_revisions():
            raise StoreError(
                f"the metadata store at {self.url} is at schema revision {revision!r}, newer "
                f"than this mlprod knows (head {t.head_revision()!r}); upgrade mlprod"
            )


def _is_busy(exc: sa_exc.DBAPIError) -> bool:
    """A lock or race another attempt can get past: SQLite busy, PostgreSQL 40001/40P01."""
    if getattr(exc.orig, "sqlstate", None) in _BUSY_STATES:
        return True
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


# --- queries, each run inside a transaction the caller owns


def _now() -> datetime:
    return datetime.now(UTC)


def _exists(conn: Connection, table: sa.Table, where: sa.ColumnElement[bool]) -> bool:
    query = sa.select(sa.literal(1)).select_from(table).where(where).limit(1)
    return conn.execute(query).first() is not None


def _ensure_model(conn: Connection, name: str) -> None:
    """Insert the model row unless it exists, without failing when a racer inserts it too."""
    values = {"name": name, "created_at": _now()}
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(t.models).values(values).on_conflict_do_nothing())
    elif conn.dialect.name == "sqlite":
        conn.execute(sqlite.insert(t.models).values(values).on_conflict_do_nothing())
    elif not _exists(conn, t.models, t.models.c.name == name):
        conn.execute(sa.insert(t.models).values(values))


def _run_record(row: Row[Any]) -> RunRecord:
    data = dict(row._mapping)
    data["user"] = data.pop("user_name")
    return RunRecord.model_validate(data)


def _version_record(values: dict[str, Any], aliases: list[str]) -> VersionRecord:
    return VersionRecord.model_validate({**values, "aliases": sorted(aliases)})


def _versions(conn: Connection, query: sa.Select[Any]) -> list[VersionRecord]:
    """Version records with their aliases, ordered by model then version."""
    rows = conn.execute(query.order_by(t.versions.c.model, t.versions.c.version)).all()
    names = {row.model for row in rows}
    held: dict[tuple[str, int], list[str]] = {}
    if names:
        alias_rows = conn.execute(sa.select(t.aliases).where(t.aliases.c.model.in_(names)))
        for alias in alias_rows:
            held.setdefault((alias.model, alias.version), []).append(alias.alias)
    return [_version_record(dict(r._mapping), held.get((r.model, r.version), [])) for r in rows]


def _version(conn: Connection, model: str, version: int) -> VersionRecord:
    query = sa.select(t.versions).where(
        t.versions.c.model == model, t.versions.c.version == version
    )
    found = _versions(conn, query)
    if not found:
        _require_model(conn, model)
        raise NotFoundError(
            f"{model} has no version {version} (versions: {_versions_text(conn, model)}); "
            f"`mlprod models show {model}` lists them"
        )
    return found[0]


def _resolve(conn: Connection, ref: ModelRef) -> VersionRecord:
    _require_model(conn, ref.name)
    if ref.version is not None:
        return _version(conn, ref.name, ref.version)
    if ref.alias is not None:
        number = _alias_map(conn, ref.name).get(ref.alias)
        if number is None:
            raise NotFoundError(
                f"{ref.name} has no alias {ref.alias!r} (aliases: "
                f"{_aliases_text(conn, ref.name)}; versions: {_versions_text(conn, ref.name)}). "
                f"Point it at one: `mlprod promote {ref.name} VERSION --alias {ref.alias}`"
            )
        return _version(conn, ref.name, number)
    newest = conn.execute(
        sa.select(sa.func.max(t.versions.c.version)).where(t.versions.c.model == ref.name)
    ).scalar()
    if newest is None:
        raise NotFoundError(f"{ref.name} has no versions yet: train it with `mlprod train`")
    return _version(conn, ref.name, newest)


def _require_model(conn: Connection, name: str) -> None:
    if not _exists(conn, t.models, t.models.c.name == name):
        known = conn.execute(sa.select(t.models.c.name).order_by(t.models.c.name)).scalars()
        listed = ", ".join(known) or "none yet"
        raise NotFoundError(f"no model {name!r} (models: {listed}); check the spelling")


def _alias_map(conn: Connection, model: str) -> dict[str, int]:
    rows = conn.execute(
        sa.select(t.aliases.c.alias, t.aliases.c.version)
        .where(t.aliases.c.model == model)
        .order_by(t.aliases.c.alias)
    )
    return {row.alias: row.version for row in rows}


def _alias_is(model: str, alias: str) -> sa.ColumnElement[bool]:
    return sa.and_(t.aliases.c.model == model, t.aliases.c.alias == alias)


def _lock_alias(conn: Connection, model: str, alias: str) -> int | None:
    """The alias's current version, row-locked until commit so concurrent moves serialise."""
    query = sa.select(t.aliases.c.version).where(_alias_is(model, alias)).with_for_update()
    return conn.execute(query).scalar()


def _audit(
    conn: Connection,
    actor: str,
    action: str,
    model: str,
    alias: str | None,
    from_version: int | None,
    to_version: int | None,
    reason: str | None,
) -> AuditRecord:
    values = {"at": _now(), "actor": actor, "action": action, "model": model, "alias": alias,
              "from_version": from_version, "to_version": to_version, "reason": reason}  # fmt: skip
    result = conn.execute(sa.insert(t.audit).values(values))
    key = result.inserted_primary_key
    assert key is not None  # an INSERT always reports its key
    return AuditRecord(id=key[0], **values)


def _versions_text(conn: Connection, model: str) -> str:
    numbers = conn.execute(
        sa.select(t.versions.c.version)
        .where(t.versions.c.model == model)
        .order_by(t.versions.c.version)
    ).scalars()
    return _spans(numbers) or "none yet"


def _aliases_text(conn: Connection, model: str) -> str:
    pairs = _alias_map(conn, model).items()
    return ", ".join(f"{alias} -> {version}" for alias, version in pairs) or "none"


def _spans(numbers: Iterable[int]) -> str:
    """1, 2, 3, 5 -> "1-3, 5": a long version list stays one readable line."""
    spans: list[list[int]] = []
    for number in numbers:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
