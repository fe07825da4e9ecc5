"""Versions: immutable, numbered 1, 2, ... per model, each from one finished run.

Example::

    record = register_version(store, "churn", run_id=run_id, bundle_id=bundle_id, ...)
    resolve(store, "churn@production").version
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlprod._time import utc_now
from mlprod.errors import ConflictError, NotFoundError
from mlprod.registry._records import VersionRecord
from mlprod.registry._refs import ModelRef, check_name, parse_ref
from mlprod.registry._runs import ensure_model
from mlprod.store import MetadataStore, plain_json, row_exists
from mlprod.store import schema as t

# The versions column is a 32-bit integer on PostgreSQL; SQLite overflows past 64 bits.
# A number outside 1..MAX_VERSION names no version and never reaches a query.
MAX_VERSION = 2**31 - 1


def register_version(
    store: MetadataStore,
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
    files: Mapping[str, str],
) -> VersionRecord:
    """Register the next version of `model` (1, 2, ...), created complete or not at all.

    `files` is every bundle file's sha256 (`bundle_files`): the store's own copy, which
    loading checks the bundle against, so rewriting the manifest cannot cover a swap.
    Concurrent registrations get distinct numbers: the loser of a race on the
    (model, version) key rolls back and tries the next number.
    """
    check_name(model)
    row = {"model": model, "run_id": run_id, "bundle_id": bundle_id, "flavor": flavor,
           "metrics": plain_json(metrics), "gates": plain_json(gates),
           "gates_passed": bool(gates_passed), "signature": plain_json(signature),
           "threshold": float(threshold), "files": dict(files)}  # fmt: skip

    def work(conn: Connection) -> VersionRecord:
        owner = conn.execute(sa.select(t.runs.c.model).where(t.runs.c.id == run_id)).scalar()
        if owner is None:
            raise NotFoundError(f"no run {run_id!r}: register a version from a created run")
        if owner != model:
            raise ConflictError(f"run {run_id} trained {owner!r}, not {model!r}")
        ensure_model(conn, model)
        latest = conn.execute(sa.select(sa.func.max(t.versions.c.version)).where(
            t.versions.c.model == model)).scalar()  # fmt: skip
        values = {**row, "version": (latest or 0) + 1, "created_at": utc_now()}
        conn.execute(sa.insert(t.versions).values(values))
        return _version_record(values, [])

    return store.write(work, conflicts=True)


def get_version(store: MetadataStore, model: str, version: int) -> VersionRecord:
    """One version; NotFoundError lists the versions that exist."""
    return store.read(lambda conn: version_in(conn, model, version))


def list_versions(store: MetadataStore, model: str) -> list[VersionRecord]:
    """Every version of `model`, oldest first; empty for an unknown model."""
    query = sa.select(t.versions).where(t.versions.c.model == model)
    return store.read(lambda conn: _versions(conn, query))


def list_models(store: MetadataStore) -> list[str]:
    """Names of every model with at least one run, sorted."""
    query = sa.select(t.models.c.name).order_by(t.models.c.name)
    return list(store.read(lambda conn: conn.execute(query).scalars().all()))


def resolve(store: MetadataStore, ref: str | ModelRef) -> VersionRecord:
    """The version a reference means: ``churn`` (newest), ``churn@production``, ``churn@3``."""
    parsed = parse_ref(ref) if isinstance(ref, str) else ref
    return store.read(lambda conn: _resolve(conn, parsed))


def require_model(store: MetadataStore, name: str) -> None:
    """NotFoundError, listing the models there are, unless `name` is one of them."""
    store.read(lambda conn: model_in(conn, name))


def versions_with_alias(store: MetadataStore, alias: str) -> list[VersionRecord]:
    """Every model's version that holds `alias` (what a server serves), by model name."""
    holds = sa.and_(
        t.aliases.c.model == t.versions.c.model, t.aliases.c.version == t.versions.c.version
    )
    query = sa.select(t.versions).join(t.aliases, holds).where(t.aliases.c.alias == alias)
    return store.read(lambda conn: _versions(conn, query))


# --- queries inside a transaction the caller owns


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


def version_in(conn: Connection, model: str, version: int) -> VersionRecord:
    query = sa.select(t.versions).where(
        t.versions.c.model == model, t.versions.c.version == version
    )
    found = _versions(conn, query) if 0 < version <= MAX_VERSION else []
    if not found:
        model_in(conn, model)
        raise NotFoundError(
            f"{model} has no version {version} (versions: {_versions_text(conn, model)}); "
            f"`mlprod models show {model}` lists them"
        )
    return found[0]


def _resolve(conn: Connection, ref: ModelRef) -> VersionRecord:
    model_in(conn, ref.name)
    if ref.version is not None:
        return version_in(conn, ref.name, ref.version)
    if ref.alias is not None:
        number = alias_map_in(conn, ref.name).get(ref.alias)
        if number is None:
            raise NotFoundError(
                f"{ref.name} has no alias {ref.alias!r} (aliases: "
                f"{aliases_text(conn, ref.name)}; versions: {_versions_text(conn, ref.name)}). "
                f"Point it at one: `mlprod promote {ref.name} VERSION --alias {ref.alias}`"
            )
        return version_in(conn, ref.name, number)
    newest = conn.execute(
        sa.select(sa.func.max(t.versions.c.version)).where(t.versions.c.model == ref.name)
    ).scalar()
    if newest is None:
        raise NotFoundError(f"{ref.name} has no versions yet: train it with `mlprod train`")
    return version_in(conn, ref.name, newest)


def model_in(conn: Connection, name: str) -> None:
    if not row_exists(conn, t.models, t.models.c.name == name):
        known = conn.execute(sa.select(t.models.c.name).order_by(t.models.c.name)).scalars()
        listed = ", ".join(known) or "none yet"
        raise NotFoundError(f"no model {name!r} (models: {listed}); check the spelling")


def alias_map_in(conn: Connection, model: str) -> dict[str, int]:
    rows = conn.execute(
        sa.select(t.aliases.c.alias, t.aliases.c.version)
        .where(t.aliases.c.model == model)
        .order_by(t.aliases.c.alias)
    )
    return {row.alias: row.version for row in rows}


def _versions_text(conn: Connection, model: str) -> str:
    numbers = conn.execute(
        sa.select(t.versions.c.version)
        .where(t.versions.c.model == model)
        .order_by(t.versions.c.version)
    ).scalars()
    return _spans(numbers) or "none yet"


def aliases_text(conn: Connection, model: str) -> str:
    pairs = alias_map_in(conn, model).items()
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
