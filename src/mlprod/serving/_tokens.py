"""API tokens: bearer secrets with scopes, stored as sha256 hashes, revocable.

A secret looks like ``mlp_<id>_<random>``. The id (public, shown by ``mlprod tokens
list``) finds the row; the whole secret is hashed and compared with the stored hash in
constant time. The secret itself is shown once, at creation, and never stored: a copy
of the database lets nobody call the server.

Example::

    record, secret = create_token(store, "ci", ["predict"], actor="ana")
    verify_token(store, secret).scopes        # ['predict']
    revoke_token(store, record.id, actor="ana")
    verify_token(store, secret)               # None
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlprod.errors import NotFoundError, SpecError
from mlprod.registry import Record
from mlprod.store import Store
from mlprod.store import schema as t

log = logging.getLogger("mlprod.registry")

Scope = Literal["predict", "outcomes", "admin"]
# predict scores; outcomes posts observed labels (they move live metrics and alerts, so
# a client that may only score cannot move them); admin may do everything.
SCOPES: tuple[Scope, ...] = ("predict", "outcomes", "admin")
PREFIX = "mlp"
_SECRET = re.compile(r"mlp_([0-9a-f]{12})_[A-Za-z0-9_-]{20,}")


class TokenRecord(Record):
    """One API token as the store knows it: never the secret, only what it may do."""

    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """False once revoked."""
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        """Whether this token may act with `scope`; admin implies every scope.

        Tokens made before the outcomes scope existed keep their meaning: an admin token
        may post outcomes, a predict token may only score.
        """
        return self.active and (scope in self.scopes or "admin" in self.scopes)


def hash_secret(secret: str) -> str:
    """The sha256 hex digest the store keeps instead of the secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(
    store: Store, name: str, scopes: Iterable[str], *, actor: str
) -> tuple[TokenRecord, str]:
    """A new token and its secret; the secret is returned here once and stored nowhere.

    Scopes must be a non-empty subset of ``predict``, ``outcomes`` and ``admin``;
    ``admin`` implies the others and is stored with them, so what ``list`` shows is what
    the token may do.
    """
    name = name.strip()
    if not name:
        raise SpecError("a token needs a name saying who or what uses it, e.g. `ci-deploy`")
    checked = _check_scopes(scopes)
    token_id = secrets.token_hex(6)
    secret = f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
    values: dict[str, Any] = {
        "id": token_id,
        "name": name,
        "secret_hash": hash_secret(secret),
        "scopes": checked,
        "created_at": datetime.now(UTC),
        "created_by": actor,
        "revoked_at": None,
    }
    store.write(lambda conn: conn.execute(sa.insert(t.tokens).values(values)))
    log.info("token %s (%s, scopes %s) created by %s", token_id, name, checked, actor)
    return _record(values), secret


def _check_scopes(scopes: Iterable[str]) -> list[str]:
    wanted = set(scopes)
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise SpecError(
            f"unknown scope(s) {', '.join(map(repr, unknown))}; allowed scopes: "
            f"{', '.join(SCOPES)} (admin includes the others)"
        )
    if not wanted:
        raise SpecError(f"a token needs at least one scope; allowed scopes: {', '.join(SCOPES)}")
    if "admin" in wanted:
        wanted.update(SCOPES)
    return sorted(wanted)


def list_tokens(store: Store) -> list[TokenRecord]:
    """Every token, revoked ones included, oldest first; never a secret or its hash."""
    query = sa.select(*_public_columns()).order_by(t.tokens.c.created_at, t.tokens.c.id)
    rows = store.read(lambda conn: conn.execute(query).all())
    return [_record(dict(row._mapping)) for row in rows]


def revoke_token(store: Store, token_id: str, *, actor: str) -> TokenRecord:
    """Revoke a token; revoking it again changes nothing and returns the same record.

    Servers cache verified tokens for a few seconds, so a revoked token stops working
    everywhere within that time, without a restart.
    """

    def work(conn: Connection) -> TokenRecord:
        row = _find(conn, token_id)
        if row is None:
            raise NotFoundError(
                f"no token {token_id!r} (tokens: {_ids_text(conn)}); "
                "`mlprod tokens list` shows them"
            )
        values = dict(row._mapping)
        if values["revoked_at"] is None:
            values["revoked_at"] = datetime.now(UTC)
            where = t.tokens.c.id == token_id
            conn.execute(sa.update(t.tokens).where(where).values(revoked_at=values["revoked_at"]))
        return _record(values)

    record = store.write(work)
    log.info("token %s (%s) revoked by %s", record.id, record.name, actor)
    return record


def verify_token(store: Store, secret: str) -> TokenRecord | None:
    """The active token `secret` belongs to, or None (unknown, malformed or revoked).

    The id inside the secret finds the row; the hashes are compared with
    `hmac.compare_digest`, so timing reveals nothing about the stored hash.
    """
    match = _SECRET.fullmatch(secret)
    if match is None:
        return None
    query = sa.select(t.tokens).where(t.tokens.c.id == match.group(1))
    row = store.read(lambda conn: conn.execute(query).first())
    if row is None or not hmac.compare_digest(row.secret_hash, hash_secret(secret)):
        return None
    record = _record(dict(row._mapping))
    return record if record.active else None


def _public_columns() -> list[sa.Column[Any]]:
    return [column for column in t.tokens.c if column.name != "secret_hash"]


def _find(conn: Connection, token_id: str) -> sa.Row[Any] | None:
    query = sa.select(*_public_columns()).where(t.tokens.c.id == token_id).with_for_update()
    return conn.execute(query).first()


def _ids_text(conn: Connection) -> str:
    ids = conn.execute(sa.select(t.tokens.c.id).order_by(t.tokens.c.created_at)).scalars()
    return ", ".join(ids) or "none yet"


def _record(values: dict[str, Any]) -> TokenRecord:
    public = {key: value for key, value in values.items() if key != "secret_hash"}
    return TokenRecord.model_validate(public)
