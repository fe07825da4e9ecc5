"""The champion/challenger decision between multiclass versions.

The tiers table gets a time column and a time split, so a version's test rows are the
newest quarter. Shuffling the tiers of the oldest 70% of rows spoils what a version learns
without touching the rows both versions are judged on: a version fitted on that history
must lose to one fitted on the real tiers, whichever of the two is the champion. The
decision's figures are scikit-learn's on the same rows with both versions' probabilities.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, log_loss, roc_auc_score

import mlprod
from mlprod._time import ManualClock, utc_now
from mlprod.errors import DataError, NotSupportedError, SpecError
from mlprod.pipelines import promote, train
from mlprod.registry import alias_map, get_deployment, list_versions
from mlprod.scheduling import (
    Decision,
    LoopContext,
    active_canary,
    list_decisions,
    paired_comparison,
    retrain,
)
from mlprod.settings import Settings
from mlprod.spec import load_spec
from mlprod.store import Store, open_artifacts
from tiers_kit import CLASSES, SPEC, make_tiers

ROWS = 2000
TIMED = SPEC.replace("  target: tier\n", "  target: tier\n  time: joined\n").replace(
    "split: {method: stratified, test_size: 0.25}", "split: {method: time, test_size: 0.25}"
)


def write_data(root: Path, *, shuffled_history: bool, platinum: bool = False) -> None:
    """The tiers table over time; optionally the oldest 70% of tiers shuffled."""
    frame = make_tiers(ROWS)
    frame["joined"] = pd.date_range("2024-01-01", periods=ROWS, freq="6h").strftime("%Y-%m-%d %H")
    if shuffled_history:
        old = int(ROWS * 0.7)
        shuffled = np.random.default_rng(11).permutation(frame["tier"].to_numpy()[:old])
        frame.loc[: old - 1, "tier"] = shuffled
    if platinum:  # a new top tier appears
        frame.loc[frame["spend"] > frame["spend"].quantile(0.9), "tier"] = "platinum"
    frame.to_csv(root / "customers.csv", index=False)


class Loop:
    """A project folder, its store and a loop context over them."""

    def __init__(self, root: Path, spec: str = TIMED) -> None:
        self.root = root
        self.path = root / "mlprod.yaml"
        self.path.write_text(spec, encoding="utf-8")
        self.settings = Settings(store=str(root / ".mlprod"))
        self.store = Store.from_settings(self.settings)
        self.ctx = LoopContext(
            self.store,
            open_artifacts(self.settings),
            self.settings,
            clock=ManualClock(utc_now()),
            actor="test",
        )

    def champion(self) -> int:
        version = train(self.path, settings=self.settings).version
        assert version is not None
        promote("tiers", version, "production", settings=self.settings, actor="test")
        return version

    def retrain(self) -> Decision:
        return retrain(load_spec(self.path), self.ctx)

    def holdout(self, decision: Decision) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels of the challenger's test rows and both versions' probabilities on them."""
        store = str(self.root / ".mlprod")
        challenger = mlprod.load(f"tiers@{decision.challenger}", store=store)
        champion = mlprod.load(f"tiers@{decision.champion}", store=store)
        X, y = challenger.test_data()
        return y, champion.predict_proba(X), challenger.predict_proba(X)


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    made = Loop(tmp_path)
    yield made
    made.store.close()


def test_a_challenger_fitted_on_shuffled_history_is_refused_on_log_loss(loop: Loop) -> None:
    write_data(loop.root, shuffled_history=False)
    loop.champion()
    write_data(loop.root, shuffled_history=True)
    decision = loop.retrain()
    assert (decision.outcome, decision.champion, decision.challenger) == ("refused", 1, 2)
    assert decision.metric == "log_loss" and decision.basis == "holdout"  # selection_metric
    y, champion, challenger = loop.holdout(decision)
    assert decision.rows == len(y) == ROWS // 4
    assert decision.champion_value == pytest.approx(log_loss(y, champion), abs=1e-9)
    assert decision.challenger_value == pytest.approx(log_loss(y, challenger), abs=1e-9)
    assert decision.difference == pytest.approx(log_loss(y, champion) - log_loss(y, challenger))
    assert decision.low is not None and decision.high is not None
    assert decision.low < decision.difference < decision.high < 0  # surely worse
    assert "v2 may be worse than v1" in decision.reason and "log_loss" in decision.reason
    assert decision.details["classes"] == CLASSES
    assert list_decisions(loop.store, "tiers") == [decision]  # recorded with its figures
    assert alias_map(loop.store, "tiers") == {"production": 1}
    assert active_canary(loop.store, "tiers") is None


