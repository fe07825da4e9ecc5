"""The registry, the system of record: runs, versions, aliases, deployments and audit.

Versions are immutable; aliases (``churn@production``) and deployments (weighted routes
and shadows) move, always through the gate check and the serve check (the version loads,
verifies against the hashes kept at registration and scores), and always audited. Every function
takes the store first, in the manner of ``resolve(store, "churn@production")``.

Example::

    record = resolve(store, "churn@production")
    set_alias(store, "churn", "production", 4, artifacts=artifacts, actor="ana")  # checked
    model = open_version(artifacts, record)
"""

from mlprod.registry._aliases import alias_map, audit_in, audit_log, delete_alias, set_alias
from mlprod.registry._deployments import (
    Deployment,
    Route,
    change_marker,
    clear_deployment,
    get_deployment,
    list_deployments,
    rollback,
    set_deployment,
)
from mlprod.registry._experiments import (
    list_trials,
    read_curves,
    record_curve,
    record_curves,
    record_trials,
)
from mlprod.registry._loading import open_version
from mlprod.registry._records import (
    AuditRecord,
    CurveRecord,
    Record,
    RunRecord,
    TrialRecord,
    VersionRecord,
)
from mlprod.registry._refs import NAME_PATTERN, ModelRef, check_name, parse_ref
from mlprod.registry._runs import create_run, finish_run, get_run, list_runs
from mlprod.registry._search import search_runs
from mlprod.registry._versions import (
    get_version,
    list_models,
    list_versions,
    register_version,
    require_model,
    resolve,
    versions_with_alias,
)

__all__ = [
    "NAME_PATTERN",
    "AuditRecord",
    "CurveRecord",
    "Deployment",
    "ModelRef",
    "Record",
    "Route",
    "RunRecord",
    "TrialRecord",
    "VersionRecord",
    "alias_map",
    "audit_in",
    "audit_log",
    "change_marker",
    "check_name",
    "clear_deployment",
    "create_run",
    "delete_alias",
    "finish_run",
    "get_deployment",
    "get_run",
    "get_version",
    "list_deployments",
    "list_models",
    "list_runs",
    "list_trials",
    "list_versions",
    "open_version",
    "parse_ref",
    "read_curves",
    "record_curve",
    "record_curves",
    "record_trials",
    "register_version",
    "require_model",
    "resolve",
    "rollback",
    "search_runs",
    "set_alias",
    "set_deployment",
    "versions_with_alias",
]
