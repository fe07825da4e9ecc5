"""The project spec, ``mlprod.yaml``, as pydantic models.

Every model forbids unknown keys, so a typo is an error that names the key and lists
the keys allowed there, instead of a setting silently ignored.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from mlprod._time import parse_duration
from mlprod.spec._aggregates import AggregatesSpec
from mlprod.spec._interface import InterfaceSpec
from mlprod.spec._schedule import RetrainSpec, ScheduleSpec

if TYPE_CHECKING:
    import pandas as pd

CATALOGUE = (
    "logistic_regression",
    "random_forest",
    "hist_gbm",
    "lightgbm",
    "xgboost",
    "svm",
    "mlp",
)
CandidateType = Literal[
    "logistic_regression", "random_forest", "hist_gbm", "lightgbm", "xgboost", "svm", "mlp"
]
GATE_METRICS = (
    "roc_auc",
    "average_precision",
    "precision",
    "recall",
    "f1",
    "log_loss",
    "brier",
)
# Multiclass targets: macro one-vs-rest roc_auc, log_loss, accuracy, macro_f1 and
# weighted_f1, and per class ``precision[CLASS]`` / ``recall[CLASS]``.
MULTICLASS_GATE_METRICS = ("roc_auc", "log_loss", "accuracy", "macro_f1", "weighted_f1")
PER_CLASS_GATE_METRICS = ("precision", "recall")
GateMetric = str  # a name of GATE_METRICS or MULTICLASS_GATE_METRICS, or ``recall[CLASS]``
_PER_CLASS_RE = re.compile(r"^(precision|recall)\[(.+)\]$")
FeatureKind = Literal["numeric", "categorical", "boolean", "datetime"]
NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
_GATE_RE = re.compile(r"^\s*(>=|<=|>|<)\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class SqlSource(_Strict):
    """A SQL query run through SQLAlchemy, e.g. ``{url: sqlite:///shop.db, query: ...}``."""

    url: str
    query: str


class DataSpec(_Strict):
    """Where the rows come from and which column is the label."""

    source: str | SqlSource = Field(description="CSV or Parquet path, or {url, query}.")
    target: str
    positive: str | int | float | bool | None = Field(
        default=None,
        description="The target value that counts as positive (two-valued targets only; "
        "a target with three or more values is multiclass and has none).",
    )
    time: str | None = Field(default=None, description="Event-time column.")
    entity: str | None = Field(default=None, description="Entity id column (never a feature).")
    since: AwareDatetime | None = Field(
        default=None, description="Only rows with time >= this (retraining sets it)."
    )
    until: AwareDatetime | None = Field(
        default=None, description="Only rows with time < this (retraining sets it)."
    )

    @model_validator(mode="after")
    def _window_needs_time(self) -> DataSpec:
        if (self.since or self.until) and not self.time:
            raise ValueError("data.since and data.until need data.time, the event-time column")
        if self.since and self.until and self.since >= self.until:
            raise ValueError(f"data.since {self.since} is not before data.until {self.until}")
        return self


class FeaturesSpec(_Strict):
    """Feature columns by kind; lists left empty are inferred from the data."""

    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    boolean: list[str] = Field(default_factory=list)
    datetime: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    aggregates: AggregatesSpec | None = Field(
        default=None, description="Aggregates over event tables and as-of joins."
    )

    def declared(self) -> dict[str, FeatureKind]:
        """Columns the user typed explicitly, mapped to their kind."""
        kinds: dict[str, FeatureKind] = {}
        for kind in ("numeric", "categorical", "boolean", "datetime"):
            for column in getattr(self, kind):
                kinds[column] = kind
        return kinds

    @model_validator(mode="after")
    def _no_column_twice(self) -> FeaturesSpec:
        seen: dict[str, str] = {}
        for kind in ("numeric", "categorical", "boolean", "datetime", "exclude"):
            for column in getattr(self, kind):
                if column in seen:
                    raise ValueError(
                        f"column {column!r} is listed under both {seen[column]!r} and "
                        f"{kind!r}; keep it in one list"
                    )
                seen[column] = kind
        return self


class SplitSpec(_Strict):
    """How rows are held out: the test set is never seen by selection or thresholds."""

    method: Literal["stratified", "time", "cv"] = "stratified"
    test_size: float = Field(default=0.2, gt=0, lt=1)
    validation_size: float = Field(default=0.2, gt=0, lt=1)
    gap: str | None = Field(
        default=None, description="Time between the last training row and the test window."
    )
    folds: int = Field(default=5, ge=2, le=20)

    @field_validator("gap")
    @classmethod
    def _gap_is_duration(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parse_duration(value)
        return value

    def gap_delta(self) -> pd.Timedelta:
        """The gap as a Timedelta (zero when unset)."""
        import pandas as pd  # only splits need it; reading a spec must not load pandas

        return pd.Timedelta(parse_duration(self.gap)) if self.gap else pd.Timedelta(0)


class CandidateSpec(_Strict):
    """One algorithm from the catalogue, with optional fixed params and a search space.

    ``search`` overrides the algorithm's default search space when tuning: ``[16, 256]``
    is an integer range, ``[0.01, 0.3, log]`` a log-scale float range, ``{choices: [...]}``
    (or a list of three or more values, or of words) a categorical choice.
    """

    type: CandidateType
    params: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, Any] = Field(default_factory=dict)

    @field_validator("search")
    @classmethod
    def _search_is_valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, raw in value.items():
            parse_dimension(name, raw)
        return value


class Dimension(BaseModel):
    """One hyperparameter's search range: ``int``/``float`` between bounds, or choices."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["int", "float", "choice"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()


def parse_dimension(name: str, raw: Any) -> Dimension:
    """Read one entry of ``search:``; a ValueError names the parameter and the forms allowed."""
    forms = (
        f"search.{name} must be [low, high], [low, high, log], {{choices: [a, b, ...]}} "
        f"or a list of three or more values, got {raw!r}"
    )
    if isinstance(raw, dict):
        if set(raw) != {"choices"} or not isinstance(raw["choices"], list) or not raw["choices"]:
            raise ValueError(forms)
        return Dimension(kind="choice", choices=tuple(raw["choices"]))
    if not isinstance(raw, list) or len(raw) < 2:
        raise ValueError(forms)
    numbers = [v for v in raw[:2] if isinstance(v, int | float) and not isinstance(v, bool)]
    ranged = len(numbers) == 2 and (len(raw) == 2 or (len(raw) == 3 and raw[2] == "log"))
    if not ranged:
        words = all(isinstance(v, str | bool) for v in raw)
        if (len(raw) >= 3 or words) and "log" not in raw:
            return Dimension(kind="choice", choices=tuple(raw))
        raise ValueError(forms)
    low, high = float(numbers[0]), float(numbers[1])
    log = len(raw) == 3
    if not low < high:
        raise ValueError(f"search.{name}: low must be below high, got [{raw[0]}, {raw[1]}]")
    if log and low <= 0:
        raise ValueError(f"search.{name}: a log range needs low > 0, got {raw[0]}")
    kind: Literal["int", "float"] = "int" if all(isinstance(v, int) for v in numbers) else "float"
    return Dimension(kind=kind, low=low, high=high, log=log)


class TuningSpec(_Strict):
    """Hyperparameter search with Optuna; `trials` and `timeout` apply to each candidate.

    Trials are scored by cross-validation over the training rows only (the test set is
    never seen); boosters stop early on a slice carved from each fold's training rows.
    """

    trials: int = Field(default=20, ge=1, le=10_000)
    timeout: float | None = Field(default=None, gt=0, description="Seconds per candidate.")
    metric: Literal["roc_auc", "average_precision", "log_loss", "macro_f1"] | None = Field(
        default=None,
        description="What trials optimise; default: selection_metric (log_loss for a "
        "multiclass target).",
    )
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    folds: int = Field(default=3, ge=2, le=10, description="CV folds over the training rows.")
    pruning: bool = True
    early_stopping_rounds: int = Field(default=30, ge=1, le=1000)


class EnsembleSpec(_Strict):
    """Soft voting or stacking of the `top` best candidates; kept only if it wins."""

    method: Literal["voting", "stacking"] = "voting"
    top: int = Field(default=3, ge=2, le=10)


class SelectionSpec(_Strict):
    """A feature selection step fitted on training rows that travels with the model."""

    method: Literal["rfe", "importance", "pca", "kernel_pca"]
    k: int = Field(ge=1, le=10_000, description="Columns (or components) kept.")


class ThresholdSpec(_Strict):
    """How the decision threshold is chosen, always on validation data.

    ``max_value`` picks the threshold with the most business value under the spec's
    ``value:`` matrix (and needs it).
    """

    policy: Literal["max_f1", "min_precision", "min_recall", "max_value"] = "max_f1"
    value: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _value_when_needed(self) -> ThresholdSpec:
        if self.policy in ("min_precision", "min_recall") and self.value is None:
            raise ValueError(f"policy {self.policy!r} needs a value, e.g. value: 0.8")
        return self


class ValueSpec(_Strict):
    """What one decision is worth, by outcome: ``value = tp*TP + fp*FP + tn*TN + fn*FN``.

    In any unit (money, minutes saved); costs are negative. E.g. a retention offer that
    keeps a churner worth 100 and costs 10: ``{tp: 90, fp: -10, tn: 0, fn: 0}``.
    """

    tp: float = 0.0
    fp: float = 0.0
    tn: float = 0.0
    fn: float = 0.0
    unit: str = Field(default="", description="Shown beside the value, e.g. EUR.")

    def matrix(self) -> dict[str, float]:
        """The four cells by outcome name."""
        return {"tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn}

    @model_validator(mode="after")
    def _something_is_worth_something(self) -> ValueSpec:
        if not any(self.matrix().values()):
            raise ValueError("value: every cell is 0; give tp, fp, tn or fn a worth")
        return self


class TrainingSpec(_Strict):
    """Where candidates are fitted: here, or XGBoost candidates on a Spark cluster.

    With ``engine: spark`` each ``xgboost`` candidate is fitted by XGBoost's Spark
    estimator (`workers` tasks on `master`); the result is an ordinary XGBoost model in
    the bundle. Other candidates still fit locally.
    """

    engine: Literal["local", "spark"] = "local"
    master: str | None = Field(default=None, description="Spark master URL (default local[*]).")
    workers: int = Field(default=2, ge=1, le=1024, description="Spark tasks fitting XGBoost.")
    final_fit: Literal["train", "train+validation"] = Field(
        default="train",
        description="train+validation: after selection and threshold, refit the winner on "
        "every non-test row (the report shows the test metrics before and after).",
    )


class Gate(_Strict):
    """An acceptance criterion: ``op value`` on the point estimate or an interval end."""

    op: Literal[">=", "<=", ">", "<"]
    value: float
    bound: Literal["point", "lower", "upper"] = "point"

    def describe(self, metric: str) -> str:
        """E.g. ``roc_auc >= 0.8 (lower 95% bound)``."""
        where = "" if self.bound == "point" else f" ({self.bound} 95% bound)"
        return f"{metric} {self.op} {self.value:g}{where}"


def _parse_gate(raw: Any) -> Any:
    """Accept ``">= 0.8"`` or ``{threshold: ">= 0.8", bound: lower}``."""
    if isinstance(raw, Gate):
        return raw
    if isinstance(raw, dict) and "op" in raw:  # a resolved spec read back from a run
        return raw
    if isinstance(raw, str):
        raw = {"threshold": raw}
    if isinstance(raw, dict) and {"op", "value"} <= set(raw):  # a resolved spec, read back
        return raw
    if not isinstance(raw, dict):
        raise ValueError(
            f"a gate is a string like '>= 0.8' or a mapping "
            f"{{threshold: '>= 0.8', bound: lower}}, got {raw!r}"
        )
    unknown = set(raw) - {"threshold", "bound"}
    if unknown:
        raise ValueError(f"unknown gate key(s) {sorted(unknown)}; allowed: threshold, bound")
    threshold = raw.get("threshold")
    match = _GATE_RE.match(str(threshold)) if threshold is not None else None
    if match is None:
        raise ValueError(
            f"a gate threshold looks like '>= 0.8' (one of >=, <=, >, < and a number), "
            f"got {threshold!r}"
        )
    return {
        "op": match.group(1),
        "value": float(match.group(2)),
        "bound": raw.get("bound", "point"),
    }


GateField = Annotated[Gate, Field()]


def _parse_gates(value: Any) -> Any:
    """A ``gates:`` mapping with each name checked and each criterion parsed."""
    if isinstance(value, dict):
        return {_gate_name(metric): _parse_gate(raw) for metric, raw in value.items()}
    return value


def _gate_name(name: Any) -> str:
    """A known metric or ``precision[CLASS]`` / ``recall[CLASS]``; classes are checked later.

    Whether a class exists (and whether the target is binary or multiclass) is only known
    once the data is read, so `check_gates` names the classes there are.
    """
    text = str(name)
    if text in GATE_METRICS or text in MULTICLASS_GATE_METRICS or _PER_CLASS_RE.match(text):
        return text
    known = sorted({*GATE_METRICS, *MULTICLASS_GATE_METRICS})
    raise ValueError(
        f"gates.{text} is not a metric; gates can use {', '.join(known)}, or per class of a "
        "multiclass target precision[CLASS] and recall[CLASS], e.g. 'recall[fraud]'"
    )


class DeployRoute(_Strict):
    """A version and its share of traffic."""

    version: int = Field(ge=1)
    weight: float = Field(gt=0)


class DeploySpec(_Strict):
    """How the model takes traffic; applied by ``mlprod deploy NAME``."""

    routes: list[DeployRoute] = Field(default_factory=list)
    shadows: list[int] = Field(default_factory=list)
    log_sample_rate: float = Field(
        default=1.0, ge=0, le=1, description="Share of predictions logged."
    )


class DriftSpec(_Strict):
    """When a feature counts as drifted in a window: by the size of the change, not p-values."""

    psi: float = Field(
        default=0.1, gt=0, description="Population stability index above this (0.1: investigate)."
    )
    null_rate: float = Field(
        default=0.1, gt=0, le=1, description="Rise of the missing-value share above this."
    )
    unseen_rate: float = Field(
        default=0.05, gt=0, le=1, description="Share of categories never seen in training."
    )
    min_count: int = Field(default=500, ge=1, description="Windows with fewer are not judged.")


class MonitorSpec(_Strict):
    """How live traffic is judged; performance alerts use the gates' thresholds."""

    window: str = Field(default="1h", description="Report window, e.g. 15min, 1h, 1d.")
    drift: DriftSpec = Field(default_factory=DriftSpec)
    min_labels: int = Field(
        default=30, ge=1, description="Labelled predictions before a window is realized."
    )
    error_rate: float = Field(default=0.05, gt=0, le=1, description="Failed requests' share.")
    webhook: str | None = Field(default=None, description="URL that receives alerts as JSON.")

    @field_validator("window")
    @classmethod
    def _window_is_duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("webhook")
    @classmethod
    def _webhook_is_http(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"webhook must be an http(s) URL, got {value!r}")
        return value


class ProjectSpec(_Strict):
    """Everything mlprod needs to know about one model, read from ``mlprod.yaml``.

    Example::

        spec = ProjectSpec.model_validate({"name": "churn",
                                           "data": {"source": "customers.csv",
                                                    "target": "churned"}})
    """

    name: str = Field(pattern=NAME_PATTERN, description="Model name: lower case, digits, - and _.")
    description: str = ""
    data: DataSpec
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    candidates: list[CandidateSpec] = Field(
        default_factory=lambda: [
            CandidateSpec(type="logistic_regression"),
            CandidateSpec(type="lightgbm"),
        ],
        min_length=1,
    )
    selection_metric: Literal["roc_auc", "average_precision", "log_loss", "macro_f1"] = Field(
        default="roc_auc",
        description="Validation metric that picks the winner; multiclass: roc_auc (macro "
        "one-vs-rest), log_loss or macro_f1.",
    )
    threshold: ThresholdSpec = Field(default_factory=ThresholdSpec)
    value: ValueSpec | None = Field(
        default=None, description="Worth of tp, fp, tn, fn: business value offline and live."
    )
    gates: dict[GateMetric, Gate] = Field(default_factory=dict)
    deploy: DeploySpec = Field(default_factory=DeploySpec)
    monitor: MonitorSpec = Field(default_factory=MonitorSpec)
    tuning: TuningSpec | None = None
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    ensemble: EnsembleSpec | None = None
    selection: SelectionSpec | None = None
    schedule: ScheduleSpec | None = None
    retrain: RetrainSpec = Field(default_factory=RetrainSpec)
    interface: InterfaceSpec | None = Field(
        default=None, description="The request and response contract every version keeps."
    )
    seed: int = 42

    @field_validator("candidates", mode="before")
    @classmethod
    def _candidate_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"type": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("gates", mode="before")
    @classmethod
    def _gate_strings(cls, value: Any) -> Any:
        return _parse_gates(value)

    @model_validator(mode="after")
    def _time_split_needs_time(self) -> ProjectSpec:
        if self.split.method == "time" and not self.data.time:
            raise ValueError("split.method 'time' needs data.time, the column with event times")
        if self.split.gap and self.split.method != "time":
            raise ValueError("split.gap only applies to split.method 'time'")
        aggregates = self.features.aggregates
        if aggregates is not None:
            if not self.data.time:
                raise ValueError(
                    "features.aggregates needs data.time: each row's time is its cutoff"
                )
            if not (aggregates.entity or self.data.entity):
                raise ValueError(
                    "features.aggregates needs a key: set data.entity or aggregates.entity"
                )
        if self.interface is not None and self.data.target in self.interface.request:
            raise ValueError(
                f"interface.request.{self.data.target} is the target column: a request never "
                "carries it; remove it there (the response's label stands for it)"
            )
        if self.threshold.policy == "max_value" and self.value is None:
            raise ValueError(
                "threshold.policy max_value needs a value: matrix, e.g. "
                "value: {tp: 90, fp: -10, tn: 0, fn: 0}"
            )
        if self.retrain.window and not self.data.time:
            raise ValueError("retrain.window needs data.time, the column with event times")
        jobs = self.schedule.jobs if self.schedule else {}
        if "materialize" in jobs and self.features.aggregates is None:
            raise ValueError(
                "schedule.jobs.materialize: this model has no online features to materialize; "
                "declare features.aggregates or remove the job"
            )
        return self

    def aggregate_key(self) -> str | None:
        """The row column holding the entity key of `features.aggregates`, if any."""
        aggregates = self.features.aggregates
        if aggregates is None:
            return None
        return aggregates.entity or self.data.entity

    def resolved(self) -> dict[str, Any]:
        """The spec as plain JSON-able data, defaults included (what a run records)."""
        return self.model_dump(mode="json")


class AgreedThresholds(_Strict):
    """What production is held to: the `monitor:` section and the gates of a recorded spec.

    Monitoring reads only these two sections of the spec recorded with a version, so it
    validates only them. Building the validators of the whole spec (about 50 models, each
    built on first use) would cost `mlprod monitor` more than its report does.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    monitor: MonitorSpec = Field(default_factory=MonitorSpec)
    gates: dict[GateMetric, Gate] = Field(default_factory=dict)

    @field_validator("gates", mode="before")
    @classmethod
    def _gate_strings(cls, value: Any) -> Any:
        return _parse_gates(value)
