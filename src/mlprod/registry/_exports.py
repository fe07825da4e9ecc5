"""The metadata store's public names, re-exported by ``mlprod.registry``."""

from mlprod.registry._alerts import AlertRecord, close_alerts, list_alerts, raise_alert
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
from mlprod.registry._live import (
    LiveStats,
    WindowCounts,
    activity_marker,
    merge_live_stats,
    merge_request_errors,
    read_feature_counts,
    read_request_errors,
    read_window_stats,
    window_start,
)
from mlprod.registry._outcomes import ingest_outcomes, match_outcomes, outcome_counts
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
    "AlertRecord",
    "ArtifactStore",
    "AuditRecord",
    "CurveRecord",
    "Deployment",
    "LiveStats",
    "LocalArtifacts",
    "ModelRef",
    "Route",
    "RunRecord",
    "Store",
    "TokenRecord",
    "TrialRecord",
    "VersionRecord",
    "WindowCounts",
    "activity_marker",
    "change_marker",
    "clear_deployment",
    "close_alerts",
    "count_predictions",
    "create_token",
    "get_deployment",
    "ingest_outcomes",
    "insert_predictions",
    "list_alerts",
    "list_deployments",
    "list_tokens",
    "list_trials",
    "match_outcomes",
    "merge_live_stats",
    "merge_request_errors",
    "outcome_counts",
    "parse_ref",
    "parse_since",
    "raise_alert",
    "read_curves",
    "read_feature_counts",
    "read_predictions",
    "read_request_errors",
    "read_window_stats",
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
    "window_start",
]
