"""The statistics behind the decisions, and cron slots across daylight saving."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mlprod.errors import DataError
from mlprod.scheduling import canary_look, latest_slot, next_slot, paired_comparison
from mlprod.scheduling._compare import brier_losses


@pytest.mark.slow
def test_a_clearly_better_challenger_wins_and_an_equal_one_straddles_zero(
    rng: np.random.Generator,
) -> None:
    y = rng.integers(0, 2, 800)
    noise = rng.normal(size=800)
    good = 1 / (1 + np.exp(-(2.5 * (y - 0.5) + noise)))
    weak = 1 / (1 + np.exp(-(0.5 * (y - 0.5) + noise)))
    better = paired_comparison(y, weak, good, "roc_auc", seed=1)
    assert better.champion == pytest.approx(roc_auc_score(y, weak))
    assert better.challenger == pytest.approx(roc_auc_score(y, good))
    assert better.difference == pytest.approx(better.challenger - better.champion)
    assert 0 < better.low < better.difference < better.high
    same = paired_comparison(y, good, good.copy(), "roc_auc", seed=1)
    assert same.difference == 0 and same.low == same.high == 0  # paired: no noise at all
    worse = paired_comparison(y, good, weak, "log_loss", seed=1)
    assert worse.difference < 0 and worse.high < 0  # lower log loss is better: oriented


def test_a_comparison_needs_enough_rows_of_both_classes() -> None:
    with pytest.raises(DataError, match="need at least 20 rows with both classes"):
        paired_comparison(np.ones(50, int), np.full(50, 0.5), np.full(50, 0.6), "roc_auc")


def test_canary_looks_promote_roll_back_or_wait(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, 400)
    sharp = brier_losses(np.clip(y + rng.normal(0, 0.2, 400), 0, 1), y)
    blunt = brier_losses(np.full(400, 0.5), y)
    promote = canary_look(blunt, sharp, look=1, alpha=0.05, margin=0.005)
    assert promote.verdict == "promote" and promote.high < 0.005
    roll_back = canary_look(sharp, blunt, look=1, alpha=0.05, margin=0.005)
    assert roll_back.verdict == "roll_back" and roll_back.low > 0.005
    wait = canary_look(sharp[:30], sharp[30:60], look=1, alpha=0.05, margin=0.0)
    assert wait.verdict == "continue" and wait.low < 0 < wait.high
    later = canary_look(blunt, sharp, look=4, alpha=0.05, margin=0.005)
    assert later.level == pytest.approx(1 - 0.05 / 16)  # each look spends less of alpha
    assert later.high - later.low > promote.high - promote.low


def test_cron_slots_follow_local_time_through_daylight_saving() -> None:
    before = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)  # Berlin moves to summer time on the 29th
    first = next_slot("0 3 * * *", "Europe/Berlin", after=before)
    second = next_slot("0 3 * * *", "Europe/Berlin", after=first)
    assert first == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST is 01:00 UTC
    assert second == datetime(2026, 3, 30, 1, 0, tzinfo=UTC)
    assert latest_slot(
        "*/15 * * * *", "UTC", at_or_before=datetime(2026, 1, 1, 10, 15, 30, tzinfo=UTC)
    ) == datetime(2026, 1, 1, 10, 15, tzinfo=UTC)
    winter = next_slot("0 3 * * *", "Europe/Berlin", after=datetime(2026, 1, 10, tzinfo=UTC))
    assert winter == datetime(2026, 1, 10, 2, 0, tzinfo=UTC)
