"""The metadata store's public names, re-exported by ``mlprod.registry``."""

from mlprod.registry._artifacts import ArtifactStore, LocalArtifacts, safe_join
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
    record_curves,
    record_trials,
    study_name,
    study_storage,
)
from mlprod.registry._predictions import (
    count_predictions,
    insert_predictions,
    read_predictions,
)
from mlprod.registry._records import (
    AuditRecord,
    CurveRecord,
    RunRecord,
    TrialRecord,
    VersionRecord,
)
from mlprod.registry._refs import ModelRef, parse_ref
from mlprod.registry._search import parse_since, search_runs
from mlprod.registry._store import Store
from mlprod.registry._tokens import (
    TokenRecord,
    create_token,
    list_tokens,
    revoke_token,
    verify_token,
)

__all__ = [
    "ArtifactStore",
    "AuditRecord",
    "CurveRecord",
    "Deployment",
    "LocalArtifacts",
    "ModelRef",
    "Route",
    "RunRecord",
    "Store",
    "TokenRecord",
    "TrialRecord",
    "VersionRecord",
    "change_marker",
    "clear_deployment",
    "count_predictions",
    "create_token",
    "get_deployment",
    "insert_predictions",
    "list_deployments",
    "list_tokens",
    "list_trials",
    "parse_ref",
    "parse_since",
    "read_curves",
    "read_predictions",
    "record_curves",
    "record_trials",
    "revoke_token",
    "rollback",
    "safe_join",
    "search_runs",
    "set_deployment",
    "study_name",
    "study_storage",
    "verify_token",
]
