"""``mlprod predictions``: export the log to analysts as a file or JSON; prune old rows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.table import Table

from mlprod.cli._common import (
    JsonOption,
    StoreOption,
    console,
    open_stores,
    print_json,
    settings_for,
    since_option,
    when,
)

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer(help="The prediction log.", no_args_is_help=True)

_FORMATS = (".parquet", ".csv")
SHOWN = 20  # rows printed as a table when there is no --output


def _check_output(path: Path | None) -> Path | None:
    if path is not None and path.suffix.lower() not in _FORMATS:
        raise typer.BadParameter(f"{path.name!r}: write a .parquet or a .csv file")
    return path


@app.command("export")
def export(
    model: Annotated[str, typer.Argument(help="Model name.")],
    since: Annotated[
        str | None,
        typer.Option(help="Only predictions newer than this: 30m, 1h, 7d or an ISO time."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Write FILE.parquet or FILE.csv.", callback=_check_output),
    ] = None,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Export a model's logged predictions: inputs, scores, labels, latency, versions.

    The file has one ``input.<field>`` column per input field and ``record``, the original
    JSON as text. ``label`` and the inputs keep their values ("Yes", true, 3); a column
    whose values mix types or nest is written as JSON text instead.
    """
    start = since_option(since) if since else None
    settings = settings_for(store)
    meta, _ = open_stores(settings)
    with meta:
        from mlprod.predlog import read_predictions

        frame = read_predictions(meta, model, since=start)
    if output is not None:
        _write(frame, output)
        if json:
            print_json({"model": model, "rows": len(frame), "output": str(output)})
        else:
            console.print(f"{model}: {len(frame)} predictions -> {output}")
        return
    if json:
        print_json({"model": model, "rows": len(frame), "predictions": _documents(frame)})
        return
    _show(model, frame)


@app.command("prune")
def prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", help="Delete predictions made before this: 90d, 12h or an ISO time."
        ),
    ],
    model: Annotated[
        str | None, typer.Argument(help="Model name (default: every model in the log).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; delete nothing.")
    ] = False,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Delete old logged predictions, served and batch, to keep the store small and fast.

    Monitoring's windowed counts stay, so no chart changes; a pruned prediction can no
    longer take a late outcome or be exported. A batch job that failed or still runs keeps
    its rows while it was active after the cut-off. Outcomes received before the cut-off
    go with their predictions, or when theirs never came. Every pruned model gets an audit
    entry.
    """
    before = since_option(older_than, "--older-than")
    settings = settings_for(store)
    meta, _ = open_stores(settings)
    with meta:
        from mlprod.predlog import prune_predictions

        result = prune_predictions(
            meta, before=before, model=model, actor=settings.user, dry_run=dry_run
        )
    if json:
        print_json(
            {
                "before": result.before.isoformat(),
                "dry_run": result.dry_run,
                "served": result.served,
                "batch": result.batch,
                "jobs": result.jobs,
                "rows": result.rows,
                "outcomes": result.outcomes,
                "unassigned_outcomes": result.unassigned,
            }
        )
        return
    verb = "would delete" if dry_run else "deleted"
    if not result.rows and not result.outcome_rows:
        console.print(f"no predictions made before {when(before)} UTC: nothing to delete")
        return
    table = Table("model", "served", "batch rows", "batch jobs", "outcomes",
                  title=f"{verb} (before {when(before)} UTC)")  # fmt: skip
    for name in result.models():
        counts = (result.served, result.batch, result.jobs, result.outcomes)
        table.add_row(name, *(f"{count.get(name, 0):,}" for count in counts))
    if result.unassigned:
        table.add_row("(by prediction id alone)", "", "", "", f"{result.unassigned:,}")
    console.print(table)


def _write(frame: pd.DataFrame, output: Path) -> None:
    """Parquet or CSV; mixed or nested columns as JSON text, so any log writes to Parquet."""
    flat = frame.copy()
    flat["record"] = [_json_text(value) for value in flat["record"]]
    for column in flat.columns:
        if (column == "label" or column.startswith("input.")) and flat[column].dtype == object:
            values = flat[column].dropna()
            if (
                values.map(type).nunique() > 1
                or values.map(lambda v: isinstance(v, dict | list)).any()
            ):
                flat[column] = [_json_text(value) for value in flat[column]]
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".parquet":
        flat.to_parquet(output, index=False)
    else:
        flat.to_csv(output, index=False)


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts without the flattened inputs: JSON-ready, `record` kept whole."""
    import pandas as pd

    columns = [c for c in frame.columns if not str(c).startswith("input.")]
    rows: list[dict[str, Any]] = []
    for raw in frame[columns].to_dict("records"):
        row = {str(key): value for key, value in raw.items()}
        for key in ("score", "latency_ms"):
            row[key] = None if pd.isna(row[key]) else float(row[key])
        rows.append(row)
    return rows


def _documents(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{**row, "at": row["at"].isoformat()} for row in _records(frame)]


def _show(model: str, frame: pd.DataFrame) -> None:
    table = Table(
        "id", "at", "version", "score", "label", "latency ms", title=f"{model} predictions"
    )
    for row in _records(frame.tail(SHOWN)):
        score = "-" if row["score"] is None else f"{row['score']:.4f}"
        table.add_row(
            str(row["id"])[:12],
            when(row["at"]),
            str(row["version"]),
            score,
            str(row["label"]),
            f"{row['latency_ms']:.1f}",
        )
    console.print(table)
    if len(frame) > SHOWN:
        console.print(f"last {SHOWN} of {len(frame)}; --output FILE.parquet exports them all")
