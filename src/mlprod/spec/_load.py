"""Reading ``mlprod.yaml`` into a `ProjectSpec`, with errors a person can act on."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mlprod.errors import SpecError
from mlprod.spec._aggregates import AggregatesSpec, EventQuery, SqlTable
from mlprod.spec._models import ProjectSpec, SqlSource
from mlprod.spec._schedule import ScheduleSpec

SPEC_FILE = "mlprod.yaml"


def load_spec(path: str | Path = SPEC_FILE) -> ProjectSpec:
    """Read and validate a spec file; relative source paths resolve against its folder.

    Example::

        spec = load_spec("demo/mlprod.yaml")
        spec.data.source   # an absolute path to the CSV beside the spec
    """
    path = Path(path)
    if path.is_dir():
        path = path / SPEC_FILE
    if not path.exists():
        raise SpecError(
            f"no spec at {path}: write one with "
            "`mlprod init --data FILE --target COLUMN`, or pass the path of an existing one"
        )
    import yaml  # here, not at the top: reading stored specs (ProjectSpec) needs no YAML

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path} is not valid YAML{where}: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path} must hold a mapping with at least `name` and `data`")
    return parse_spec(raw, base_dir=path.parent, origin=str(path))


def parse_spec(
    raw: dict[str, Any], base_dir: Path | None = None, origin: str = "spec"
) -> ProjectSpec:
    """Validate a spec given as data; `base_dir` anchors relative file sources."""
    try:
        spec = ProjectSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, origin)) from None
    source = spec.data.source
    if base_dir is not None and isinstance(source, str) and "://" not in source:
        resolved = (base_dir / source).resolve()
        spec = spec.model_copy(
            update={"data": spec.data.model_copy(update={"source": str(resolved)})}
        )
    elif isinstance(source, SqlSource) and base_dir is not None:
        spec = spec.model_copy(
            update={
                "data": spec.data.model_copy(update={"source": _anchor_sqlite(source, base_dir)})
            }
        )
    aggregates = spec.features.aggregates
    if aggregates is not None and base_dir is not None:
        features = spec.features.model_copy(
            update={"aggregates": _anchor_aggregates(aggregates, base_dir)}
        )
        spec = spec.model_copy(update={"features": features})
    if base_dir is not None and spec.schedule is not None and "score" in spec.schedule.jobs:
        spec = spec.model_copy(update={"schedule": _anchor_score(spec.schedule, base_dir)})
    return spec


Anchored = str | EventQuery | SqlTable


def _anchor(source: Anchored, base_dir: Path) -> Anchored:
    """A relative file path or ``sqlite:///relative.db`` made relative to the spec's folder."""
    if isinstance(source, str):
        return source if "://" in source else str((base_dir / source).resolve())
    prefix = "sqlite:///"
    if source.url.startswith(prefix) and not source.url.startswith(prefix + "/"):
        db = (base_dir / source.url[len(prefix) :]).resolve()
        return source.model_copy(update={"url": f"{prefix}{db}"})
    return source


def _anchor_aggregates(aggregates: AggregatesSpec, base_dir: Path) -> AggregatesSpec:
    events = {
        name: item.model_copy(update={"source": _anchor(item.source, base_dir)})
        for name, item in aggregates.events.items()
    }
    joins = [j.model_copy(update={"source": _anchor(j.source, base_dir)}) for j in aggregates.joins]
    return aggregates.model_copy(update={"events": events, "joins": joins})


def _anchor_score(schedule: ScheduleSpec, base_dir: Path) -> ScheduleSpec:
    """The score job's files are relative to the spec's folder, like the data source."""
    job = schedule.jobs["score"]
    paths = {
        key: _anchor(value, base_dir)
        for key, value in (("input", job.input), ("output", job.output))
        if value
    }
    jobs = {**schedule.jobs, "score": job.model_copy(update=paths)}
    return schedule.model_copy(update={"jobs": jobs})


def _anchor_sqlite(source: SqlSource, base_dir: Path) -> SqlSource:
    """Make ``sqlite:///relative.db`` relative to the spec's folder, like file sources."""
    prefix = "sqlite:///"
    if source.url.startswith(prefix) and not source.url.startswith(prefix + "/"):
        db = (base_dir / source.url[len(prefix) :]).resolve()
        return SqlSource(url=f"{prefix}{db}", query=source.query)
    return source


def format_validation_error(exc: ValidationError, origin: str) -> str:
    """One line per problem: the key's dotted path, what was wrong, what is allowed."""
    lines = [f"{origin} is invalid:"]
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if not str(part).startswith("function-")]
        key = ".".join(loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(ProjectSpec, error["loc"][:-1])
            hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
            lines.append(f"  {key}: unknown key{hint}")
        elif error["type"] == "missing":
            lines.append(f"  {key}: required key is missing")
        else:
            message = error["msg"].removeprefix("Value error, ")
            got = error.get("input")
            shown = f" (got {got!r})" if _is_scalar(got) else ""
            lines.append(f"  {key}: {message}{shown}")
    return "\n".join(lines)


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Walk the model classes along `loc` and list the keys allowed at its end."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            continue
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = _model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    """The BaseModel class inside an annotation such as ``list[X]`` or ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
