"""The ``mlprod`` command line: thin commands that call a stage and print with rich.

User mistakes print one clear message and exit 1; they never show a traceback. Every
exit code is listed in `mlprod.cli._common` (and the README's "Exit codes").

Each command's module is imported only when that command runs (`mlprod.cli._lazy`), so
``mlprod --help`` and every command pay for what they use and nothing else.
"""

from __future__ import annotations

import os
import sys

import typer

from mlprod._threads import one_blas_thread
from mlprod.cli._common import EXIT_INTERRUPTED, EXIT_USER_ERROR, err_console, styled
from mlprod.cli._lazy import Entry, LazyGroup
from mlprod.errors import MlprodError

_CLI = "mlprod.cli."

# In the order `mlprod --help` lists them. The help is each command's first paragraph
# (its docstring's, or its group's help=): tests/cli/test_lazy.py checks they agree.
COMMANDS: dict[str, Entry] = {
    "init": Entry(
        _CLI + "_project",
        "init",
        "Write a commented mlprod.yaml for your table: its columns' kinds and its interface.",
    ),
    "train": Entry(
        _CLI + "_project",
        "train",
        "Train, evaluate, gate and register a version from mlprod.yaml.",
    ),
    "interface": Entry(
        _CLI + "_interface",
        "interface",
        "Print the OpenAPI document of the spec's interface: no data, model or store needed.",
    ),
    "tune": Entry(
        _CLI + "_experiments",
        "tune",
        "Tune every candidate with Optuna, then train, gate and register the best.",
    ),
    "quickstart": Entry(
        _CLI + "_project",
        "quickstart",
        "Make a realistic example project and run it end to end: train, gate, promote, serve.",
    ),
    "promote": Entry(
        _CLI + "_models",
        "promote",
        "Point an alias at a version whose gates passed and that loads; every move is audited.",
    ),
    "gates": Entry(
        _CLI + "_models",
        "gates",
        "Re-check a version's gates on its test set (JUnit XML with --junit); exit 4 if any fails.",
    ),
    "deploy": Entry(
        _CLI + "_deploy",
        "deploy",
        "Route traffic across versions (A/B, canary) with shadows; servers follow in seconds.",
    ),
    "rollback": Entry(
        _CLI + "_deploy",
        "rollback",
        "Move the alias back to its previous version and clear any routes: all traffic returns.",
    ),
    "serve": Entry(
        _CLI + "_serve",
        "serve",
        "Serve every model that has a production alias over REST.",
    ),
    "predict": Entry(
        _CLI + "_predict",
        "predict",
        "Score a file, folder, glob or SQL query into a file, folder or SQL table.",
    ),
    "monitor": Entry(
        _CLI + "_monitor",
        "monitor",
        "Traffic per version, live vs test performance, drift, errors and open alerts.",
    ),
    "dashboard": Entry(
        _CLI + "_serve",
        "dashboard",
        "The web dashboard: every model's live precision and recall, drift and traffic.",
    ),
    "scheduler": Entry(
        _CLI + "_schedule",
        "scheduler",
        "Run the spec's jobs on their schedules and triggers, in the foreground.",
    ),
    "retrain": Entry(
        _CLI + "_schedule",
        "retrain",
        "Fit a challenger on the newest data, judge it against the champion, maybe canary it.",
    ),
    "models": Entry(_CLI + "_models", "app", "Registered models and their versions."),
    "runs": Entry(_CLI + "_runs", "app", "Training runs."),
    "predictions": Entry(_CLI + "_predictions", "app", "The prediction log."),
    "tokens": Entry(_CLI + "_tokens", "app", "API tokens: create, list, revoke."),
    "outcomes": Entry(
        _CLI + "_monitor", "outcomes_app", "Observed labels, joined to predictions later."
    ),
    # _features adds materialize, stream, skew and cache to _experiments' two groups.
    "data": Entry(_CLI + "_features", "data_app", "Understand the data before modelling."),
    "features": Entry(_CLI + "_features", "features_app", "Feature columns."),
    "jobs": Entry(_CLI + "_schedule", "jobs_app", "Job runs: list, show, run one now."),
    "schedule": Entry(
        _CLI + "_schedule", "schedule_app", "The schedule in mlprod.yaml: show, export."
    ),
}


# Commands that fit no model and score a test set at most, which a second OpenBLAS thread
# does not speed up: they load numpy with one, sparing its idle threads' spinning
# (`mlprod._threads`). The rest (train, tune, runs rerun, jobs run, features rank, predict,
# serve, ...) keep a thread per core.
FITS_NOTHING = frozenset(
    {
        "init",
        "interface",
        "promote",
        "gates",
        "deploy",
        "rollback",
        "monitor",
        "dashboard",
        "models",
        "predictions",
        "tokens",
        "outcomes",
        "schedule",
    }
)


class _Commands(LazyGroup):
    entries = COMMANDS


def _root() -> None:
    """Nothing to do before a command: the group exists to hold the commands."""


app = typer.Typer(
    name="mlprod",
    help="From mlprod.yaml to a registered, gated, served model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=_Commands,
    callback=_root,
)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning mlprod errors into one readable line."""
    arguments = sys.argv[1:] if argv is None else argv
    command = next((word for word in arguments if not word.startswith("-")), None)
    if command in FITS_NOTHING:
        one_blas_thread(os.environ)
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
