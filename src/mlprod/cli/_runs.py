"""``mlprod runs list|show|compare|rerun``: who trained what, when, with what result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from mlprod.cli._common import (
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

app = typer.Typer(help="Training runs.", no_args_is_help=True)


@app.command("list")
def list_runs(
    model: Annotated[str | None, typer.Option(help="Only runs of this model.")] = None,
    where: Annotated[
        str | None,
        typer.Option(help="Filter, e.g. \"roc_auc > 0.85 and params.model == 'lightgbm'\"."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Started within (7d, 12h) or since a date.")
    ] = None,
    user: Annotated[str | None, typer.Option(help="Only runs by this user.")] = None,
    status: Annotated[str | None, typer.Option(help="running, finished or failed.")] = None,
    sort: Annotated[
        str | None, typer.Option(help="Sort field, - for descending: -roc_auc.")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many (default: newest first).")] = 20,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Runs, newest first, or filtered and sorted by metrics, params, date and user."""
    from mlprod.registry import search_runs

    settings = settings_for(store)
    meta, _ = open_stores(settings)
    with meta:
        runs = search_runs(
            meta, model=model, where=where, since=since, user=user, status=status,
            sort=sort, limit=limit,
        )  # fmt: skip
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
            Text(r.status, colour),
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
    from mlprod.registry import get_run, list_trials

    settings = settings_for(store)
    meta, _ = open_stores(settings)
    with meta:
        run = get_run(meta, run_id)
        trials = list_trials(meta, run.id)
    if json:
        shown = run.model_dump(mode="json")
        shown["trials"] = [trial.model_dump(mode="json") for trial in trials]
        print_json(shown)
        return
    console.print(styled("bold", f"run {run.id}", f"({run.model}, {run.status})"))
    console.print(
        f"  by {run.user} from {when(run.started_at)} to {when(run.ended_at)}; "
        f"git {run.git_commit or '-'}"
    )
    if run.error:
        console.print(styled("red", "  error:", str(run.error)))
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
    if trials:
        done = sum(1 for trial in trials if trial.state == "complete")
        console.print(f"  tuning: {len(trials)} trial(s), {done} complete")
    if run.parent_run_id:
        console.print(f"  re-run of {run.parent_run_id}")
    console.print("  libraries: " + ", ".join(f"{k} {v}" for k, v in run.library_versions.items()))


@app.command("compare")
def compare(
    a: Annotated[str, typer.Argument(help="The first run (id or prefix).")],
    b: Annotated[str, typer.Argument(help="The second run.")],
    output: Annotated[Path, typer.Option(help="Where to write the HTML.")] = Path("compare.html"),
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Config diff, metric deltas (b - a) with 95% intervals, the test sets' charts in HTML.

    Multiclass runs compare every class's precision and recall and their macro metrics.
    """
    from mlprod.pipelines import compare_runs

    result = compare_runs(a, b, output=output, settings=settings_for(store))
    if json:
        print_json(result)
        return
    console.print(f"a = {result['a']}\nb = {result['b']}")
    table = Table("metric", "a", "b", "b - a (95% CI)", "better", title="test metrics")
    for row in result["metrics"]:
        table.add_row(
            row["metric"], f"{row['a']:.4f}", f"{row['b']:.4f}",
            f"{row['delta']:+.4f} ({row['low']:+.4f} .. {row['high']:+.4f})", row["better"],
        )  # fmt: skip
    console.print(table)
    if "note" in result:
        console.print(f"  no metric deltas: {result['note']}", highlight=False)
    for change in result["config"]:
        console.print(f"  {change['key']}: {change['a']!r} -> {change['b']!r}", highlight=False)
    console.print(f"report: {result['report']}")


@app.command("rerun")
def rerun(
    run_id: Annotated[str, typer.Argument(help="The run to start from (id or prefix).")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="A change to its spec, e.g. tuning.trials=100 (repeatable)."),
    ] = None,
    workers: Annotated[int, typer.Option(help="Tuning processes, as for mlprod tune.")] = 1,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Train again from a past run's resolved spec, with changes; linked to it as parent."""
    from mlprod.cli._project import print_run
    from mlprod.pipelines import rerun as rerun_run

    run = rerun_run(run_id, set_ or [], settings=settings_for(store), quiet=json, workers=workers)
    print_run(run, json)
