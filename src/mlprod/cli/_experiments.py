"""``mlprod tune``, ``mlprod data profile`` and ``mlprod features rank``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlprod._threads import wait_passively
from mlprod.cli._common import (
    JsonOption,
    StoreOption,
    console,
    print_json,
    settings_for,
    styled,
)
from mlprod.cli._project import print_run
from mlprod.errors import SpecError
from mlprod.spec import SPEC_FILE, TuningSpec, load_spec

data_app = typer.Typer(help="Understand the data before modelling.", no_args_is_help=True)
features_app = typer.Typer(help="Feature columns.", no_args_is_help=True)


def tune(
    spec: Annotated[Path, typer.Argument(help="The spec file.")] = Path(SPEC_FILE),
    workers: Annotated[int, typer.Option(help="Processes sharing each study (this one too).")] = 1,
    trials: Annotated[
        int | None, typer.Option(help="Trials per candidate (overrides tuning.trials).")
    ] = None,
    join: Annotated[
        str | None, typer.Option(help="Join a running run's tuning instead of starting one.")
    ] = None,
    worker: Annotated[int | None, typer.Option(hidden=True)] = None,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Tune every candidate with Optuna, then train, gate and register the best."""
    if workers > 1 or join is not None:  # processes sharing the cores: see mlprod._threads
        wait_passively(os.environ)
    from mlprod.pipelines import join_tuning, train

    settings = settings_for(store)
    if workers < 1:
        raise SpecError(f"--workers must be at least 1, got {workers}")
    if join is not None:
        ran = join_tuning(join, settings=settings, worker=worker, quiet=json)
        if json:
            print_json({"run": join, "trials": ran})
        else:
            console.print(f"joined run {join}: ran {ran} trial(s)")
        return
    loaded = load_spec(spec)
    tuning = loaded.tuning or TuningSpec()
    if trials is not None:
        tuning = tuning.model_copy(update={"trials": trials})
    loaded = loaded.model_copy(update={"tuning": tuning})
    run = train(loaded, settings=settings, quiet=json, workers=workers)
    print_run(run, json)


@data_app.command("profile")
def profile(
    spec: Annotated[Path | None, typer.Argument(help="The spec whose data to profile.")] = None,
    source: Annotated[
        str | None, typer.Option(help="A CSV or Parquet file instead of a spec's source.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="The label column (with --source).")] = None,
    output: Annotated[Path, typer.Option(help="Where to write the HTML.")] = Path("profile.html"),
    json: JsonOption = False,
) -> None:
    """Write an HTML profile of a source: types, gaps, distributions, target rates, suspects."""
    from mlprod.pipelines import profile_data, profile_spec

    if source is not None:
        found = profile_data(source, target=target, output=output)
    else:
        found = profile_spec(spec or Path(SPEC_FILE), output=output)
    if json:
        print_json(found)
        return
    console.print(
        f"{found['rows']:,} rows, {len(found['columns'])} columns; profile: {found['report']}"
    )
    for suspect in found["suspects"]:
        console.print(
            styled("yellow", "  !", f"{suspect['column']}: {', '.join(suspect['flags'])}")
        )


@features_app.command("rank")
def rank(
    spec: Annotated[Path, typer.Argument(help="The spec file.")] = Path(SPEC_FILE),
    json: JsonOption = False,
) -> None:
    """Rank feature columns: mutual information, tree and permutation importance."""
    from mlprod.pipelines import rank_spec_features

    rows = rank_spec_features(spec)
    if json:
        print_json({"features": rows})
        return
    table = Table("rank", "column", "permutation (validation)", "tree", "mutual info",
                  title="features, most useful first")  # fmt: skip
    for row in rows:
        table.add_row(
            str(row["rank"]),
            row["column"],
            f"{row['permutation_importance']:.4f} ± {row['permutation_std']:.4f}",
            f"{row['tree_importance']:.4f}",
            f"{row['mutual_info']:.4f}",
        )
    console.print(table)
