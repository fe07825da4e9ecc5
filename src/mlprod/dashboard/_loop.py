"""The model page's loop: schedule, last and next runs, champion, canary and decisions.

What the schedule is comes from the spec recorded with the model's newest version (the
spec a scheduler runs); what happened comes from the store's job runs and decisions.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from mlprod._time import utc_now
from mlprod.registry import alias_map, get_run, list_versions
from mlprod.scheduling import (
    active_canary,
    jobs_of,
    list_decisions,
    list_job_runs,
    next_slot,
)
from mlprod.spec import ProjectSpec
from mlprod.store import Store
from mlprod.store import schema as t


def loop_detail(store: Store, name: str) -> dict[str, Any]:
    """Jobs with their last and next runs, the champion, a running canary, decisions."""
    versions = list_versions(store, name)
    spec = _recorded_spec(store, versions[-1].run_id) if versions else None
    jobs = []
    for job in jobs_of(spec) if spec else []:
        last = list_job_runs(store, name, job=job.kind, limit=1)
        upcoming = next_slot(job.cron, job.timezone, after=utc_now()) if job.cron else None
        jobs.append(
            {
                "kind": job.kind,
                "cron": job.cron,
                "timezone": job.timezone,
                "triggers": list(job.triggers),
                "next": upcoming.isoformat() if upcoming else None,
                "last": last[0].model_dump(mode="json") if last else None,
            }
        )
    canary = active_canary(store, name)
    progress = None
    if canary is not None:
        needed = spec.retrain.canary.min_labels if spec else None
        progress = {
            **canary.model_dump(mode="json"),
            "labels": {
                "champion": _labelled(store, name, canary.champion),
                "challenger": _labelled(store, name, canary.challenger),
            },
            "min_labels": needed,
        }
    return {
        "jobs": jobs,
        "champion": alias_map(store, name).get("production"),
        "canary": progress,
        "decisions": [d.model_dump(mode="json") for d in list_decisions(store, name, limit=10)],
    }


def _recorded_spec(store: Store, run_id: str) -> ProjectSpec | None:
    try:
        return ProjectSpec.model_validate(get_run(store, run_id).spec)
    except ValidationError:  # a spec written by another mlprod version
        return None


def _labelled(store: Store, model: str, version: int) -> int:
    """Labelled predictions of a version (a canary arm's progress)."""
    p, o = t.predictions, t.outcomes
    query = (
        sa.select(sa.func.count())
        .select_from(p.join(o, sa.and_(o.c.matched_id == p.c.id, o.c.status == "matched")))
        .where(p.c.model == model, p.c.version == version, p.c.shadow_of.is_(None))
    )
    return int(store.read(lambda conn: conn.execute(query).scalar_one()))
