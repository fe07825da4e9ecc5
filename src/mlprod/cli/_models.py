"""``mlprod models list|show``, ``mlprod promote`` and ``mlprod gates``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from mlprod.cli._common import (
    EXIT_GATES_FAILED,
    EXIT_OK,
    JsonOption,
    StoreOption,
    console,
    metric_text,
    open_stores,
    print_json,
    settings_for,
    styled,
    when,
)
from mlprod.errors import MlprodError

if TYPE_CHECKING:
    from mlprod.registry import VersionRecord
    from mlprod.store import ArtifactStore

app = typer.Typer(help="Registered models and their versions.", no_args_is_help=True)


def version_summary(record: VersionRecord) -> dict[str, Any]:
    """The JSON shape of one version, as ``models show --json`` prints it."""
    target, positive = positive_class(record)
    return record.model_dump(mode="json", exclude={"signature"}) | {
        "fields": [{"name": f["name"], "kind": f["kind"]} for f in record.signature["fields"]],
        "target": target,
        "positive": positive,
        "classes": list(record.signature.get("classes") or []),
    }


def positive_class(record: VersionRecord) -> tuple[str | None, Any]:
    """The target column and the value of it the version's scores are the probability of.

    A multiclass version has no positive class (None): its scores are one per class.
    """
    classes = record.signature.get("classes") or [None, None]
    return record.signature.get("target"), classes[-1] if len(classes) == 2 else None


def _classes(record: VersionRecord) -> list[Any]:
    return list(record.signature.get("classes") or [])


def serving_path(artifacts: ArtifactStore, record: VersionRecord, cache: Path) -> tuple[str, str]:
    """The path `mlprod serve` would score this version with ("fast"/"reference"), and why.

    The bundle's files are checked against the store's hashes every time (a damaged or
    missing bundle is "unavailable"); the verdict is the one the last load on this machine
    (a server, `mlprod.load`, a batch job) kept in `cache`, beside the compiled trees.
    Only a version never loaded here is loaded and checked now, as a server does.
    """
    from mlprod.bundle import read_manifest, recall_verdict
    from mlprod.registry import open_version

    try:
        remembered = recall_verdict(cache, record.files)
        if remembered is not None:
            read_manifest(artifacts.path(record.bundle_id), record.files)
            return remembered
        model = open_version(artifacts, record)
    except MlprodError as exc:
        return "unavailable", str(exc)
    check = model.prepare(compiled=cache)
    return check.path, check.reason


@app.command("list")
def list_models(store: StoreOption = None, json: JsonOption = False) -> None:
    """Every model, with its newest version and aliases."""
    from mlprod.registry import alias_map, list_models, list_versions

    settings = settings_for(store)
    meta, _ = open_stores(settings)
    with meta:
        rows: list[dict[str, Any]] = []
        for name in list_models(meta):
            versions = list_versions(meta, name)
            rows.append(
                {
                    "name": name,
                    "versions": len(versions),
                    "latest": versions[-1].version if versions else None,
                    "aliases": alias_map(meta, name),
                }
            )
    if json:
        print_json({"models": rows})
        return
    table = Table("model", "versions", "latest", "aliases", title="models")
    for row in rows:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(row["aliases"].items())) or "-"
        table.add_row(row["name"], str(row["versions"]), str(row["latest"]), aliases)
    console.print(table)


@app.command("show")
def show(name: str, store: StoreOption = None, json: JsonOption = False) -> None:
    """A model's versions, aliases, test metrics with 95% intervals, and gate results."""
    from mlprod.registry import alias_map, list_models, list_versions, resolve

    settings = settings_for(store)
    meta, artifacts = open_stores(settings)
    with meta:
        versions = list_versions(meta, name) if name in list_models(meta) else [resolve(meta, name)]
        aliases = alias_map(meta, name)
    cache = settings.compiled_dir()
    paths = {v.version: serving_path(artifacts, v, cache) for v in versions}
    if json:
        summaries = [
            version_summary(v)
            | {"serving_path": paths[v.version][0], "serving_path_reason": paths[v.version][1]}
            for v in versions
        ]
        print_json({"model": name, "aliases": aliases, "versions": summaries})
        return
    multiclass = len(_classes(versions[-1])) > 2
    figures = (
        ("roc_auc", "macro_f1", "accuracy") if multiclass else ("roc_auc", "precision", "recall")
    )
    table = Table("version", "created", "flavor", "aliases", *figures, "gates", "path", title=name)
    for v in versions:
        gates = Text("passed", "green") if v.gates_passed else Text("failed", "red")
        table.add_row(
            str(v.version),
            when(v.created_at),
            v.flavor,
            ", ".join(v.aliases) or "-",
            *(metric_text(v.metrics.get(figure)) for figure in figures),
            gates,
            paths[v.version][0],
        )
    console.print(table)
    for version, (path, reason) in paths.items():
        if path != "fast":
            console.print(f"  v{version} serves on the {path} path: {reason}", soft_wrap=True)
    latest = versions[-1]
    target, positive = positive_class(latest)
    if multiclass:
        _print_classes(latest)
    else:
        console.print(
            f"  positive class: {target} = {positive!r} (scores are P({target} = {positive!r}))",
            highlight=False,
        )
    for gate in latest.gates:
        style, mark = ("green", "  ✓") if gate["passed"] else ("red", "  ✗")
        console.print(styled(style, mark, f"v{latest.version}: {gate['message']}"))


def _print_classes(record: VersionRecord) -> None:
    """Every class of a multiclass version with its test precision and recall."""
    classes = _classes(record)
    console.print(
        f"  classes of {record.signature.get('target')}: {', '.join(map(str, classes))} "
        "(one probability per class; the label is the most probable)",
        highlight=False,
        markup=False,
    )
    table = Table("class", "precision", "recall", title=f"v{record.version} per class (test)")
    for label in classes:
        table.add_row(
            str(label),
            metric_text(record.metrics.get(f"precision[{label}]")),
            metric_text(record.metrics.get(f"recall[{label}]")),
        )
    console.print(table)


def promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number to point the alias at.")],
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "production",
    force: Annotated[bool, typer.Option(help="Override failed gates (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why; kept in the audit log.")] = None,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Point an alias at a version whose gates passed and that loads; every move is audited.

    --force --reason overrides failed gates, never a version whose bundle does not load,
    verify against the hashes kept at registration and answer a warm-up prediction.
    """
    from mlprod.pipelines import promote as promote_version

    entry = promote_version(
        name, version, alias, force=force, reason=reason, settings=settings_for(store)
    )
    if json:
        print_json(entry.model_dump(mode="json"))
        return
    previous = f"v{entry.from_version}" if entry.from_version else "nothing"
    console.print(f"{name}@{alias}: {previous} → v{entry.to_version} (by {entry.actor})")


def gates(
    ref: Annotated[str, typer.Argument(help="churn, churn@production or churn@3")],
    junit: Annotated[Path | None, typer.Option(help="Write a JUnit XML report here.")] = None,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Re-check a version's gates on its test set (JUnit XML with --junit); exit 4 if any fails."""
    from mlprod.testing import run_gate_suite

    result = run_gate_suite(ref, settings=settings_for(store), junit=junit, quiet=json)
    if json:
        print_json(result)
    raise typer.Exit(EXIT_OK if result["passed"] else EXIT_GATES_FAILED)
