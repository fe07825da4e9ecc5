"""API tokens on SQLite and PostgreSQL: hashed at rest, scoped, revocable, verifiable."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlprod.errors import NotFoundError, SpecError
from mlprod.serving import TokenRecord, create_token, list_tokens, revoke_token, verify_token
from mlprod.store import Store


def _every_value_in_the_database(store: Store) -> str:
    """Every row of every table, as text: what someone with a copy of the DB could read."""
    inspector = sa.inspect(store.engine)
    meta = sa.MetaData()
    meta.reflect(store.engine)
    with store.engine.connect() as conn:
        rows = [
            repr(tuple(row))
            for name in inspector.get_table_names()
            for row in conn.execute(sa.select(meta.tables[name]))
        ]
    return "\n".join(rows)


def test_secret_is_returned_once_and_stored_only_as_its_sha256(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    record, secret = create_token(store, "ci", ["predict"], actor="ana")
    assert re.fullmatch(rf"mlp_{record.id}_[A-Za-z0-9_-]{{43}}", secret)
    assert record.name == "ci" and record.scopes == ["predict"] and record.created_by == "ana"
    assert record.revoked_at is None and record.active
    random_part = secret.split("_", 2)[2]
    dumped = _every_value_in_the_database(store)
    assert record.id in dumped  # the dump really contains the token row...
    assert secret not in dumped and random_part not in dumped  # ...but never the secret
    assert hashlib.sha256(secret.encode()).hexdigest() in dumped
    if store_url.startswith("sqlite"):
        store.engine.dispose()  # flush the WAL into the file, then read raw bytes
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("mlprod.db*"))
        assert record.id.encode() in raw
        assert random_part.encode() not in raw


def test_two_tokens_never_share_an_id_or_secret(store: Store) -> None:
    made = [create_token(store, f"t{i}", ["predict"], actor="ana") for i in range(5)]
    assert len({r.id for r, _ in made}) == 5 and len({s for _, s in made}) == 5


def test_scopes_are_validated_and_admin_implies_the_others(store: Store) -> None:
    admin, _ = create_token(store, "ops", ["admin"], actor="ana")
    assert admin.scopes == ["admin", "outcomes", "predict"]
    assert admin.allows("admin") and admin.allows("predict") and admin.allows("outcomes")
    predict, _ = create_token(store, "app", ["predict", "predict"], actor="ana")
    assert predict.scopes == ["predict"]
    assert predict.allows("predict") and not predict.allows("admin")
    assert not predict.allows("outcomes")  # scoring does not let a client move live metrics
    labels, _ = create_token(store, "labels", ["outcomes"], actor="ana")
    assert labels.scopes == ["outcomes"]
    assert labels.allows("outcomes") and not labels.allows("predict")
    with pytest.raises(
        SpecError, match=r"unknown scope\(s\) 'root'.*allowed scopes: predict, outcomes, admin"
    ):
        create_token(store, "bad", ["predict", "root"], actor="ana")
    with pytest.raises(SpecError, match="at least one scope"):
        create_token(store, "none", [], actor="ana")
    with pytest.raises(SpecError, match="needs a name"):
        create_token(store, "  ", ["predict"], actor="ana")
    assert [t.name for t in list_tokens(store)] == ["ops", "app", "labels"]  # no refusal stored


def test_tokens_made_before_the_outcomes_scope_keep_their_meaning(store: Store) -> None:
    """Rows as earlier releases wrote them: admin stored with predict only."""
    from mlprod.serving._tokens import hash_secret
    from mlprod.store import schema as t

    made = datetime(2026, 1, 1, tzinfo=UTC)
    for token_id, scopes in (("0123456789ab", ["admin", "predict"]), ("ba9876543210", ["predict"])):
        secret = f"mlp_{token_id}_{'x' * 43}"
        row = {
            "id": token_id,
            "name": token_id,
            "secret_hash": hash_secret(secret),
            "scopes": scopes,
            "created_at": made,
            "created_by": "old",
            "revoked_at": None,
        }
        store.write(lambda conn, row=row: conn.execute(sa.insert(t.tokens).values(row)))
    old_admin = verify_token(store, f"mlp_0123456789ab_{'x' * 43}")
    old_predict = verify_token(store, f"mlp_ba9876543210_{'x' * 43}")
    assert old_admin is not None and old_predict is not None
    assert old_admin.allows("admin") and old_admin.allows("outcomes")
    assert old_predict.allows("predict") and not old_predict.allows("outcomes")


def test_verify_accepts_only_the_exact_secret(store: Store) -> None:
    record, secret = create_token(store, "ci", ["predict"], actor="ana")
    other, other_secret = create_token(store, "other", ["admin"], actor="ana")
    assert verify_token(store, secret) == record
    assert verify_token(store, other_secret) == other
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert verify_token(store, tampered) is None
    swapped = f"mlp_{record.id}_{other_secret.split('_', 2)[2]}"  # right id, someone else's key
    assert verify_token(store, swapped) is None
    for junk in ("", "mlp_", "Bearer " + secret, secret + " ", "mlp_zzzzzzzzzzzz_x" * 3):
        assert verify_token(store, junk) is None


def test_revoke_stops_verification_and_is_idempotent(store: Store) -> None:
    record, secret = create_token(store, "ci", ["admin"], actor="ana")
    kept, kept_secret = create_token(store, "kept", ["predict"], actor="ana")
    revoked = revoke_token(store, record.id, actor="bo")
    assert revoked.id == record.id and revoked.revoked_at is not None and not revoked.active
    assert not revoked.allows("predict")
    assert verify_token(store, secret) is None
    assert verify_token(store, kept_secret) == kept
    again = revoke_token(store, record.id, actor="bo")
    assert again.revoked_at == revoked.revoked_at
    listed = {t.id: t for t in list_tokens(store)}
    assert listed[record.id].revoked_at == revoked.revoked_at
    assert listed[kept.id].revoked_at is None


def test_revoking_an_unknown_id_lists_the_known_ones(store: Store) -> None:
    with pytest.raises(NotFoundError, match="none yet"):
        revoke_token(store, "abc", actor="ana")
    first, _ = create_token(store, "a", ["predict"], actor="ana")
    second, _ = create_token(store, "b", ["predict"], actor="ana")
    with pytest.raises(
        NotFoundError, match=f"no token 'abc' \\(tokens: {first.id}, {second.id}\\)"
    ):
        revoke_token(store, "abc", actor="ana")


def test_records_carry_no_secret_material(store: Store) -> None:
    _, secret = create_token(store, "ci", ["predict"], actor="ana")
    assert set(TokenRecord.model_fields) == {
        "id",
        "name",
        "scopes",
        "created_at",
        "created_by",
        "revoked_at",
    }
    listed = list_tokens(store)
    assert len(listed) == 1
    text = listed[0].model_dump_json()
    assert secret.split("_", 2)[2] not in text
    assert hashlib.sha256(secret.encode()).hexdigest() not in text
