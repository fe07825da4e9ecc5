"""What every command shares: the --store option, exit codes, output helpers.

Exit codes, the same for every command (the README's "Exit codes" table lists them):

    0    done
    1    a mistake in what was asked (an MlprodError: bad spec, unknown model, no store...)
    2    the command line itself is wrong (unknown option, missing argument)
    3    a job ran and failed (``mlprod jobs run``, ``mlprod retrain``); recorded with its error
    4    a version's acceptance gates failed (``mlprod train``, ``tune``, ``runs rerun``,
         ``gates``): the version is registered but cannot be promoted or deployed
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.text import Text

from mlprod._time import parse_since

if TYPE_CHECKING:
    from mlprod.settings import Settings
    from mlprod.store import ArtifactStore, Store

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_USAGE = 2  # click's own code for a malformed command line
EXIT_JOB_FAILED = 3
EXIT_GATES_FAILED = 4
EXIT_INTERRUPTED = 130

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store folder or SQLAlchemy URL (default: $MLPROD_STORE, else .mlprod/).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document.")]

# No markup by default: user text (messages, values, file names) may hold [brackets] that
# rich would otherwise take for styles and drop. Styled output is built with `styled`/`Text`.
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)


def settings_for(store: str | None) -> Settings:
    """Settings from the environment, with an explicit --store winning."""
    # Imported here: pydantic-settings is paid by the commands that read settings only.
    from mlprod.settings import Settings

    settings = Settings()
    return settings.model_copy(update={"store": store}) if store else settings


def open_stores(settings: Settings, *, create: bool = False) -> tuple[Store, ArtifactStore]:
    """The metadata store and the artifact store `settings` name.

    A folder store must already exist unless `create`: a command that only reads (or
    acts on models that must already be there) run outside a project says so instead
    of leaving an empty ``.mlprod/`` behind.
    """
    # Imported here, not at the top: `mlprod --help` and commands without a store stay
    # clear of SQLAlchemy and Redis.
    from mlprod.store import Store, open_artifacts

    return Store.from_settings(settings, create=create), open_artifacts(settings)


def styled(style: str, label: str, text: str = "") -> Text:
    """`label` in `style`, then `text` verbatim: user text with ``[brackets]`` is not markup."""
    return Text.assemble((label, style), " " if text else "", text)


def print_json(document: Any) -> None:
    """One JSON document on stdout, nothing else."""
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2, default=_default).decode())
    sys.stdout.write("\n")
    sys.stdout.flush()


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot encode {type(value).__name__}")


def since_option(text: str, option: str = "--since") -> datetime:
    """A ``--since`` value (``7d``, ``12h`` ago or an ISO time) in the one grammar of `_time`."""
    try:
        return parse_since(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def when(value: datetime | None) -> str:
    """A short, readable UTC time."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def metric_text(metric: dict[str, Any] | None) -> str:
    """``0.8412 (0.8301-0.8519)``."""
    if not metric:
        return "-"
    return f"{metric['value']:.4f} ({metric['low']:.4f}-{metric['high']:.4f})"
