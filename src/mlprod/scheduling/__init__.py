"""The closed loop: schedules and jobs, retraining, champion vs challenger, canary rollout.

`mlprod scheduler` runs a `Scheduler` over one or more spec files: cron jobs and triggers
(drift and performance alerts, new data) become job runs in the store, each run once
across every scheduler sharing the store. Retraining fits a challenger on the newest data
and lets it meet the champion on the same labelled rows; a winner takes a canary share of
the traffic until a sequential test on outcomes promotes it or a guardrail rolls it back.

Example::

    context = LoopContext(store, artifacts, Settings())
    decision = retrain(load_spec("mlprod.yaml"), context)
    Scheduler([Project.load("mlprod.yaml")], context).run_forever(tick=30)
"""

from mlprod.scheduling._canary import check_canary, start_canary
from mlprod.scheduling._compare import Comparison, Look, canary_look, paired_comparison
from mlprod.scheduling._context import LoopContext
from mlprod.scheduling._cron import latest_slot, next_slot
from mlprod.scheduling._decisions import active_canary, list_canaries, list_decisions
from mlprod.scheduling._export import airflow_dag, crontab_lines, write_airflow_dag
from mlprod.scheduling._jobs import Job, Project, jobs_of, run_job
from mlprod.scheduling._marker import loop_marker
from mlprod.scheduling._records import Canary, Decision, JobRun
from mlprod.scheduling._retrain import retrain
from mlprod.scheduling._runs import claim, enqueue, finish, get_job_run, list_job_runs
from mlprod.scheduling._scheduler import Scheduler, run_now

__all__ = [
    "Canary",
    "Comparison",
    "Decision",
    "Job",
    "JobRun",
    "Look",
    "LoopContext",
    "Project",
    "Scheduler",
    "active_canary",
    "airflow_dag",
    "canary_look",
    "check_canary",
    "claim",
    "crontab_lines",
    "enqueue",
    "finish",
    "get_job_run",
    "jobs_of",
    "latest_slot",
    "list_canaries",
    "list_decisions",
    "list_job_runs",
    "loop_marker",
    "next_slot",
    "paired_comparison",
    "retrain",
    "run_job",
    "run_now",
    "start_canary",
    "write_airflow_dag",
]
