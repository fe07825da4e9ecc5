"""The commented ``mlprod.yaml`` that ``mlprod init`` writes for a user's own table."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from mlprod.spec._interface import InterfaceSpec
from mlprod.spec._models import CATALOGUE, GATE_METRICS, FeatureKind


def render_spec(
    name: str,
    source: str,
    target: str,
    kinds: Mapping[str, FeatureKind],
    *,
    positive: object = None,
    time: str | None = None,
    entity: str | None = None,
    interface: InterfaceSpec | None = None,
) -> str:
    """A complete, commented spec with every feature column listed under its kind.

    With `interface` (a draft read off the data), the contract section is written too.

    Example::

        text = render_spec("churn", "customers.csv", "churned", {"tenure": "numeric"})
    """

    import yaml  # only `mlprod init` writes a spec: importing mlprod.spec stays free of YAML

    def scalar(value: object) -> str:
        return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()

    def listing(kind: str) -> str:
        columns = [column for column, k in kinds.items() if k == kind]
        if not columns:
            return f"  {kind}: []"
        return f"  {kind}:\n" + "\n".join(f"    - {scalar(column)}" for column in columns)

    split = (
        "time\n  gap: 0d             # time between training rows and the test window"
        if time
        else "stratified"
    )
    lines = [
        f"# mlprod project spec for {name}: edit, then run `mlprod train`.",
        f"name: {scalar(name)}",
        "",
        "data:",
        f"  source: {scalar(source)}   # CSV or Parquet path, or {{url: ..., query: ...}} for SQL",
        f"  target: {scalar(target)}",
        f"  positive: {scalar(positive)}   # the target value that counts as positive "
        "(null with more than two classes)",
        f"  time: {scalar(time)}       # event-time column, for time splits and fingerprints",
        f"  entity: {scalar(entity)}     # entity id column; never used as a feature",
        "",
        "# Inferred from the data; move a column to another kind, or to exclude, as needed.",
        "features:",
        listing("numeric"),
        listing("categorical"),
        listing("boolean"),
        listing("datetime"),
        "  exclude: []",
        "",
        "split:",
        f"  method: {split}   # stratified | time | cv",
        "  test_size: 0.2",
        "",
        f"# Catalogue: {', '.join(CATALOGUE)}",
        "candidates:",
        "  - logistic_regression",
        "  - lightgbm",
        "# Override a candidate's default search space when tuning:",
        "#  - {type: lightgbm, search: {num_leaves: [16, 256], learning_rate: [0.01, 0.3, log]}}",
        "",
        "# Tune every candidate with Optuna (cross-validated on training rows only):",
        "# tuning: {trials: 30, timeout: 600, sampler: tpe}   # tpe | random | grid",
        "# ensemble: {method: voting, top: 3}                # voting | stacking; kept if it wins",
        "# selection: {method: importance, k: 20}            # rfe | importance | pca | kernel_pca",
        "",
        "threshold:",
        "  policy: max_f1   # max_f1 | max_value | min_precision | min_recall (value: 0.8)",
        "",
        "# Business value of each outcome (any unit; costs negative): reported offline with",
        "# its interval and per live window; threshold.policy max_value maximises it.",
        "# value: {tp: 90, fp: -10, tn: 0, fn: 0, unit: EUR}",
        "# Refit the winner on training + validation rows once it is chosen:",
        "# training: {final_fit: train+validation}",
        "",
        f"# Acceptance criteria over {', '.join(GATE_METRICS)}.",
        "# Use {threshold: '>= 0.7', bound: lower} to require the lower end of the 95% interval.",
        "gates:",
        "  roc_auc: '>= 0.7'",
        "",
        "# How production is watched: drift by effect size, live metrics against the gates.",
        "# monitor:",
        "#   window: 1h",
        "#   drift: {psi: 0.1, null_rate: 0.1, unseen_rate: 0.05, min_count: 500}",
        "#   min_labels: 30        # labelled predictions before a window counts as realized",
        "#   error_rate: 0.05",
        "#   webhook: https://hooks.example.com/mlprod",
        "",
    ]
    if interface is not None:
        lines += _interface_lines(interface, scalar)
    return "\n".join(lines)


def _interface_lines(interface: InterfaceSpec, scalar: Callable[[object], str]) -> list[str]:
    """The ``interface:`` section, one field a line, in the order of the features."""
    lines = [
        "# The contract consumers build against: `mlprod interface` prints it as OpenAPI,",
        "# training refuses a model that differs, the server enforces it value by value.",
        "# Drafted from the data: widen ranges, drop `values` to accept new categories.",
        "interface:",
        f"  extra: {interface.extra}        # ignore | reject fields not named here",
        "  request:",
    ]
    for name, field in interface.request.items():
        bounds = {k: _whole(v) for k, v in field.model_dump(exclude_defaults=True).items()}
        lines.append(f"    {scalar(name)}: {_flow({'type': field.type, **bounds})}")
    label = interface.response.label
    if label is not None:
        lines += ["  response:", f"    label: {_flow({'values': list(label.values)})}"]
    return [*lines, ""]


def _flow(value: object) -> str:
    """A mapping on one line, keys in the order given."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1000)
    return text.strip().removesuffix("...").strip()


def _whole(value: object) -> object:
    """0 rather than 0.0 for a bound that is a whole number."""
    return int(value) if isinstance(value, float) and value.is_integer() else value
