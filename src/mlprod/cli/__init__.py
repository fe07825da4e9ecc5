"""The ``mlprod`` command line: thin commands that call a stage and print with rich.

User mistakes print one clear message and exit 1; they never show a traceback. Every
exit code is listed in `mlprod.cli._common` (and the README's "Exit codes").
"""

from __future__ import annotations

import sys

import typer

from mlprod.cli import (
    _deploy,
    _experiments,
    _features,
    _interface,
    _models,
    _monitor,
    _predict,
    _predictions,
    _project,
    _runs,
    _schedule,
    _serve,
    _tokens,
)
from mlprod.cli._common import EXIT_INTERRUPTED, EXIT_USER_ERROR, err_console, styled
from mlprod.errors import MlprodError

app = typer.Typer(
    name="mlprod",
    help="From mlprod.yaml to a registered, gated, served model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(_project.init)
app.command()(_project.train)
app.command()(_interface.interface)
app.command()(_experiments.tune)
app.command()(_project.quickstart)
app.command()(_models.promote)
app.command()(_models.gates)
app.command()(_deploy.deploy)
app.command()(_deploy.rollback)
app.command()(_serve.serve)
app.command()(_predict.predict)
app.command()(_monitor.monitor)
app.command()(_serve.dashboard)
app.command()(_schedule.scheduler)
app.command()(_schedule.retrain)
app.add_typer(_models.app, name="models")
app.add_typer(_runs.app, name="runs")
app.add_typer(_predictions.app, name="predictions")
app.add_typer(_tokens.app, name="tokens")
app.add_typer(_monitor.outcomes_app, name="outcomes")
app.add_typer(_experiments.data_app, name="data")
app.add_typer(_experiments.features_app, name="features")
_experiments.features_app.command("materialize")(_features.materialize)
_experiments.features_app.command("stream")(_features.stream)
_experiments.features_app.command("skew")(_features.skew)
_experiments.data_app.command("cache")(_features.cache_command)
app.add_typer(_schedule.jobs_app, name="jobs")
app.add_typer(_schedule.schedule_app, name="schedule")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning mlprod errors into one readable line."""
    try:
        app(args=argv, standalone_mode=True)
    except MlprodError as exc:
        # The message is user text (file names, keys, [bracketed] values): never markup.
        err_console.print(styled("red", "error:", exc.message), highlight=False, soft_wrap=True)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        err_console.print(styled("yellow", "interrupted"))
        sys.exit(EXIT_INTERRUPTED)


__all__ = ["app", "main"]
