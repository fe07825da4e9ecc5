"""``mlprod init``, ``mlprod train`` and ``mlprod quickstart``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlprod.cli._common import (
    EXIT_GATES_FAILED,
    JsonOption,
    StoreOption,
    console,
    err_console,
    metric_text,
    print_json,
    settings_for,
    styled,
)
from mlprod.errors import MlprodError, SpecError
from mlprod.spec import SPEC_FILE, render_spec

if TYPE_CHECKING:
    import pandas as pd

    from mlprod.pipelines import TrainedRun

# Each command imports the stages it runs inside its body: typer reads every command's
# signature at start-up, so what is imported here is paid by `mlprod --help` too.


def init(
    data: Annotated[Path, typer.Option(help="CSV or Parquet file with one row per example.")],
    target: Annotated[str, typer.Option(help="The column to predict.")],
    name: Annotated[
        str | None, typer.Option(help="Model name (default: from the file name).")
    ] = None,
    output: Annotated[Path, typer.Option(help="Where to write the spec.")] = Path(SPEC_FILE),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing spec.")] = False,
) -> None:
    """Write a commented mlprod.yaml for your table: its columns' kinds and its interface."""
    from mlprod.data import load_frame
    from mlprod.features import draft_interface, id_columns, infer_kinds

    if output.exists() and not overwrite:
        raise SpecError(
            f"{output} already exists; pass --overwrite to replace it or --output elsewhere"
        )
    frame = load_frame(data)
    if target not in frame.columns:
        raise SpecError(
            f"--target {target!r} is not a column of {data}; columns: {list(frame.columns)[:30]}"
        )
    time = next(
        (c for c in frame.columns if c != target and str(frame[c].dtype).startswith("datetime")),
        None,
    )
    reserved = {target} | ({time} if time else set())
    kinds = infer_kinds(frame, reserved)
    left_out = id_columns(frame, reserved)
    positive, positive_note = _guess_positive(frame[target])
    model_name = name or re.sub(r"[^a-z0-9_-]+", "_", data.stem.lower()).strip("_-") or "model"
    if not model_name[0].isalpha():
        model_name = f"m_{model_name}"
    source = Path(data).resolve()
    try:
        relative = str(source.relative_to(output.resolve().parent))
    except ValueError:
        relative = str(source)
    interface = draft_interface(frame, kinds, target=target)
    text = render_spec(
        model_name, relative, target, kinds, positive=positive, time=time, interface=interface
    )
    output.write_text(text, encoding="utf-8")
    console.print(
        f"wrote {output} for model {model_name!r} with {len(kinds)} feature column(s) and "
        "their interface; next: mlprod interface (the contract), then mlprod train",
        highlight=False,
    )
    console.print(f"  {positive_note}", highlight=False)
    if left_out:
        console.print(
            f"  left out as row identifiers, not features: {', '.join(left_out)} (one value "
            "per row; add one under features: in the spec if it really is a feature)",
            highlight=False,
        )


def _guess_positive(values: pd.Series) -> tuple[object, str]:
    """The target value training would take as positive, written into the spec, and a note."""
    from mlprod.pipelines import encode_target

    try:
        _, classes, _ = encode_target(values, None)
    except MlprodError as exc:
        return None, f"positive class: not chosen ({exc.message})"
    if len(classes) > 2:
        shown = ", ".join(str(c) for c in classes[:10])
        return None, (
            f"multiclass target: {values.name} has {len(classes)} classes ({shown}); no "
            "positive class, the label is the most probable class"
        )
    return classes[1], (
        f"positive class: {values.name} = {classes[1]!r} (data.positive in the spec; scores "
        f"are P({values.name} = {classes[1]!r}), change it there if it is the other value)"
    )


def train(
    spec: Annotated[Path, typer.Argument(help="The spec file.")] = Path(SPEC_FILE),
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Train, evaluate, gate and register a version from mlprod.yaml."""
    from mlprod.pipelines import train as train_model

    run = train_model(spec, settings=settings_for(store), quiet=json)
    print_run(run, json)


def print_run(run: TrainedRun, json: bool) -> None:
    """What train, tune and rerun print: one JSON document, or a short summary.

    A version whose gates failed is registered all the same, but the command exits with
    `EXIT_GATES_FAILED`, so a pipeline can tell it from a version it may promote.
    """
    if json:
        print_json(
            {
                "run": run.id,
                "model": run.model,
                "version": run.version,
                "winner": run.winner,
                "threshold": run.threshold,
                "target": run.target,
                "positive": run.positive,
                "classes": run.classes,
                "gates_passed": run.gates_passed,
                "metrics": {k: v.model_dump() for k, v in run.metrics.items()},
                "gates": [g.model_dump() for g in run.gates],
                "candidates": run.candidates,
                "report": str(run.report),
            }
        )
    else:
        _print_summary(run)
    if not run.gates_passed:
        if not json:
            err_console.print(
                styled(
                    "red",
                    "gates failed:",
                    f"{run.model}@{run.version} is registered but cannot be promoted or "
                    "deployed (exit code 4)",
                ),
                highlight=False,
            )
        raise typer.Exit(EXIT_GATES_FAILED)


def _print_summary(run: TrainedRun) -> None:
    decision = "label: the most probable class" if len(run.classes) > 2 else "threshold"
    if decision == "threshold":
        decision = f"threshold {run.threshold:.4f}"
    console.print(
        f"[bold]{run.model}@{run.version}[/] from run {run.id[:12]}: "
        f"winner {run.winner}, {decision}",
        highlight=False,
    )
    if len(run.classes) > 2:
        console.print(
            f"  classes of {run.target}: {', '.join(map(str, run.classes))} (one probability "
            "per class; the label is the most probable)",
            markup=False,
            highlight=False,
        )
    elif run.target is not None:
        console.print(
            f"  positive class: {run.target} = {run.positive!r} (scores are P({run.target} = "
            f"{run.positive!r}); precision and recall count this class)",
            markup=False,
            highlight=False,
        )
    for name, value in run.metrics.items():
        console.print(f"  {name:<18} {metric_text(value.model_dump())}", highlight=False)
    for gate in run.gates:
        style, mark = ("green", "  ✓") if gate.passed else ("red", "  ✗")
        console.print(styled(style, mark, gate.message), highlight=False)
    console.print(f"report: {run.report}", markup=False, highlight=False)


def quickstart(
    directory: Annotated[
        Path, typer.Argument(help="Folder to create the example project in.")
    ] = Path("demo"),
    rows: Annotated[int, typer.Option(help="Rows of generated customer data.")] = 20_000,
) -> None:
    """Make a realistic example project and run it end to end: train, gate, promote, serve."""
    from mlprod.pipelines import run_quickstart

    run_quickstart(directory, rows=rows, console=console)
