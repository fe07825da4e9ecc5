"""``mlprod deploy`` and ``mlprod rollback``: who takes traffic, changed without a restart."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlprod.cli._common import (
    JsonOption,
    StoreOption,
    console,
    open_stores,
    print_json,
    settings_for,
)
from mlprod.errors import SpecError
from mlprod.spec import SPEC_FILE, load_spec

if TYPE_CHECKING:
    from mlprod.registry import Route


def _parse_route(text: str) -> Route:
    from mlprod.registry import Route

    version, sep, weight = text.partition("=")
    try:
        return Route(version=int(version), weight=float(weight) if sep else 100.0)
    except ValueError:
        raise SpecError(
            f"--route {text!r} must look like VERSION=WEIGHT, e.g. --route 3=90"
        ) from None


def deploy(
    name: Annotated[str, typer.Argument(help="Model name.")],
    route: Annotated[list[str] | None, typer.Option(help="VERSION=WEIGHT, repeatable.")] = None,
    shadow: Annotated[list[int] | None, typer.Option(help="Shadow version, repeatable.")] = None,
    sample_rate: Annotated[
        float | None, typer.Option(help="Share of predictions to log, 0 to 1.")
    ] = None,
    clear: Annotated[bool, typer.Option(help="Remove the deployment; serve the alias.")] = False,
    spec: Annotated[Path, typer.Option(help="Spec whose deploy: section to apply.")] = Path(
        SPEC_FILE
    ),
    reason: Annotated[str | None, typer.Option(help="Why; kept in the audit log.")] = None,
    force: Annotated[
        bool, typer.Option(help="Route to a version that failed its gates (needs --reason).")
    ] = False,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Route traffic across versions (A/B, canary) with shadows; servers follow in seconds.

    Without --route, the spec's ``deploy:`` section is applied. Every routed version must
    have passed its gates unless --force --reason; shadows only score, so any may shadow.
    Every named version, routed or shadow, must load, verify and answer a warm-up.
    """
    from mlprod.registry import Route, clear_deployment, set_deployment

    settings = settings_for(store)
    meta, artifacts = open_stores(settings)
    with meta:
        if clear:
            removed = clear_deployment(meta, name, actor=settings.user, reason=reason)
            print_json({"model": name, "cleared": removed}) if json else console.print(
                f"{name}: serving its production alias" if removed else f"{name} had no deployment"
            )
            return
        routes = [_parse_route(text) for text in route or []]
        shadows = list(shadow or [])
        if not routes:
            section = load_spec(spec).deploy
            routes = [Route(version=r.version, weight=r.weight) for r in section.routes]
            shadows = shadows or list(section.shadows)
            sample_rate = section.log_sample_rate if sample_rate is None else sample_rate
        result = set_deployment(
            meta,
            name,
            routes,
            shadows,
            artifacts=artifacts,
            actor=settings.user,
            reason=reason,
            log_sample_rate=sample_rate,
            force=force,
        )
    if json:
        print_json(result.model_dump(mode="json"))
        return
    console.print(f"{name}: {result.describe()}")


def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Option(help="Alias to move back.")] = "production",
    reason: Annotated[str | None, typer.Option(help="Why; kept in the audit log.")] = None,
    force: Annotated[
        bool, typer.Option(help="Roll back to a version that failed its gates (needs --reason).")
    ] = False,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Move the alias back to its previous version and clear any routes: all traffic returns."""
    from mlprod.registry import rollback as rollback_alias

    settings = settings_for(store)
    meta, artifacts = open_stores(settings)
    with meta:
        entry = rollback_alias(
            meta,
            name,
            alias,
            artifacts=artifacts,
            actor=settings.user,
            reason=reason,
            force=force,
        )
    if json:
        print_json(entry.model_dump(mode="json"))
        return
    console.print(f"{name}@{alias}: v{entry.from_version} → v{entry.to_version} (rollback)")
