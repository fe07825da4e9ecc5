"""What every command shares: the --store option, output helpers, error printing."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from mlprod._time import parse_since
from mlprod.settings import Settings
from mlprod.store import ArtifactStore, Store, open_artifacts

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store folder or SQLAlchemy URL (default: $MLPROD_STORE, else .mlprod/).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document.")]

console = Console()
err_console = Console(stderr=True)


def settings_for(store: str | None) -> Settings:
    """Settings from the environment, with an explicit --store winning."""
    settings = Settings()
    return settings.model_copy(update={"store": store}) if store else settings


def open_stores(settings: Settings) -> tuple[Store, ArtifactStore]:
    """The metadata store and the artifact store `settings` name."""
    return Store.from_settings(settings), open_artifacts(settings)


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
