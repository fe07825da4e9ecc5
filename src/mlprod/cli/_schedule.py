"""The closed loop from the command line: scheduler, jobs, retrain, schedule show and export."""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from mlprod._time import utc_now
from mlprod.cli._common import (
    EXIT_JOB_FAILED,
    JsonOption,
    StoreOption,
    console,
    err_console,
    open_stores,
    print_json,
    settings_for,
    styled,
    when,
)
from mlprod.errors import MlprodError, NotFoundError, SpecError
from mlprod.spec import JOB_KINDS, SPEC_FILE

if TYPE_CHECKING:
    from mlprod.scheduling import JobRun, LoopContext, Project
    from mlprod.settings import Settings

jobs_app = typer.Typer(help="Job runs: list, show, run one now.", no_args_is_help=True)
schedule_app = typer.Typer(help="The schedule in mlprod.yaml: show, export.", no_args_is_help=True)
SpecsOption = Annotated[
    list[Path] | None,
    typer.Option("--spec", help="A spec file (repeatable; default ./mlprod.yaml)."),
]


def _projects(specs: list[Path] | None) -> list[Project]:
    from mlprod.scheduling import Project

    paths = specs or [Path(SPEC_FILE)]
    return [Project.load(path) for path in paths]


def _context(settings: Settings) -> LoopContext:
    from mlprod.scheduling import LoopContext

    store, artifacts = open_stores(settings, create=True)
    return LoopContext(store, artifacts, settings, actor=settings.user)


def scheduler(
    spec: SpecsOption = None,
    once: Annotated[bool, typer.Option(help="One pass over what is due, then exit.")] = False,
    triggers_only: Annotated[
        bool, typer.Option(help="Only drift, performance and new-data triggers (no cron).")
    ] = False,
    workers: Annotated[int | None, typer.Option(help="Jobs run at once.")] = None,
    store: StoreOption = None,
) -> None:
    """Run the spec's jobs on their schedules and triggers, in the foreground.

    Several schedulers may share a store: each job run is claimed by one of them, and a
    scheduler that dies loses its runs to the others after MLPROD_SCHEDULER_LEASE seconds.
    """
    from mlprod.scheduling import Scheduler

    settings = settings_for(store)
    projects = _projects(spec)
    ctx = _context(settings)
    _check_jobs(ctx, projects)
    count = settings.scheduler_workers if workers is None else workers
    lease = timedelta(seconds=settings.scheduler_lease)
    runner = Scheduler(
        projects, ctx, workers=0 if once else count, lease=lease, triggers_only=triggers_only
    )
    if once:
        claimed = runner.tick()
        console.print(f"ran {len(claimed)} job(s): " + ", ".join(r.name for r in claimed))
        return
    names = ", ".join(job.name for job in runner.jobs()) or "none"
    err_console.print(f"scheduler {runner.owner}: jobs {names}; Ctrl+C to stop")
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())  # finish the jobs under way
    try:
        runner.run_forever(settings.scheduler_tick)
    except KeyboardInterrupt:
        runner.stop()
        runner.close()


def _check_jobs(ctx: LoopContext, projects: list[Project]) -> None:
    """A score job must name a model that exists: say which key, before anything runs."""
    from mlprod.registry import resolve

    for project in projects:
        schedule = project.spec.schedule
        score = schedule.jobs.get("score") if schedule else None
        if score is not None and score.model:
            try:
                resolve(ctx.store, score.model)
            except MlprodError as exc:
                raise SpecError(f"{project.path}: schedule.jobs.score.model: {exc}") from None


