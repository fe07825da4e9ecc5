"""`mlprod tokens create|list|revoke` as a user runs them: subprocesses, output, exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from mlprod.serving import verify_token
from mlprod.settings import Settings
from mlprod.store import Store


def tokens(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "MLPROD_USER": "ana"}
    env.pop("MLPROD_STORE", None)
    return subprocess.run(
        [sys.executable, "-m", "mlprod", "tokens", *args, "--store", str(store)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _open(store: Path) -> Store:
    return Store.open(Settings(store=str(store)).store_url())


def test_create_shows_the_secret_once_and_list_never_does(tmp_path: Path) -> None:
    store = tmp_path / "store"
    created = tokens(store, "create", "ci-deploy", "--scope", "admin")
    assert created.returncode == 0, created.stderr
    lines = created.stdout.strip().splitlines()
    secret = lines[-1].strip()
    assert secret.startswith("mlp_") and "scopes admin, outcomes, predict" in lines[0]
    assert "will not be shown again" in created.stderr
    with _open(store) as opened:
        record = verify_token(opened, secret)
    assert record is not None and record.name == "ci-deploy" and record.created_by == "ana"
    listed = tokens(store, "list", "--json")
    document = json.loads(listed.stdout)
    assert [(t["id"], t["scopes"]) for t in document["tokens"]] == [
        (record.id, ["admin", "outcomes", "predict"])
    ]
    assert secret not in listed.stdout and hashlib.sha256(secret.encode()).hexdigest() not in (
        listed.stdout
    )
    table = tokens(store, "list").stdout
    assert record.id in table and "ci-deploy" in table and secret not in table


def test_json_create_defaults_to_predict_and_revoke_takes_effect(tmp_path: Path) -> None:
    store = tmp_path / "store"
    created = json.loads(tokens(store, "create", "app", "--json").stdout)
    assert created["scopes"] == ["predict"] and created["revoked_at"] is None
    revoked = tokens(store, "revoke", created["id"], "--json")
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["revoked_at"] is not None
    with _open(store) as opened:
        assert verify_token(opened, created["secret"]) is None
    table = tokens(store, "list").stdout
    row = next(line for line in table.splitlines() if created["id"] in line)
    assert len(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row)) == 2  # created, revoked


def test_mistakes_are_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    store = tmp_path / "store"
    bad_scope = tokens(store, "create", "x", "--scope", "root")
    assert bad_scope.returncode == 1
    assert "allowed scopes: predict, outcomes, admin" in bad_scope.stderr
    assert "Traceback" not in bad_scope.stderr and bad_scope.stdout == ""
    unknown = tokens(store, "revoke", "nope")
    assert unknown.returncode == 1 and "no token 'nope'" in unknown.stderr
    assert json.loads(tokens(store, "list", "--json").stdout) == {"tokens": []}
