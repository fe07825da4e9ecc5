"""``mlprod predict``: batch scoring from files or SQL into files or SQL tables."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlprod.cli._common import JsonOption, StoreOption, console, print_json, settings_for

if TYPE_CHECKING:
    from mlprod.batch import BatchResult, SqlQuery, SqlTable


def predict(
    ref: Annotated[str, typer.Argument(help="churn, churn@production or churn@3")],
    input: Annotated[
        str | None,
        typer.Option("--input", help="CSV or Parquet file, folder or glob of Parquet files."),
    ] = None,
    input_sql: Annotated[
        str | None, typer.Option("--input-sql", help="Score the rows of this query (needs --url).")
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("--output", help="FILE.parquet, FILE.csv, or a new folder for Parquet parts."),
    ] = None,
    output_table: Annotated[
        str | None,
        typer.Option("--output-table", help="SQL table to create or append to (needs --url)."),
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="SQLAlchemy URL of the database to read/write.")
    ] = None,
    output_url: Annotated[
        str | None, typer.Option("--output-url", help="Write the table here instead of --url.")
    ] = None,
    job_id: Annotated[
        str | None,
        typer.Option("--job-id", help="Name the job: the same id resumes it, or does nothing."),
    ] = None,
    engine: Annotated[str, typer.Option(help="local, or spark.")] = "local",
    master: Annotated[str | None, typer.Option(help="Spark master URL (default local[*]).")] = None,
    keep: Annotated[
        str | None,
        typer.Option(help="Input columns to carry into the output, comma-separated, or '*'."),
    ] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows per chunk; bounds memory.")] = 50_000,
    log: Annotated[
        bool, typer.Option("--log/--no-log", help="Log predictions so outcomes can join them.")
    ] = True,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Score a file, folder, glob or SQL query into a file, folder or SQL table.

    Each row gets prediction_id, model, version, score, label and scored_at, plus the
    spec's entity and time columns; a multiclass version adds proba_CLASS per class (its
    score is the label's probability). Rows appear at the destination all at once; a job
    killed half way and run again with the same --job-id carries on and writes no row twice.
    """
    from mlprod._memory import release_freed_memory

    release_freed_memory()  # this process is the job's; before pyarrow loads
    from mlprod.batch import score
    from mlprod.pipelines import load

    if engine not in ("local", "spark"):
        raise typer.BadParameter("use local or spark", param_hint="--engine")
    source = _source(input, input_sql, url)
    destination = _destination(output, output_table, output_url or url)
    settings = settings_for(store)
    model = load(ref, settings=settings, fast=False)  # a job checks its own faster paths
    result = score(
        model,
        source,
        destination,
        settings=settings,
        engine="spark" if engine == "spark" else "local",
        job_id=job_id,
        chunk_rows=chunk_rows,
        keep=[c.strip() for c in keep.split(",") if c.strip()] if keep else (),
        log=log,
        master=master,
        progress=not json,
    )
    if json:
        print_json(result.document())
        return
    _report(result)


def _source(input: str | None, input_sql: str | None, url: str | None) -> str | SqlQuery:
    from mlprod.batch import SqlQuery

    if (input is None) == (input_sql is None):
        raise typer.BadParameter("give exactly one of --input and --input-sql")
    if input_sql is not None:
        if not url:
            raise typer.BadParameter("--input-sql needs --url, the database to query")
        return SqlQuery(url, input_sql)
    assert input is not None
    return input


def _destination(output: str | None, table: str | None, url: str | None) -> Path | SqlTable:
    from mlprod.batch import SqlTable

    if (output is None) == (table is None):
        raise typer.BadParameter("give exactly one of --output and --output-table")
    if table is not None:
        if not url:
            raise typer.BadParameter("--output-table needs --url (or --output-url)")
        return SqlTable(url, table)
    assert output is not None
    if "://" in output:
        raise typer.BadParameter(
            f"{output!r} is a URL: to write a SQL table use --output-table NAME --url URL",
            param_hint="--output",
        )
    return Path(output)


def _report(result: BatchResult) -> None:
    where = result.output.get("table") or result.output.get("path")
    name = f"{result.model}@{result.version}"
    if result.already_done:
        console.print(
            f"job {result.job_id} had already finished: {result.rows:,} rows with {name} "
            f"in {where}; nothing written again"
        )
        return
    seconds = result.timings.get("total", 0.0)
    rate = f", {result.rows / seconds:,.0f} rows/s" if seconds else ""
    resumed = f" (resumed after {result.resumed_after:,})" if result.resumed_after else ""
    console.print(
        f"scored {result.rows:,} rows{resumed} with {name} into {where} "
        f"(job {result.job_id}, {seconds:.1f} s{rate})"
    )
