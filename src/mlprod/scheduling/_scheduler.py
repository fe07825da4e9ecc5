"""The scheduler: every tick, find what is due, run it once across all schedulers, record it.

A tick (every ``MLPROD_SCHEDULER_TICK`` seconds, or driven by a test's clock):

1. reload spec files that changed;
2. reap runs whose lease expired (their scheduler died) and queue their retries;
3. enqueue what is due: cron slots, open alerts, new data (idempotent keys);
4. claim due pending runs and run them, at most one per job at a time, on a small pool of
   threads (``workers=0`` runs them inline, which is what a simulated clock wants);
5. check every running canary.

A job that fails is recorded with its error and retried ``retries`` times, ``retry_delay``
apart; it holds up no other job. Leases are renewed while jobs run, so a scheduler killed
with ``kill -9`` loses its runs within ``lease`` and another scheduler takes them over.

Example::

    scheduler = Scheduler([Project.load("mlprod.yaml")], context, workers=2)
    scheduler.run_forever(tick=30)         # what `mlprod scheduler` does
    scheduler.tick()                       # one pass, e.g. under a simulated clock
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from mlprod.errors import MlprodError
from mlprod.scheduling._canary import check_canary
from mlprod.scheduling._context import LoopContext
from mlprod.scheduling._decisions import active_canary
from mlprod.scheduling._jobs import Job, Project, run_job
from mlprod.scheduling._records import JobRun
from mlprod.scheduling._runs import claim, due, enqueue, finish, reap, renew
from mlprod.scheduling._triggers import (
    Due,
    SourceSignatures,
    alert_due,
    cron_due,
    data_due,
)

log = logging.getLogger("mlprod.scheduling")


def scheduler_id() -> str:
    """``host:pid:random``: who holds a lease, in `mlprod jobs show`."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


