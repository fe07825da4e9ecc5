"""``mlprod tokens create|list|revoke``: bearer tokens for the server's API.

The secret is printed once, by ``create``, and stored nowhere: the store keeps only its
sha256. Lose it and you revoke the token and create another.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from mlprod.cli._common import (
    JsonOption,
    StoreOption,
    console,
    err_console,
    open_stores,
    print_json,
    settings_for,
    styled,
    when,
)

app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who or what uses it, e.g. ci-deploy.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="predict, outcomes or admin (admin includes the others); repeat for several.",
            show_default="predict",
        ),
    ] = None,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Create a token and print its secret, once."""
    from mlprod.serving import create_token  # serving imports FastAPI: only here

    settings = settings_for(store)
    meta, _ = open_stores(settings, create=True)
    with meta:
        record, secret = create_token(meta, name, scope or ["predict"], actor=settings.user)
    if json:
        print_json({**record.model_dump(mode="json"), "secret": secret})
        return
    console.print(
        f"created token {record.id} ({record.name}) with scopes {', '.join(record.scopes)}"
    )
    console.print(secret, highlight=False, soft_wrap=True)
    err_console.print(
        styled(
            "yellow",
            "copy the secret now: it is not stored and will not be shown again.",
            "Send it as `Authorization: Bearer <secret>`.",
        )
    )


@app.command("list")
def list_(
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Every token with its scopes and state; secrets are never shown."""
    from mlprod.serving import list_tokens  # serving imports FastAPI: only here

    settings = settings_for(store)
    meta, _ = open_stores(settings)
    with meta:
        tokens = list_tokens(meta)
    if json:
        print_json({"tokens": [t.model_dump(mode="json") for t in tokens]})
        return
    table = Table("id", "name", "scopes", "created", "by", "revoked", title="tokens")
    for t in tokens:
        revoked = Text(when(t.revoked_at), "red") if t.revoked_at else Text("-")
        table.add_row(t.id, t.name, ", ".join(t.scopes), when(t.created_at), t.created_by, revoked)
    console.print(table)


@app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id, as `mlprod tokens list` shows.")],
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Revoke a token; servers stop accepting it within a few seconds."""
    from mlprod.serving import revoke_token  # serving imports FastAPI: only here

    settings = settings_for(store)
    meta, _ = open_stores(settings)
    with meta:
        record = revoke_token(meta, token_id, actor=settings.user)
    if json:
        print_json(record.model_dump(mode="json"))
        return
    console.print(f"revoked token {record.id} ({record.name}) at {when(record.revoked_at)}")
