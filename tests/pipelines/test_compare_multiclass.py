"""`mlprod runs compare` on multiclass runs: macro and per-class figures side by side.

Every figure is checked against scikit-learn on the versions' own test rows; a run
trained on shuffled labels must come out worse; a binary run beside a multiclass one
gets no metric rows but a note saying why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

import mlprod
from mlprod.evaluation import MULTICLASS_METRIC_NAMES
from mlprod.pipelines import TrainedRun, compare_runs, comparison_charts, train, version_test_scores
from mlprod.registry import get_run
from mlprod.settings import Settings
from mlprod.store import Store, open_artifacts
from support import Project, run_cli
from tiers_kit import CLASSES, SPEC, make_tiers, write_tiers

LOGISTIC = SPEC.replace("[logistic_regression, lightgbm]", "[logistic_regression]")
GOLD = """\
name: gold
data: {source: gold.csv, target: is_gold, positive: true}
features: {numeric: [spend, visits, tenure], categorical: [region]}
split: {method: stratified, test_size: 0.25}
candidates: [logistic_regression]
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, TrainedRun]]:
    """Three tiers runs (both candidates, logistic only, shuffled labels) and a binary one."""
    root = tmp_path_factory.mktemp("compare")
    store = str(root / ".mlprod")
    path = write_tiers(root)
    found = {"both": train(path, store=store)}
    path.write_text(LOGISTIC, encoding="utf-8")
    found["logistic"] = train(path, store=store)
    shuffled = root / "shuffled"
    write_tiers(shuffled, LOGISTIC)
    frame = make_tiers(1500)
    frame["tier"] = np.random.default_rng(5).permutation(frame["tier"].to_numpy())
    frame.to_csv(shuffled / "customers.csv", index=False)
    found["shuffled"] = train(shuffled / "mlprod.yaml", store=store)
    gold = root / "gold"
    gold.mkdir()
    frame = make_tiers(1500).assign(is_gold=lambda f: f["tier"] == "gold").drop(columns="tier")
    frame.to_csv(gold / "gold.csv", index=False)
    (gold / "mlprod.yaml").write_text(GOLD, encoding="utf-8")
    found["binary"] = train(gold / "mlprod.yaml", store=store)
    return root, found


def _sklearn_figures(root: Path, run: TrainedRun) -> dict[str, float]:
    model = mlprod.load(f"tiers@{run.version}", store=str(root / ".mlprod"))
    X, y = model.test_data()
    proba = model.predict_proba(X)
    predicted = np.argmax(proba, axis=1)
    figures = {
        "accuracy": accuracy_score(y, predicted),
        "macro_f1": f1_score(y, predicted, average="macro"),
        "weighted_f1": f1_score(y, predicted, average="weighted"),
        "roc_auc": roc_auc_score(y, proba, multi_class="ovr", average="macro"),
        "log_loss": log_loss(y, proba),
    }
    precision = precision_score(y, predicted, average=None, zero_division=0)
    recall = recall_score(y, predicted, average=None, zero_division=0)
    for i, label in enumerate(CLASSES):
        figures[f"precision[{label}]"] = precision[i]
        figures[f"recall[{label}]"] = recall[i]
    return {name: float(value) for name, value in figures.items()}


def test_multiclass_runs_compare_macro_and_per_class_figures_against_sklearn(
    runs: tuple[Path, dict[str, TrainedRun]], tmp_path: Path
) -> None:
    root, found = runs
    a, b = found["both"], found["logistic"]
    result = compare_runs(a.id, b.id, store=str(root / ".mlprod"), output=tmp_path / "c.html")
    rows = {row["metric"]: row for row in result["metrics"]}
    per_class = [f"{m}[{c}]" for c in CLASSES for m in ("precision", "recall")]
    assert [row["metric"] for row in result["metrics"]] == [*MULTICLASS_METRIC_NAMES, *per_class]
    expected_a, expected_b = _sklearn_figures(root, a), _sklearn_figures(root, b)
    for name, row in rows.items():
        assert row["a"] == pytest.approx(expected_a[name], abs=1e-9), name
        assert row["b"] == pytest.approx(expected_b[name], abs=1e-9), name
        assert row["a"] == pytest.approx(a.metrics[name].value, abs=1e-12), name
        assert row["delta"] == pytest.approx(expected_b[name] - expected_a[name], abs=1e-9)
        assert row["paired"] is True  # same data, same stratified split: the same test rows
        assert row["low"] <= row["high"]
    assert "note" not in result
    changed = {change["key"]: change for change in result["config"]}
    assert len(changed["spec.candidates"]["a"]) == 2 and len(changed["spec.candidates"]["b"]) == 1
    html = Path(result["report"]).read_text(encoding="utf-8")
    assert 'id="chart-confusion_overlay"' in html and 'id="chart-roc_overlay"' in html
    assert "gold vs rest" in html and f"a: {a.id[:8]}" in html and f"b: {b.id[:8]}" in html


