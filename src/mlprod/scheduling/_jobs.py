"""The jobs a schedule can hold, and what running each one does.

* ``retrain``: a challenger on the newest data, judged against the champion (`_retrain`);
* ``score``: batch scoring of the job's input into its output, counted into monitoring;
* ``monitor``: match outcomes, build the report, open and close alerts, and check a
  running canary;
* ``materialize``: write the model's online features (only where the spec defines them).

Each runner returns what it produced, as plain data, for the job run's row.

Example::

    project = Project.load("mlprod.yaml")
    output = run_job(project, run, context)    # run: a claimed JobRun of the monitor job
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from mlprod._time import parse_duration
from mlprod.batch import SqlQuery, SqlTable, score
from mlprod.errors import SpecError
from mlprod.monitoring import monitor_model
from mlprod.pipelines import materialize_features
from mlprod.registry import open_version, resolve
from mlprod.scheduling._canary import check_canary
from mlprod.scheduling._context import LoopContext
from mlprod.scheduling._decisions import active_canary
from mlprod.scheduling._records import JobRun
from mlprod.scheduling._retrain import retrain
from mlprod.spec import JobKind, JobSpec, ProjectSpec, load_spec


@dataclass(frozen=True)
class Job:
    """One job of one model, with the schedule's defaults filled in."""

    model: str
    kind: JobKind
    cron: str | None
    timezone: str
    missed: str
    retries: int
    retry_delay: timedelta
    triggers: tuple[str, ...]
    spec: JobSpec

    @property
    def name(self) -> str:
        return f"{self.model}/{self.kind}"


@dataclass(frozen=True)
class Project:
    """A spec file and what it says; the scheduler reloads it when the file changes."""

    path: Path
    spec: ProjectSpec
    stamp: float

    @classmethod
    def load(cls, path: str | Path) -> Project:
        file = Path(path).resolve()
        return cls(file, load_spec(file), file.stat().st_mtime)

    def jobs(self) -> list[Job]:
        """The spec's jobs, each with the schedule's defaults where it sets none."""
        return jobs_of(self.spec)


def jobs_of(spec: ProjectSpec) -> list[Job]:
    """The jobs of a spec's ``schedule:``, with the schedule's defaults filled in."""
    schedule = spec.schedule
    if schedule is None:
        return []
    return [
        Job(
            model=spec.name,
            kind=kind,
            cron=job.cron,
            timezone=job.timezone or schedule.timezone,
            missed=job.missed or schedule.missed,
            retries=schedule.retries if job.retries is None else job.retries,
            retry_delay=parse_duration(job.retry_delay or schedule.retry_delay),
            triggers=tuple(job.triggers),
            spec=job,
        )
        for kind, job in schedule.jobs.items()
    ]


def run_job(project: Project, run: JobRun, ctx: LoopContext) -> dict[str, Any]:
    """Run `run` (one job of `project`) now; returns what it produced (raises on failure)."""
    runner = RUNNERS.get(run.job)
    if runner is None:
        raise SpecError(f"no job {run.job!r}; jobs are {', '.join(RUNNERS)}")
    return runner(project, ctx, run)


def _retrain(project: Project, ctx: LoopContext, run: JobRun) -> dict[str, Any]:
    decision = retrain(project.spec, ctx, trigger=run.trigger)
    return {
        "decision": decision.id,
        "outcome": decision.outcome,
        "challenger": decision.challenger,
        "reason": decision.reason,
    }


def _score(project: Project, ctx: LoopContext, run: JobRun) -> dict[str, Any]:
    """Batch scoring; a retried run reuses its batch job id, so it resumes, never repeats."""
    job = _job_spec(project, "score")
    record = resolve(ctx.store, job.model or f"{project.spec.name}@production")
    source: str | SqlQuery = job.input or SqlQuery(str(job.url), str(job.input_sql))
    destination: str | SqlTable = job.output or SqlTable(str(job.url), str(job.output_table))
    key = hashlib.sha256(run.trigger_key.encode()).hexdigest()[:16]
    result = score(
        open_version(ctx.artifacts, record),
        source,
        destination,
        settings=ctx.settings,
        store=ctx.store,
        engine=job.engine,
        master=job.master,
        job_id=f"{project.spec.name}-score-{key}",
    )
    return {"model": record.ref, **result.document()}


def _monitor(project: Project, ctx: LoopContext, run: JobRun) -> dict[str, Any]:
    name = project.spec.name
    report = monitor_model(ctx.store, ctx.artifacts, name, settings=ctx.settings)
    output: dict[str, Any] = {
        "alerts": [f"{a.kind}:{a.subject}" for a in report.alerts],
        "drifted": sorted({d.feature for d in report.drift if d.flagged}),
    }
    canary = active_canary(ctx.store, name)
    if canary is not None:
        decision = check_canary(ctx, project.spec, canary)
        output["canary"] = decision.outcome if decision else "running"
    return output


def _materialize(project: Project, ctx: LoopContext, run: JobRun) -> dict[str, Any]:
    done = materialize_features(project.spec, settings=ctx.settings)
    return {"namespace": done.namespace, "events": done.events, "until_ms": done.until_ms}


def _job_spec(project: Project, kind: str) -> JobSpec:
    schedule = project.spec.schedule
    job = next((j for k, j in schedule.jobs.items() if k == kind), None) if schedule else None
    if job is None:
        raise SpecError(f"{project.path} has no schedule.jobs.{kind}; add it to run this job")
    return job


RUNNERS: dict[str, Callable[[Project, LoopContext, JobRun], dict[str, Any]]] = {
    "retrain": _retrain,
    "score": _score,
    "monitor": _monitor,
    "materialize": _materialize,
}
