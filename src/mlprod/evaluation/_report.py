"""The training report: one self-contained HTML file, readable offline and years later.

plotly.js is inlined from the installed package rather than linked from a CDN, so the
report opens without network access and always matches the figures' plotly version.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlprod.evaluation._gates import GateResult
from mlprod.evaluation._metrics import MetricValue

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

_LOWER_IS_BETTER = frozenset({"log_loss", "brier"})
# Escapes that keep JSON valid inside <script>: "</script>" in a label cannot end the tag.
_SCRIPT_SAFE = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


def _cell(value: object) -> str:
    """A table cell as text: numbers rounded for reading, containers as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def _metric_rows(metrics: Mapping[str, MetricValue]) -> list[dict[str, str]]:
    return [
        {
            "name": name,
            "value": f"{m.value:.4f}",
            "low": f"{m.low:.4f}",
            "high": f"{m.high:.4f}",
            "better": "lower" if name in _LOWER_IS_BETTER else "higher",
        }
        for name, m in metrics.items()
    ]


def _candidate_table(
    candidates: Sequence[Mapping[str, object]],
) -> tuple[list[str], list[list[str]]]:
    """Columns in order of first appearance across candidates, so none is dropped."""
    columns: list[str] = []
    for candidate in candidates:
        columns.extend(key for key in candidate if key not in columns)
    rows = [[_cell(candidate.get(column)) for column in columns] for candidate in candidates]
    return [column.replace("_", " ") for column in columns], rows


def _chart_blocks(charts: Mapping[str, Figure]) -> list[dict[str, Any]]:
    from markupsafe import Markup

    blocks = []
    for key, figure in charts.items():
        chart_id = "chart-" + re.sub(r"[^A-Za-z0-9_-]", "-", key)
        blocks.append(
            {
                "id": chart_id,
                "id_json": Markup(json.dumps(chart_id)),
                "json": Markup(figure.to_json().translate(_SCRIPT_SAFE)),
            }
        )
    return blocks


def _render(context: dict[str, Any]) -> str:
    from jinja2 import Environment, StrictUndefined
    from markupsafe import Markup
    from plotly.offline import get_plotlyjs

    source = resources.files("mlprod.evaluation").joinpath("templates/report.html.j2")
    env = Environment(
        autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    template = env.from_string(source.read_text(encoding="utf-8"))
    return template.render(plotly_js=Markup(get_plotlyjs()), **context)


def _write_atomically(path: Path, text: str) -> None:
    """Write then rename, so a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a report is for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(
    path: str | Path,
    *,
    title: str,
    summary: Mapping[str, object],
    metrics: Mapping[str, MetricValue],
    gates: Sequence[GateResult],
    charts: Mapping[str, Figure],
    candidates: Sequence[Mapping[str, object]] = (),
) -> Path:
    """Write the HTML report to `path` (parents created) and return the path.

    Every value is HTML-escaped; each chart is a ``<div id="chart-<key>">`` drawn with
    the inlined plotly.js, so the file needs no network access.

    >>> import tempfile, pathlib
    >>> out = write_report(pathlib.Path(tempfile.mkdtemp()) / "report.html", title="t",
    ...                    summary={"model": "churn"}, metrics={}, gates=[], charts={})
    >>> "churn" in out.read_text(encoding="utf-8")
    True
    """
    columns, rows = _candidate_table(candidates)
    html = _render(
        {
            "show_evaluation": True,
            "tables": [],
            "title": title,
            "summary": [(str(key), _cell(value)) for key, value in summary.items()],
            "metrics": _metric_rows(metrics),
            "gates": [{**gate.model_dump(), "observed": f"{gate.observed:.4f}"} for gate in gates],
            "gates_passed": all(gate.passed for gate in gates),
            "candidate_columns": columns,
            "candidates": rows,
            "charts": _chart_blocks(charts),
        }
    )
    target = Path(path)
    _write_atomically(target, html)
    return target


def write_page(
    path: str | Path,
    *,
    title: str,
    summary: Mapping[str, object],
    tables: Sequence[Mapping[str, Any]] = (),
    charts: Mapping[str, Figure] | None = None,
) -> Path:
    """A self-contained page in the report's style: summary, titled tables, charts.

    Each table is ``{"title": ..., "rows": [mapping, ...]}`` with an optional ``note``;
    columns come from the rows' keys. Used for data profiles and run comparisons.
    """
    shown = []
    for table in tables:
        columns, rows = _candidate_table(table["rows"])
        slug = re.sub(r"[^a-z0-9]+", "-", str(table["title"]).lower()).strip("-")
        shown.append(
            {"title": table["title"], "note": table.get("note", ""), "css": slug,
             "columns": columns, "rows": rows}
        )  # fmt: skip
    html = _render(
        {
            "show_evaluation": False,
            "title": title,
            "summary": [(str(key), _cell(value)) for key, value in summary.items()],
            "metrics": [],
            "gates": [],
            "gates_passed": True,
            "tables": shown,
            "candidate_columns": [],
            "candidates": [],
            "charts": _chart_blocks(charts or {}),
        }
    )
    target = Path(path)
    _write_atomically(target, html)
    return target
