"""The project spec, ``mlprod.yaml``: models, loading with clear errors, the init template."""

from mlprod.spec._load import SPEC_FILE, load_spec, parse_spec
from mlprod.spec._models import (
    CATALOGUE,
    GATE_METRICS,
    CandidateSpec,
    DataSpec,
    DeployRoute,
    DeploySpec,
    DriftSpec,
    FeatureKind,
    FeaturesSpec,
    Gate,
    MonitorSpec,
    ProjectSpec,
    SplitSpec,
    SqlSource,
    ThresholdSpec,
    parse_duration,
)
from mlprod.spec._template import render_spec

__all__ = [
    "CATALOGUE",
    "GATE_METRICS",
    "SPEC_FILE",
    "CandidateSpec",
    "DataSpec",
    "DeployRoute",
    "DeploySpec",
    "DriftSpec",
    "FeatureKind",
    "FeaturesSpec",
    "Gate",
    "MonitorSpec",
    "ProjectSpec",
    "SplitSpec",
    "SqlSource",
    "ThresholdSpec",
    "load_spec",
    "parse_duration",
    "parse_spec",
    "render_spec",
]