def test_a_challenger_fitted_on_real_tiers_wins_on_macro_f1_and_goes_to_canary(
    tmp_path: Path,
) -> None:
    loop = Loop(tmp_path, TIMED + "retrain: {metric: macro_f1}\n")
    try:
        write_data(loop.root, shuffled_history=True)
        loop.champion()
        write_data(loop.root, shuffled_history=False)
        decision = loop.retrain()
        assert (decision.outcome, decision.metric) == ("canary", "macro_f1")
        y, champion, challenger = loop.holdout(decision)
        before = f1_score(y, champion.argmax(axis=1), average="macro")
        after = f1_score(y, challenger.argmax(axis=1), average="macro")
        assert decision.champion_value == pytest.approx(before, abs=1e-12)
        assert decision.challenger_value == pytest.approx(after, abs=1e-12)
        assert decision.difference == pytest.approx(after - before, abs=1e-12)
        assert decision.low is not None and 0 < decision.low < decision.difference
        assert "v2 is not worse than v1" in decision.reason and "canary at 10%" in decision.reason
        canary = active_canary(loop.store, "tiers")
        assert canary is not None and (canary.champion, canary.challenger) == (1, 2)
        deployment = get_deployment(loop.store, "tiers")
        assert deployment is not None
        assert {(r.version, r.weight) for r in deployment.routes} == {(1, 90), (2, 10)}
    finally:
        loop.store.close()


def test_other_classes_a_live_comparison_and_a_binary_metric_are_refused(loop: Loop) -> None:
    write_data(loop.root, shuffled_history=False)
    loop.champion()
    write_data(loop.root, shuffled_history=False, platinum=True)
    decision = loop.retrain()
    assert decision.outcome == "refused" and decision.metric is None
    assert decision.reason.startswith(
        "v2 has classes (bronze, gold, platinum, silver) where v1 has (bronze, gold, silver)"
    )
    assert alias_map(loop.store, "tiers") == {"production": 1}

    loop.path.write_text(TIMED + "retrain: {compare: live}\n", encoding="utf-8")
    with pytest.raises(NotSupportedError, match="tiers@1 is multiclass"):
        loop.retrain()
    loop.path.write_text(TIMED + "retrain: {metric: average_precision}\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"retrain\.metric is average_precision.*roc_auc, log_loss"):
        loop.retrain()
    assert [v.version for v in list_versions(loop.store, "tiers")] == [1, 2]  # nothing fitted


def test_the_multiclass_paired_comparison_matches_sklearn(rng: np.random.Generator) -> None:
    y = rng.integers(0, 3, 600)
    noise = rng.normal(size=(600, 3))
    logits = 2.0 * np.eye(3)[y] + noise
    sharp = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    weak = (sharp + 1.0) / (sharp + 1.0).sum(axis=1, keepdims=True)
    weak = np.roll(weak, 1, axis=0)  # another row's probabilities: barely related to y
    auc = paired_comparison(y, weak, sharp, "roc_auc", seed=3)
    assert auc.champion == pytest.approx(roc_auc_score(y, weak, multi_class="ovr"), abs=1e-12)
    assert auc.challenger == pytest.approx(roc_auc_score(y, sharp, multi_class="ovr"), abs=1e-12)
    assert 0 < auc.low < auc.difference < auc.high
    loss = paired_comparison(y, sharp, weak, "log_loss", seed=3)
    assert loss.difference == pytest.approx(log_loss(y, sharp) - log_loss(y, weak))
    assert loss.difference < 0 and loss.low < loss.high < 0  # lower is better: oriented
    same = paired_comparison(y, sharp, sharp.copy(), "macro_f1", seed=3)
    assert same.difference == same.low == same.high == 0
    with pytest.raises(DataError, match="use roc_auc, log_loss, macro_f1"):
        paired_comparison(y, weak, sharp, "average_precision")
    two = np.where(y == 2, 1, y)
    with pytest.raises(DataError, match="2 of their 3 classes: need at least 20 rows"):
        paired_comparison(two, weak, sharp, "log_loss")