@jobs_app.command("list")
def list_jobs(
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    job: Annotated[str | None, typer.Option(help="Only this job.")] = None,
    state: Annotated[str | None, typer.Option(help="pending, running, failed, ...")] = None,
    limit: Annotated[int, typer.Option(help="Most recent runs shown.")] = 30,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Recent job runs: what ran, why, when, how it ended."""
    from mlprod.scheduling import list_job_runs

    meta, _ = open_stores(settings_for(store))
    with meta:
        runs = list_job_runs(meta, model, job=job, states=[state] if state else None, limit=limit)
    if json:
        print_json({"runs": [r.model_dump(mode="json") for r in runs]})
        return
    table = Table(
        "id", "job", "trigger", "attempt", "state", "due", "ended", "result", title="job runs"
    )
    for run in runs:
        table.add_row(
            str(run.id),
            run.name,
            run.trigger,
            str(run.attempt),
            run.state,
            when(run.scheduled_for),
            when(run.ended_at),
            _result(run),
        )
    console.print(table)


def _result(run: JobRun) -> str:
    if run.error:
        return run.error.splitlines()[0][:80]
    return ", ".join(f"{k}={v}" for k, v in run.output.items() if k != "reason")[:80]


@jobs_app.command("show")
def show_job(run_id: int, store: StoreOption = None, json: JsonOption = False) -> None:
    """One job run in full: trigger, lease, times, error and output."""
    from mlprod.scheduling import get_job_run

    meta, _ = open_stores(settings_for(store))
    with meta:
        run = get_job_run(meta, run_id)
    if json:
        print_json(run.model_dump(mode="json"))
        return
    for key, value in run.model_dump(mode="json").items():
        console.print(styled("bold", f"{key}:", str(value)), highlight=False)


@jobs_app.command("run")
def run_now(
    job: Annotated[str, typer.Argument(help=f"One of: {', '.join(JOB_KINDS)}.")],
    spec: SpecsOption = None,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Run one job of the spec now (a manual trigger), recorded like a scheduled run."""
    from mlprod.scheduling import run_now

    settings = settings_for(store)
    project = _projects(spec)[0]
    if job not in JOB_KINDS:
        raise SpecError(f"no job {job!r}; jobs are {', '.join(JOB_KINDS)}")
    run = run_now(project, job, _context(settings))
    _print_run(run, json)


def retrain(
    name: Annotated[str, typer.Argument(help="Model name (its spec: --spec or ./mlprod.yaml).")],
    spec: SpecsOption = None,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Fit a challenger on the newest data, judge it against the champion, maybe canary it."""
    settings = settings_for(store)
    project = next((p for p in _projects(spec) if p.spec.name == name), None)
    if project is None:
        raise NotFoundError(
            f"no spec for model {name!r} in {', '.join(map(str, spec or [Path(SPEC_FILE)]))}; "
            "pass its mlprod.yaml with --spec"
        )
    from mlprod.scheduling import run_now

    ctx = _context(settings)
    run = run_now(project, "retrain", ctx)
    if run.state == "succeeded" and "decision" in run.output:
        from mlprod.scheduling import list_decisions

        decision = next(
            d for d in list_decisions(ctx.store, name, limit=20) if d.id == run.output["decision"]
        )
        if json:
            print_json({"run": run.model_dump(mode="json"), **decision.model_dump(mode="json")})
            return
        console.print(
            styled("bold", f"{name}:", f"{decision.outcome}: {decision.reason}"), highlight=False
        )
        return
    _print_run(run, json)


def _print_run(run: JobRun, json: bool) -> None:
    if json:
        print_json(run.model_dump(mode="json"))
    elif run.state == "succeeded":
        console.print(f"{run.name} run {run.id} succeeded: {_result(run)}", highlight=False)
    if run.state != "succeeded":
        if not json:
            err_console.print(
                styled("red", "error:", f"{run.name} run {run.id} failed: {run.error}"),
                highlight=False,
            )
        raise typer.Exit(EXIT_JOB_FAILED)


@schedule_app.command("show")
def show_schedule(
    spec: SpecsOption = None, store: StoreOption = None, json: JsonOption = False
) -> None:
    """Every job of the specs: cron, time zone, triggers, next run and the last run."""
    from mlprod.scheduling import list_job_runs, next_slot

    settings = settings_for(store)
    projects = _projects(spec)
    meta, _ = open_stores(settings)
    rows: list[dict[str, Any]] = []
    with meta:
        for project in projects:
            for job in project.jobs():
                last = list_job_runs(meta, job.model, job=job.kind, limit=1)
                upcoming = next_slot(job.cron, job.timezone, after=utc_now()) if job.cron else None
                rows.append(
                    {
                        "model": job.model,
                        "job": job.kind,
                        "cron": job.cron,
                        "timezone": job.timezone,
                        "triggers": list(job.triggers),
                        "next": upcoming.isoformat() if upcoming else None,
                        "last": last[0].model_dump(mode="json") if last else None,
                    }
                )
    if json:
        print_json({"jobs": rows})
        return
    table = Table(
        "job", "cron", "time zone", "also on", "next run (UTC)", "last run", title="schedule"
    )
    for row in rows:
        last = row["last"]
        table.add_row(
            f"{row['model']}/{row['job']}",
            row["cron"] or "-",
            row["timezone"],
            ", ".join(row["triggers"]) or "-",
            (row["next"] or "-")[:16],
            f"{last['state']} {last['scheduled_for'][:16]}" if last else "never",
        )
    console.print(table)


@schedule_app.command("export")
def export_schedule(
    airflow: Annotated[
        Path | None, typer.Option(help="Write an Airflow DAG file into this folder.")
    ] = None,
    cron: Annotated[bool, typer.Option("--cron", help="Print crontab lines.")] = False,
    spec: SpecsOption = None,
    store: StoreOption = None,
) -> None:
    """The same jobs for a scheduler you already run: an Airflow DAG or crontab lines."""
    from mlprod.scheduling import crontab_lines, write_airflow_dag

    if (airflow is None) == (not cron):
        raise SpecError("give --airflow DIR or --cron (one of them)")
    for project in _projects(spec):
        if not project.jobs():
            raise SpecError(f"{project.path} has no schedule.jobs to export")
        if airflow is not None:
            path = write_airflow_dag(project, airflow, store=store)
            console.print(f"wrote {path}")
        else:
            console.print(
                "\n".join(crontab_lines(project, store=store)),
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