class Scheduler:
    """Runs the jobs of `projects` on their schedules and triggers; see the module."""

    def __init__(
        self,
        projects: list[Project],
        ctx: LoopContext,
        *,
        workers: int = 2,
        lease: timedelta = timedelta(seconds=60),
        triggers_only: bool = False,
    ) -> None:
        self.projects = {p.spec.name: p for p in projects}
        self.ctx = ctx
        self.owner = scheduler_id()
        self.lease = lease
        self.triggers_only = triggers_only
        self.started = ctx.clock.now()
        self.signatures = SourceSignatures()
        self._baselines: dict[str, str] = {}
        self._pool = ThreadPoolExecutor(workers) if workers > 0 else None
        self._running: dict[tuple[str, str], tuple[JobRun, Future[None] | None]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # --- the loop

    def run_forever(self, tick: float) -> None:
        """Tick every `tick` seconds until `stop`; leases are renewed between ticks."""
        renewer = threading.Thread(target=self._renew_loop, name="mlprod-leases", daemon=True)
        renewer.start()
        while not self._stop.is_set():
            try:
                self.tick()
            except MlprodError as exc:  # the store is down: try again next tick
                log.warning("scheduler tick skipped: %s", exc)
            self._stop.wait(tick)
        self.close()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Wait for the jobs under way, then release the pool."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def tick(self) -> list[JobRun]:
        """One pass; returns the runs it claimed."""
        now = self.ctx.clock.now()
        self._reload()
        for run in reap(self.ctx.store, now):
            log.warning("%s/%s run %d abandoned: %s", run.model, run.job, run.id, run.error)
            self._retry(run, now)
        for job in self.jobs():
            for reason in self._due(job, now):
                enqueue(
                    self.ctx.store,
                    job.model,
                    job.kind,
                    trigger=reason.trigger,
                    key=reason.key,
                    scheduled_for=reason.scheduled_for,
                    not_before=now,
                )
        claimed = [run for run in due(self.ctx.store, now) if self._start(run, now)]
        self._check_canaries()
        return claimed

    def jobs(self) -> list[Job]:
        return [job for project in self.projects.values() for job in project.jobs()]

    # --- what is due

    def _due(self, job: Job, now: datetime) -> list[Due]:
        found: list[Due] = []
        if not self.triggers_only:
            slot = cron_due(self.ctx.store, job, now, first_seen=self.started)
            found += [slot] if slot else []
        if job.kind != "retrain" or active_canary(self.ctx.store, job.model) is not None:
            return found
        found += alert_due(self.ctx.store, job)
        if "new_data" in job.triggers:
            signature = self._signature(job.model, now)
            baseline = self._baselines.setdefault(job.model, signature)
            fresh = data_due(self.ctx.store, job, now, signature=signature, baseline=baseline)
            found += [fresh] if fresh else []
        return found

    def _signature(self, model: str, now: datetime) -> str:
        return self.signatures.signature(self.projects[model].spec.data.source, now)

    # --- running

    def _start(self, run: JobRun, now: datetime) -> bool:
        key = (run.model, run.job)
        project = self.projects.get(run.model)
        with self._lock:
            if project is None or key in self._running:
                return False  # not ours to run, or the same job is still running here
        claimed = claim(self.ctx.store, run.id, owner=self.owner, lease=self.lease, now=now)
        if claimed is None:
            return False  # another scheduler got it
        if self._pool is None:
            with self._lock:
                self._running[key] = (claimed, None)
            self._execute(project, claimed)
        else:
            with self._lock:
                future = self._pool.submit(self._execute, project, claimed)
                self._running[key] = (claimed, future)
        return True

    def _execute(self, project: Project, run: JobRun) -> None:
        extra: dict[str, Any] = {}
        try:
            if run.job == "retrain" and "new_data" in _triggers_of(project, run.job):
                extra["source"] = self._signature(run.model, self.ctx.clock.now())
            output = run_job(project, run, self.ctx)
        except Exception as exc:  # any failure is the run's outcome, not the scheduler's
            log.warning("%s/%s run %d failed: %s", run.model, run.job, run.id, exc)
            done = finish(
                self.ctx.store,
                run.id,
                owner=self.owner,
                state="failed",
                now=self.ctx.clock.now(),
                error=_message(exc),
                output=extra,
            )
            if done is not None:
                self._retry(done, self.ctx.clock.now())
        else:
            finish(
                self.ctx.store,
                run.id,
                owner=self.owner,
                state="succeeded",
                now=self.ctx.clock.now(),
                output={**output, **extra},
            )
        finally:
            with self._lock:
                self._running.pop((run.model, run.job), None)

    def _retry(self, run: JobRun, now: datetime) -> None:
        job = next((j for j in self.jobs() if (j.model, j.kind) == (run.model, run.job)), None)
        retries = job.retries if job else 0
        if run.attempt > retries:
            return
        delay = job.retry_delay if job else timedelta(0)
        enqueue(
            self.ctx.store,
            run.model,
            run.job,
            trigger=run.trigger,
            key=run.trigger_key,
            scheduled_for=run.scheduled_for,
            not_before=now + delay,
            attempt=run.attempt + 1,
        )

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease.total_seconds() / 3):
            with self._lock:
                held = [run for run, _ in self._running.values()]
            until = self.ctx.clock.now() + self.lease
            for run in held:
                try:
                    renew(self.ctx.store, run.id, owner=self.owner, until=until)
                except MlprodError as exc:
                    log.warning("cannot renew the lease of run %d: %s", run.id, exc)

    def _check_canaries(self) -> None:
        for name, project in self.projects.items():
            canary = active_canary(self.ctx.store, name)
            if canary is None:
                continue
            try:
                decision = check_canary(self.ctx, project.spec, canary)
            except MlprodError as exc:
                log.warning("canary of %s could not be checked: %s", name, exc)
                continue
            if decision is not None:
                log.info("canary of %s: %s (%s)", name, decision.outcome, decision.reason)

    def _reload(self) -> None:
        for name, project in list(self.projects.items()):
            try:
                if project.path.stat().st_mtime != project.stamp:
                    self.projects[name] = Project.load(project.path)
            except (OSError, MlprodError) as exc:
                log.warning("keeping the last good %s: %s", project.path, exc)


def run_now(project: Project, job: str, ctx: LoopContext) -> JobRun:
    """Run one job of `project` at once, recorded as a manual run (`mlprod jobs run`).

    It takes the same path as a scheduled run (enqueued, claimed, finished), so it shows up
    in `mlprod jobs list` beside them; a failure is recorded, not raised.
    """
    now = ctx.clock.now()
    key = f"manual:{secrets.token_hex(8)}"
    queued = enqueue(
        ctx.store, project.spec.name, job, trigger="manual", key=key, scheduled_for=now
    )
    assert queued is not None  # the key is new
    owner = scheduler_id()
    run = claim(ctx.store, queued.id, owner=owner, lease=timedelta(hours=6), now=now)
    assert run is not None  # nobody else knows the key
    try:
        output = run_job(project, run, ctx)
    except Exception as exc:  # any failure is the run's outcome
        done = finish(
            ctx.store, run.id, owner=owner, state="failed", now=ctx.clock.now(), error=_message(exc)
        )
    else:
        done = finish(
            ctx.store, run.id, owner=owner, state="succeeded", now=ctx.clock.now(), output=output
        )
    assert done is not None  # the lease outlives any job run by hand
    return done


def _triggers_of(project: Project, kind: str) -> tuple[str, ...]:
    return next((job.triggers for job in project.jobs() if job.kind == kind), ())


def _message(exc: Exception) -> str:
    if isinstance(exc, MlprodError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"
