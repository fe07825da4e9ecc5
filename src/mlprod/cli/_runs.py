"""``mlprod runs list|show``: who trained what, when, on which data, with what result."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mlprod.cli._common import (
    JsonOption,
    StoreOption,
    console,
    metric_text,
    print_json,
    settings_for,
    when,
)
from mlprod.workflows._context import open_store

app = typer.Typer(help="Training runs.", no_args_is_help=True)


@app.command("list")
def list_runs(
    model: Annotated[str | None, typer.Option(help="Only runs of this model.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Recent runs, newest first."""
    meta, _ = open_store(settings=settings_for(store))
    with meta:
        runs = meta.list_runs(model, limit=limit)
    if json:
        print_json({"runs": [r.model_dump(mode="json", exclude={"spec"}) for r in runs]})
        return
    table = Table(
        "run", "model", "status", "user", "started", "version", "winner", "roc_auc", title="runs"
    )
    for r in runs:
        colour = {"finished": "green", "failed": "red"}.get(r.status, "yellow")
        table.add_row(
            r.id[:12],
            r.model,
            f"[{colour}]{r.status}[/]",
            r.user,
            when(r.started_at),
            str(r.version or "-"),
            str(r.params.get("winner", "-")),
            metric_text(r.metrics.get("roc_auc")),
        )
    console.print(table)


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Everything a run recorded: spec, params, metrics, data fingerprint, environment."""
    meta, _ = open_store(settings=settings_for(store))
    with meta:
        run = meta.get_run(run_id)
    if json:
        print_json(run.model_dump(mode="json"))
        return
    console.print(f"[bold]run {run.id}[/] ({run.model}, {run.status})")
    console.print(
        f"  by {run.user} from {when(run.started_at)} to {when(run.ended_at)}; "
        f"git {run.git_commit or '-'}"
    )
    if run.error:
        console.print(f"  [red]error:[/] {run.error}")
    fp = run.fingerprint
    if fp:
        window = f"{fp.get('time_min') or '-'} .. {fp.get('time_max') or '-'}"
        console.print(
            f"  data: {fp['rows']:,} rows, {len(fp['columns'])} columns, "
            f"sha256 {fp['sha256'][:16]}, time {window}"
        )
    table = Table("metric", "test value (95% CI)")
    for name, value in run.metrics.items():
        if isinstance(value, dict):
            table.add_row(name, metric_text(value))
    console.print(table)
    console.print(
        "  params: " + ", ".join(f"{k}={v}" for k, v in run.params.items() if k != "features")
    )
    for c in run.candidates:
        score = "error: " + str(c["error"]) if c.get("error") else f"{c['validation_score']:.4f}"
        console.print(f"  candidate {c['name']}: validation {score} in {c['fit_seconds']:.1f}s")
    console.print("  libraries: " + ", ".join(f"{k} {v}" for k, v in run.library_versions.items()))