def test_a_run_on_shuffled_labels_loses_on_every_macro_figure(
    runs: tuple[Path, dict[str, TrainedRun]],
) -> None:
    root, found = runs
    result = compare_runs(found["both"].id, found["shuffled"].id, store=str(root / ".mlprod"))
    rows = {row["metric"]: row for row in result["metrics"]}
    assert all(row["paired"] is False for row in rows.values())  # other labels, other split
    for name in ("accuracy", "macro_f1", "weighted_f1", "roc_auc"):
        assert rows[name]["better"] == "a" and rows[name]["high"] < 0, name
    assert rows["log_loss"]["better"] == "a" and rows["log_loss"]["low"] > 0  # b's is higher
    assert rows["roc_auc"]["b"] == pytest.approx(0.5, abs=0.06)  # no better than chance


def test_the_charts_hold_each_runs_confusion_counts(
    runs: tuple[Path, dict[str, TrainedRun]],
) -> None:
    root, found = runs
    with Store.open(f"sqlite:///{root}/.mlprod/mlprod.db") as store:
        artifacts = open_artifacts(Settings(store=str(root / ".mlprod")))
        scored = {
            key: version_test_scores(get_run(store, found[key].id), store, artifacts)
            for key in ("both", "shuffled")
        }
    drawn = {key: s for key, s in scored.items() if s is not None}
    assert all(s.multiclass and s.classes == CLASSES for s in drawn.values())
    charts = comparison_charts(drawn)
    assert sorted(charts) == ["confusion_overlay", "roc_overlay"]
    heatmaps = charts["confusion_overlay"].data
    for heatmap, s in zip(heatmaps, drawn.values(), strict=True):
        counts = confusion_matrix(s.y, np.argmax(s.scores, axis=1), labels=range(3))
        assert [list(row) for row in heatmap.text] == [[f"{c:,}" for c in row] for row in counts]
        shares = counts / counts.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(np.array(heatmap.z), shares)
    legend = [t.name for t in charts["roc_overlay"].data if t.showlegend]
    macro = [roc_auc_score(s.y, s.scores, multi_class="ovr") for s in drawn.values()]
    assert legend == [f"{key} (macro AUC {auc:.3f})" for key, auc in zip(drawn, macro, strict=True)]
    assert len(charts["roc_overlay"].data) == 2 * len(CLASSES)  # each run's curve per class


def test_a_binary_run_beside_a_multiclass_one_gets_a_note_not_figures(
    runs: tuple[Path, dict[str, TrainedRun]], tmp_path: Path
) -> None:
    root, found = runs
    result = compare_runs(
        found["both"].id,
        found["binary"].id,
        store=str(root / ".mlprod"),
        output=tmp_path / "m.html",
    )
    assert result["metrics"] == []
    assert result["note"] == "a binary run and a multiclass run have no test metric in common"
    html = Path(result["report"]).read_text(encoding="utf-8")
    assert "no test metric in common" in html and 'id="chart-roc_overlay"' not in html


def test_runs_compare_prints_every_class_from_the_cli(
    runs: tuple[Path, dict[str, TrainedRun]],
) -> None:
    root, found = runs
    a, b = found["both"], found["logistic"]
    done = run_cli(Project(root), "runs", "compare", a.id, b.id, "--output", "cmp.html")
    lines = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if "│" in line}
    for label in CLASSES:
        row = lines[f"recall[{label}]"]
        assert f"{a.metrics[f'recall[{label}]'].value:.4f}" in row
    assert f"{a.metrics['macro_f1'].value:.4f}" in lines["macro_f1"]
    assert (root / "cmp.html").is_file()
    mixed = run_cli(Project(root), "runs", "compare", a.id, found["binary"].id)
    assert "no metric deltas: a binary run and a multiclass run" in mixed.stdout
