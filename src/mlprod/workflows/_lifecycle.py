"""Loading and promoting versions: the library-level counterparts of the CLI."""

from __future__ import annotations

from mlprod.errors import GateFailedError, SpecError
from mlprod.registry import AuditRecord, Model, Store, open_version
from mlprod.settings import Settings
from mlprod.workflows._context import current_user, open_store


def load(ref: str, *, store: str | None = None, settings: Settings | None = None) -> Model:
    """Load a verified model by reference: ``churn``, ``churn@production`` or ``churn@3``.

    Example::

        model = mlprod.load("churn@production")
        model.predict_proba(frame)
    """
    meta, artifacts = open_store(store, settings)
    with meta:
        record = meta.resolve(ref)
    return open_version(artifacts, record)


def promote(
    model: str,
    version: int,
    alias: str = "production",
    *,
    force: bool = False,
    reason: str | None = None,
    actor: str | None = None,
    store: str | None = None,
    settings: Settings | None = None,
) -> AuditRecord:
    """Point `alias` at a version whose gates passed; every move is audited.

    A version whose gates failed moves only with ``force=True`` and a `reason`, which the
    audit log keeps.
    """
    meta, _ = open_store(store, settings)
    with meta:
        return promote_version(
            meta, model, version, alias, force=force, reason=reason, actor=actor or current_user()
        )


def promote_version(
    store: Store,
    model: str,
    version: int,
    alias: str = "production",
    *,
    actor: str,
    force: bool = False,
    reason: str | None = None,
) -> AuditRecord:
    """`promote` on an open store: the gate check and the audited move, for servers."""
    if force and not (reason and reason.strip()):
        raise SpecError(
            '--force needs --reason "...": the audit log records why gates were overridden'
        )
    record = store.get_version(model, version)
    if not record.gates_passed and not force:
        failed = [g["message"] for g in record.gates if not g.get("passed")]
        raise GateFailedError(
            f"{model}@{version} failed its gates, so it cannot become {alias!r}: "
            + "; ".join(failed)
            + ". Improve the model or the gates in mlprod.yaml, or override with "
            '`mlprod promote --force --reason "..."` (audited).'
        )
    action = "force-promote" if force and not record.gates_passed else "promote"
    return store.set_alias(model, alias, version, actor=actor, reason=reason, action=action)
