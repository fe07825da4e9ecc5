"""The public surface changes only on purpose, and importing mlprod stays cheap."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import mlprod


def test_top_level_exports() -> None:
    assert sorted(mlprod.__all__) == [
        "Client", "MlprodError", "Model", "TrainedRun", "__version__", "load", "promote", "train",
    ]  # fmt: skip
    for name in mlprod.__all__:
        assert getattr(mlprod, name) is not None


def test_import_does_no_heavy_work() -> None:
    heavy = "('sklearn', 'lightgbm', 'sqlalchemy', 'pandas')"
    code = f"import sys, mlprod; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_error_maps_to_an_http_status() -> None:
    from mlprod import errors

    children = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.MlprodError)
    ]
    assert len(children) >= 10
    for cls in children:
        assert 400 <= cls.status < 600
        assert cls.code
        assert cls.__name__ in (errors.__doc__ or "")


# Each package's public names: cross-package use goes through these (see test_layers.py).
EXPORTS = {
    "batch": ["BatchResult", "JobRecord", "SqlQuery", "SqlTable", "get_job", "score"],
    "bundle": [
        "CompiledTrees",
        "Flavor",
        "Manifest",
        "Model",
        "REPORT",
        "SavedModel",
        "Scorer",
        "cached_trees",
        "combine_scores",
        "compile_trees",
        "flavor_names",
        "flavor_of",
        "load_scorer",
        "read_manifest",
        "read_reference",
        "register_flavor",
        "save_model",
        "save_skops",
        "seal_bundle",
        "tree_compiler_available",
        "write_bundle",
    ],
    "dashboard": ["create_dashboard", "mount_dashboard"],
    "data": [
        "ColumnInfo",
        "DataFingerprint",
        "Split",
        "fingerprint",
        "jdbc_options",
        "load_frame",
        "make_churn_table",
        "make_split",
        "parse_times",
        "profile_frame",
        "require_columns",
        "safe_url",
        "spark_available",
        "spark_session",
    ],
    "evaluation": [
        "GateResult",
        "MetricValue",
        "build_charts",
        "check_gates",
        "choose_threshold",
        "compare_metrics",
        "evaluate",
        "experiment_charts",
        "overlaid_curves",
        "write_page",
        "write_profile_report",
        "write_report",
    ],
    "features": [
        "ColumnSubset",
        "DATETIME_PARTS",
        "FeatureTransformer",
        "MISSING",
        "as_boolean",
        "as_category",
        "as_datetime",
        "as_numeric",
        "boolean_value",
        "build_signature",
        "category_string",
        "datetime_parts",
        "infer_kind",
        "infer_kinds",
        "json_safe",
        "resolve_features",
    ],
    "monitoring": [
        "AlertRecord",
        "Binner",
        "DriftRow",
        "ErrorWindow",
        "LiveCounter",
        "LiveStats",
        "MonitoringReport",
        "Performance",
        "TrafficPoint",
        "VersionSummary",
        "Watcher",
        "activity_marker",
        "agreed_thresholds",
        "build_reference",
        "build_report",
        "check_alerts",
        "check_webhook",
        "ingest_outcomes",
        "list_alerts",
        "match_outcomes",
        "merge_live_stats",
        "monitor_model",
        "outcome_counts",
        "post_webhook",
        "window_start",
    ],
    "pipelines": [
        "TrainedRun",
        "apply_changes",
        "compare_runs",
        "config_diff",
        "join_tuning",
        "load",
        "profile_data",
        "profile_spec",
        "promote",
        "rank_spec_features",
        "rerun",
        "run_quickstart",
        "train",
        "version_test_scores",
    ],
    "predlog": [
        "COLUMNS",
        "PredictionLog",
        "Spool",
        "SpoolPosition",
        "count_predictions",
        "entry_rows",
        "entry_size",
        "insert_entries",
        "insert_predictions",
        "insert_scored",
        "line_rows",
        "prediction_entry",
        "read_predictions",
    ],
    "registry": [
        "AuditRecord",
        "CurveRecord",
        "Deployment",
        "ModelRef",
        "NAME_PATTERN",
        "Record",
        "Route",
        "RunRecord",
        "TrialRecord",
        "VersionRecord",
        "alias_map",
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
    ],
    "serving": [
        "Authenticator",
        "FastPathCheck",
        "GuardState",
        "LoadedVersion",
        "ModelPool",
        "TokenRecord",
        "check_fast_path",
        "create_app",
        "create_token",
        "list_tokens",
        "records_to_frame",
        "revoke_token",
        "run_server",
        "run_workers",
        "score_records",
        "verify_token",
    ],
    "spec": [
        "CATALOGUE",
        "CandidateSpec",
        "DataSpec",
        "DeployRoute",
        "DeploySpec",
        "Dimension",
        "DriftSpec",
        "EnsembleSpec",
        "FeatureKind",
        "FeaturesSpec",
        "GATE_METRICS",
        "Gate",
        "MonitorSpec",
        "NAME_PATTERN",
        "ProjectSpec",
        "SPEC_FILE",
        "SelectionSpec",
        "SplitSpec",
        "SqlSource",
        "ThresholdSpec",
        "TuningSpec",
        "load_spec",
        "parse_dimension",
        "parse_spec",
        "render_spec",
    ],
    "store": [
        "ArtifactStore",
        "LocalArtifacts",
        "MetadataStore",
        "Store",
        "hide_password",
        "json_dumps",
        "open_artifacts",
        "plain_json",
        "row_exists",
        "safe_join",
        "schema",
    ],
    "testing": ["run_gate_suite"],
    "training": [
        "CandidateResult",
        "DEFAULT_SPACES",
        "Ensemble",
        "Selection",
        "TuneTask",
        "candidate_names",
        "create_study",
        "describe_space",
        "ensemble_cross_validated",
        "ensemble_holdout",
        "feature_importance",
        "fit_cross_validated",
        "fit_early_stopped",
        "fit_holdout",
        "fit_selection",
        "fit_xgboost_on_spark",
        "learning_curve",
        "make_estimator",
        "pick_winner",
        "quiet_optuna",
        "rank_features",
        "run_worker",
        "search_space",
        "selection_score",
        "study_name",
        "study_storage",
        "trial_rows",
        "tuned_candidate",
        "tuning_folds",
        "with_selection",
    ],
}


@pytest.mark.parametrize("package", sorted(EXPORTS))
def test_each_package_exports_exactly_its_public_names(package: str) -> None:
    module = importlib.import_module(f"mlprod.{package}")
    assert sorted(module.__all__) == EXPORTS[package]
    for name in module.__all__:
        assert getattr(module, name) is not None, f"mlprod.{package}.{name} is missing"
