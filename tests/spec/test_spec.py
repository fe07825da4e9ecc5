"""The spec: valid files load with defaults; mistakes name the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlprod.errors import SpecError
from mlprod.spec import Gate, load_spec, parse_spec, render_spec

BASE = {"name": "churn", "data": {"source": "x.csv", "target": "y"}}


def test_minimal_spec_gets_defaults() -> None:
    spec = parse_spec(BASE)
    assert spec.split.method == "stratified"
    assert [c.type for c in spec.candidates] == ["logistic_regression", "lightgbm"]
    assert spec.threshold.policy == "max_f1"
    assert spec.gates == {}


def test_gates_in_string_and_mapping_form() -> None:
    spec = parse_spec(
        {**BASE, "gates": {"roc_auc": ">= 0.8", "recall": {"threshold": "> 0.5", "bound": "lower"}}}
    )
    assert spec.gates["roc_auc"] == Gate(op=">=", value=0.8, bound="point")
    assert spec.gates["recall"] == Gate(op=">", value=0.5, bound="lower")
    assert spec.gates["recall"].describe("recall") == "recall > 0.5 (lower 95% bound)"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({**BASE, "candidats": []}, ["candidats: unknown key", "candidates", "gates"]),
        (
            {**BASE, "data": {"source": "x.csv", "target": "y", "tim": "t"}},
            ["data.tim: unknown key", "time", "entity"],
        ),
        (
            {**BASE, "split": {"method": "random"}},
            ["split.method", "'stratified', 'time' or 'cv'", "random"],
        ),
        ({**BASE, "candidates": ["knn"]}, ["candidates.0.type", "lightgbm", "'knn'"]),
        ({**BASE, "gates": {"auc": ">= 0.8"}}, ["gates.auc", "roc_auc", "brier"]),
        ({**BASE, "gates": {"roc_auc": "high"}}, ["gates", "'>= 0.8'", "'high'"]),
        ({**BASE, "split": {"method": "time"}}, ["needs data.time"]),
        (
            {
                **BASE,
                "data": {"source": "x.csv", "time": "t", "target": "y"},
                "split": {"method": "time", "gap": "two weeks"},
            },
            ["split.gap", "'14d'"],
        ),
        ({**BASE, "threshold": {"policy": "min_recall"}}, ["min_recall", "needs a value"]),
        ({**BASE, "name": "Churn Model"}, ["name", "pattern"]),
        ({"name": "churn"}, ["data: required key is missing"]),
        (
            {**BASE, "features": {"numeric": ["a"], "categorical": ["a"]}},
            ["'a'", "'numeric'", "'categorical'"],
        ),
    ],
)
def test_mistakes_name_the_key_and_the_fix(raw: dict[str, object], expected: list[str]) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    for fragment in expected:
        assert fragment in str(caught.value)


def test_load_spec_resolves_source_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "mlprod.yaml").write_text("name: churn\ndata: {source: data/x.csv, target: y}\n")
    spec = load_spec(tmp_path / "mlprod.yaml")
    assert spec.data.source == str((tmp_path / "data" / "x.csv").resolve())
    assert load_spec(tmp_path).name == "churn"


def test_load_spec_errors_are_actionable(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="mlprod init"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("name: churn\ndata: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML at line"):
        load_spec(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="must hold a mapping"):
        load_spec(tmp_path / "list.yaml")


def test_sqlite_source_is_relative_to_the_spec(tmp_path: Path) -> None:
    raw = {
        "name": "churn",
        "data": {"source": {"url": "sqlite:///shop.db", "query": "select 1"}, "target": "y"},
    }
    spec = parse_spec(raw, base_dir=tmp_path)
    assert spec.data.source.url == f"sqlite:///{(tmp_path / 'shop.db').resolve()}"  # type: ignore[union-attr]


def test_rendered_template_is_a_valid_spec(tmp_path: Path) -> None:
    text = render_spec(
        "churn",
        "customers.csv",
        "churned",
        {"tenure": "numeric", "plan": "categorical", "partner": "boolean", "signup": "datetime"},
        time="event_time",
    )
    assert "# " in text  # commented for the reader
    (tmp_path / "mlprod.yaml").write_text(text)
    spec = load_spec(tmp_path / "mlprod.yaml")
    assert spec.features.numeric == ["tenure"]
    assert spec.features.categorical == ["plan"]
    assert spec.features.datetime == ["signup"]
    assert spec.split.method == "time"
    assert spec.gates["roc_auc"].value == 0.7
    uncommented = text.replace("# monitor:", "monitor:").replace("#   ", "  ")
    (tmp_path / "mlprod.yaml").write_text(uncommented)
    monitored = load_spec(tmp_path / "mlprod.yaml")  # the commented example is valid too
    assert monitored.monitor.drift.psi == 0.1 and monitored.monitor.webhook is not None


def test_a_resolved_spec_validates_again_to_the_same_spec() -> None:
    """Runs record `resolved()`; monitoring and re-runs read it back as a spec."""
    from mlprod.spec import ProjectSpec

    spec = ProjectSpec.model_validate(
        {
            "name": "churn",
            "data": {"source": "customers.csv", "target": "churned"},
            "gates": {"roc_auc": ">= 0.8", "recall": {"threshold": "> 0.5", "bound": "lower"}},
            "monitor": {"window": "15min", "drift": {"psi": 0.3}},
        }
    )
    again = ProjectSpec.model_validate(spec.resolved())
    assert again == spec
    assert again.gates["recall"].bound == "lower" and again.monitor.drift.psi == 0.3


def test_monitoring_reads_its_thresholds_alone_from_a_recorded_spec() -> None:
    """`AgreedThresholds` takes `monitor:` and the gates as ProjectSpec reads them."""
    from pydantic import ValidationError

    from mlprod.spec import AgreedThresholds, ProjectSpec

    spec = ProjectSpec.model_validate(
        {
            "name": "churn",
            "data": {"source": "customers.csv", "target": "churned"},
            "gates": {
                "roc_auc": ">= 0.8",
                "recall[gold]": {"threshold": "> 0.5", "bound": "lower"},
            },
            "monitor": {"window": "15min", "drift": {"psi": 0.3}, "min_labels": 50},
        }
    ).resolved()
    agreed = AgreedThresholds.model_validate(spec)
    full = ProjectSpec.model_validate(spec)
    assert agreed.monitor == full.monitor and agreed.monitor.drift.psi == 0.3
    assert agreed.gates == full.gates
    assert agreed.gates["recall[gold]"] == Gate(op=">", value=0.5, bound="lower")
    # A section another mlprod version wrote differently does not hide the thresholds.
    changed = {**spec, "training": {"engine": "quantum"}, "unheard_of": 1}
    with pytest.raises(ValidationError):
        ProjectSpec.model_validate(changed)
    assert AgreedThresholds.model_validate(changed).gates == full.gates
    # Its own sections are checked as strictly as in a spec.
    with pytest.raises(ValidationError, match=r"gates\.precison is not a metric"):
        AgreedThresholds.model_validate({"gates": {"precison": ">= 0.5"}})
    with pytest.raises(ValidationError, match=r"drift\.psi"):
        AgreedThresholds.model_validate({"monitor": {"drift": {"psi": -1}}})
    assert AgreedThresholds.model_validate({}).monitor == ProjectSpec.model_fields[
        "monitor"
    ].get_default(call_default_factory=True)


def test_threads_validating_specs_first_hand_all_succeed() -> None:
    """Spec models build their validators on first use; the watcher, the dashboard and the
    loader thread may all be first at once. A fresh process, so nothing is built yet."""
    import subprocess
    import sys

    code = """
import sys, threading
sys.setswitchinterval(1e-6)  # interleave the threads as tightly as the interpreter can
from mlprod.spec import AgreedThresholds, ProjectSpec
spec = {"name": "churn", "data": {"source": "c.csv", "target": "y"},
        "gates": {"roc_auc": ">= 0.8"}, "monitor": {"drift": {"psi": 0.3}}}
errors, start = [], threading.Barrier(16)
def validate(i):
    start.wait()
    try:
        model = (AgreedThresholds, ProjectSpec)[i % 2].model_validate(spec)
        assert model.monitor.drift.psi == 0.3 and model.gates["roc_auc"].value == 0.8
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=validate, args=(i,)) for i in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print(len(errors), errors[:1])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("0 "), done.stdout
