"""Aliases and the audit log: movable names for versions, every move recorded.

The gate check lives here, where the alias is stored, so no caller can skip it: a
version that failed its acceptance gates takes an alias (and so traffic) only with
``force`` and a reason, and the audit row says it was forced. Beside it, the serve check:
a version whose bundle does not load, verify and answer a warm-up prediction takes no
alias at all, forced or not.

Example::

    set_alias(store, "churn", "production", 3, artifacts=artifacts, actor="ana")
    set_alias(store, "churn", "production", 4, artifacts=artifacts, actor="ana",
              force=True, reason="hotfix")
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlprod._time import utc_now
from mlprod.errors import GateFailedError, NotFoundError, SpecError
from mlprod.registry._loading import check_serves
from mlprod.registry._records import AuditRecord, VersionRecord
from mlprod.registry._refs import check_alias
from mlprod.registry._versions import alias_map_in, aliases_text, get_version, version_in
from mlprod.store import ArtifactStore, MetadataStore
from mlprod.store import schema as t


def set_alias(
    store: MetadataStore,
    model: str,
    alias: str,
    version: int,
    *,
    artifacts: ArtifactStore,
    actor: str,
    reason: str | None = None,
    force: bool = False,
    action: str = "promote",
) -> AuditRecord:
    """Point `alias` at a version that passed its gates and serves; audit the move.

    A version whose gates failed moves only with `force` and a `reason`; the audit row's
    action then says ``force-<action>``. A version whose bundle does not load, verify
    against the store's hashes and answer a warm-up prediction (from `artifacts`) never
    moves: BrokenVersionError says why, and `force` does not override it.
    """
    check_alias(alias)
    check_force(force, reason)
    role = f"become {alias!r}"
    record = get_version(store, model, version)
    forced = check_gates(record, role, force=force)
    check_serves(artifacts, record, role)
    done = f"force-{action}" if forced else action
    return move_alias(store, model, alias, version, actor=actor, action=done, reason=reason)


def move_alias(
    store: MetadataStore,
    model: str,
    alias: str,
    version: int,
    *,
    actor: str,
    action: str,
    reason: str | None,
) -> AuditRecord:
    """Write an alias move and its audit row in one transaction; the caller checked it."""

    def work(conn: Connection) -> AuditRecord:
        version_in(conn, model, version)
        previous = _lock_alias(conn, model, alias)
        values = {"version": version, "updated_at": utc_now()}
        if previous is None:
            conn.execute(sa.insert(t.aliases).values(model=model, alias=alias, **values))
        else:
            conn.execute(sa.update(t.aliases).where(_alias_is(model, alias)).values(values))
        return audit_in(conn, actor, action, model, alias, previous, version, reason)

    return store.write(work, conflicts=True)


def check_force(force: bool, reason: str | None) -> None:
    """A forced move needs a reason: the audit log records why gates were overridden."""
    if force and not (reason and reason.strip()):
        raise SpecError(
            '--force needs --reason "...": the audit log records why gates were overridden'
        )


def check_gates(record: VersionRecord, role: str, *, force: bool) -> bool:
    """GateFailedError unless `record` passed its gates or `force`; True when forced."""
    if record.gates_passed:
        return False
    if force:
        return True
    failed = [str(g.get("message", g)) for g in record.gates if not g.get("passed")]
    raise GateFailedError(
        f"{record.ref} failed its gates, so it cannot {role}: "
        + ("; ".join(failed) or "no gate results recorded")
        + ". Improve the model or the gates in mlprod.yaml, or override with "
        '`--force --reason "..."` (audited).'
    )


def delete_alias(
    store: MetadataStore, model: str, alias: str, *, actor: str, reason: str | None = None
) -> AuditRecord:
    """Remove an alias from its version; audited like a move, with no target."""

    def work(conn: Connection) -> AuditRecord:
        previous = _lock_alias(conn, model, alias)
        if previous is None:
            raise NotFoundError(
                f"{model} has no alias {alias!r} (aliases: {aliases_text(conn, model)})"
            )
        conn.execute(sa.delete(t.aliases).where(_alias_is(model, alias)))
        return audit_in(conn, actor, "delete-alias", model, alias, previous, None, reason)

    return store.write(work, conflicts=True)


def alias_map(store: MetadataStore, model: str) -> dict[str, int]:
    """Alias -> version for `model`, sorted by alias; empty for an unknown model."""
    return store.read(lambda conn: alias_map_in(conn, model))


def audit_log(
    store: MetadataStore, model: str | None = None, *, limit: int = 100
) -> list[AuditRecord]:
    """Alias moves and deployment changes, newest first."""
    query = sa.select(t.audit).order_by(t.audit.c.id.desc()).limit(max(limit, 0))
    if model is not None:
        query = query.where(t.audit.c.model == model)
    rows = store.read(lambda conn: conn.execute(query).all())
    return [AuditRecord.model_validate(dict(row._mapping)) for row in rows]


def audit_in(
    conn: Connection,
    actor: str,
    action: str,
    model: str,
    alias: str | None,
    from_version: int | None,
    to_version: int | None,
    reason: str | None,
) -> AuditRecord:
    """Write one audit row inside the caller's transaction."""
    values = {"at": utc_now(), "actor": actor, "action": action, "model": model, "alias": alias,
              "from_version": from_version, "to_version": to_version, "reason": reason}  # fmt: skip
    result = conn.execute(sa.insert(t.audit).values(values))
    key = result.inserted_primary_key
    assert key is not None  # an INSERT always reports its key
    return AuditRecord(id=key[0], **values)


def _alias_is(model: str, alias: str) -> sa.ColumnElement[bool]:
    return sa.and_(t.aliases.c.model == model, t.aliases.c.alias == alias)


def _lock_alias(conn: Connection, model: str, alias: str) -> int | None:
    """The alias's current version, row-locked until commit so concurrent moves serialise."""
    query = sa.select(t.aliases.c.version).where(_alias_is(model, alias)).with_for_update()
    return conn.execute(query).scalar()
