"""Deployments: which versions of a model take traffic, with what weights, and shadows.

Without a deployment a model serves the version behind its alias. A deployment
replaces that with weighted routes (A/B, canary) plus shadow versions that score the
same requests off the response path. Every change, and every rollback, writes an audit
row: servers watch the audit log's newest id to pick changes up without a restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection

from mlprod._time import utc_now
from mlprod.errors import ConflictError, SpecError
from mlprod.registry._aliases import (
    alias_map,
    audit_in,
    audit_log,
    check_force,
    check_gates,
    move_alias,
)
from mlprod.registry._loading import check_serves
from mlprod.registry._records import AuditRecord
from mlprod.registry._versions import get_version, version_in
from mlprod.store import ArtifactStore, MetadataStore
from mlprod.store import schema as t


class Route(BaseModel):
    """One version and its share of live traffic (weights are relative)."""

    model_config = ConfigDict(frozen=True, defer_build=True)  # built on first use, as records
    version: int = Field(ge=1)
    weight: float = Field(default=1.0, gt=0)


class Deployment(BaseModel):
    """The routes and shadows of one model."""

    model_config = ConfigDict(frozen=True, defer_build=True)  # built on first use, as records
    model: str
    routes: list[Route]
    shadows: list[int] = Field(default_factory=list)
    log_sample_rate: float | None = Field(default=None, ge=0, le=1)
    updated_at: datetime | None = None
    updated_by: str | None = None

    def describe(self) -> str:
        """``3=90% 4=10%; shadow 5``."""
        total = sum(route.weight for route in self.routes)
        text = " ".join(f"{r.version}={100 * r.weight / total:g}%" for r in self.routes)
        if self.shadows:
            text += f"; shadow {', '.join(map(str, self.shadows))}"
        if self.log_sample_rate is not None:
            text += f"; logging {100 * self.log_sample_rate:g}%"
        return text


def set_deployment(
    store: MetadataStore,
    model: str,
    routes: Sequence[Route],
    shadows: Sequence[int] = (),
    *,
    artifacts: ArtifactStore,
    actor: str,
    reason: str | None = None,
    log_sample_rate: float | None = None,
    force: bool = False,
) -> Deployment:
    """Replace `model`'s routes and shadows, audited, in one transaction.

    Every routed version must have passed its gates, unless `force` with a `reason`
    (audited as ``force-deploy``). Shadows answer no one, so a version that failed its
    gates may shadow: that is how a challenger is watched before it takes traffic. Every
    named version, routed or shadow, must load from `artifacts`, verify and answer a
    warm-up prediction (BrokenVersionError otherwise; `force` does not override it).
    `log_sample_rate` is the share of its predictions the servers log (None: their default).
    """
    deployment = _checked(model, routes, shadows, log_sample_rate)
    check_force(force, reason)
    forced = False
    for route in deployment.routes:
        record = get_version(store, model, route.version)
        forced |= check_gates(record, "take traffic", force=force)
        check_serves(artifacts, record, "take traffic")
    for version in deployment.shadows:
        check_serves(artifacts, get_version(store, model, version), "shadow")

    def work(conn: Connection) -> Deployment:
        for version in [*(r.version for r in deployment.routes), *deployment.shadows]:
            version_in(conn, model, version)
        values = {
            "routes": [r.model_dump() for r in deployment.routes],
            "shadows": deployment.shadows,
            "log_sample_rate": deployment.log_sample_rate,
            "updated_at": utc_now(),
            "updated_by": actor,
        }
        conn.execute(sa.delete(t.deployments).where(t.deployments.c.model == model))
        conn.execute(sa.insert(t.deployments).values(model=model, **values))
        top = max(deployment.routes, key=lambda r: r.weight).version
        note = deployment.describe() + (f" ({reason})" if reason else "")
        audit_in(conn, actor, "force-deploy" if forced else "deploy", model, None, None, top, note)
        return deployment.model_copy(
            update={"updated_at": values["updated_at"], "updated_by": actor}
        )

    return store.write(work, conflicts=True)


def _checked(
    model: str, routes: Sequence[Route], shadows: Sequence[int], rate: float | None
) -> Deployment:
    if not routes:
        raise SpecError("a deployment needs at least one route, e.g. --route 3=100")
    versions = [r.version for r in routes]
    if len(set(versions)) != len(versions):
        raise SpecError(f"version(s) routed twice: {versions}; give each version one weight")
    both = sorted(set(versions) & set(shadows))
    if both:
        raise SpecError(f"version(s) {both} are both routed and shadowed; pick one role each")
    if rate is not None and not 0 <= rate <= 1:
        raise SpecError(f"the log sample rate is a share between 0 and 1, got {rate}")
    return Deployment(
        model=model, routes=list(routes), shadows=sorted(set(shadows)), log_sample_rate=rate
    )


def get_deployment(store: MetadataStore, model: str) -> Deployment | None:
    """The model's deployment, or None when it serves its alias."""
    query = sa.select(t.deployments).where(t.deployments.c.model == model)
    row = store.read(lambda conn: conn.execute(query).first())
    return None if row is None else Deployment.model_validate(dict(row._mapping))


def clear_deployment(
    store: MetadataStore, model: str, *, actor: str, reason: str | None = None
) -> bool:
    """Go back to serving the alias; audited. False when there was no deployment."""

    def work(conn: Connection) -> bool:
        gone = conn.execute(sa.delete(t.deployments).where(t.deployments.c.model == model))
        if gone.rowcount:
            audit_in(conn, actor, "undeploy", model, None, None, None, reason)
        return bool(gone.rowcount)

    return store.write(work, conflicts=True)


def rollback(
    store: MetadataStore,
    model: str,
    alias: str = "production",
    *,
    artifacts: ArtifactStore,
    actor: str,
    reason: str | None = None,
    force: bool = False,
) -> AuditRecord:
    """Move `alias` back to the version it held before, and clear any deployment.

    The emergency button: afterwards all traffic goes to the previous version. A previous
    version that failed its gates (it was forced in) needs `force` and a reason again; one
    that no longer loads from `artifacts` is refused before anything changes.
    """
    current = alias_map(store, model).get(alias)
    previous = next(
        (
            entry.from_version
            for entry in audit_log(store, model, limit=1000)
            if entry.alias == alias and entry.to_version == current and entry.from_version
        ),
        None,
    )
    if current is None or previous is None:
        raise ConflictError(
            f"{model}@{alias} has no earlier version to roll back to; "
            f"use `mlprod promote {model} VERSION --alias {alias}` instead"
        )
    check_force(force, reason)
    role = f"take {alias!r} back"
    record = get_version(store, model, previous)
    forced = check_gates(record, role, force=force)
    check_serves(artifacts, record, role)
    clear_deployment(store, model, actor=actor, reason=f"rollback of {alias}")
    action = "force-rollback" if forced else "rollback"
    return move_alias(store, model, alias, previous, actor=actor, action=action, reason=reason)


def change_marker(store: MetadataStore) -> int:
    """The newest audit id: it grows on every alias move and deployment change."""
    query = sa.select(sa.func.max(t.audit.c.id))
    return int(store.read(lambda conn: conn.execute(query).scalar() or 0))


def list_deployments(store: MetadataStore) -> list[Deployment]:
    """Every model's deployment, by model name."""
    query = sa.select(t.deployments).order_by(t.deployments.c.model)
    rows = store.read(lambda conn: conn.execute(query).all())
    return [Deployment.model_validate(dict(row._mapping)) for row in rows]
