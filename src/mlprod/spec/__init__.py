"""The project spec, ``mlprod.yaml``: models, loading with clear errors, the init template."""

from mlprod.spec._load import SPEC_FILE, load_spec, parse_spec
from mlprod.spec._models import (
    CATALOGUE,
    GATE_METRICS,
    CandidateSpec,
    DataSpec,
    DeployRoute,
    DeploySpec,
    Dimension,
    EnsembleSpec,
    FeatureKind,
    FeaturesSpec,
    Gate,
    ProjectSpec,
    SelectionSpec,
    SplitSpec,
    SqlSource,
    ThresholdSpec,
    TuningSpec,
    parse_dimension,
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
    "Dimension",
    "EnsembleSpec",
    "FeatureKind",
    "FeaturesSpec",
    "Gate",
    "ProjectSpec",
    "SelectionSpec",
    "SplitSpec",
    "SqlSource",
    "ThresholdSpec",
    "TuningSpec",
    "load_spec",
    "parse_dimension",
    "parse_spec",
    "render_spec",
]
