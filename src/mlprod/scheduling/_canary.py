"""Canary rollout: a winning challenger takes a share of the traffic until the outcomes decide.

The challenger gets ``retrain.canary.weight`` percent of the traffic (sticky by entity
when the spec names one). Every check reads both versions' labelled predictions since the
challenger first answered, and:

* rolls back at once when requests fail during the canary (over ``max_error_rate``) or the
  challenger's p99 latency exceeds the champion's by ``latency_factor``;
* looks, once each version has ``min_labels`` labelled predictions (and half again as many
  as at the previous look), at the difference in mean Brier score with the sequential test
  of `_compare`: promote when the challenger is surely not worse by more than ``margin``,
  roll back when it surely is;
* rolls back when ``max_duration`` passes undecided.

Traffic moves through the registry (gate-checked and audited); the decision is recorded
once, by whichever scheduler closes the canary, and posted to the webhook.

Example::

    canary = start_canary(context, spec, champion=3, challenger=4)
    decision = check_canary(context, spec, canary)     # None while undecided
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from mlprod._time import parse_duration
from mlprod.errors import BrokenVersionError, MlprodError
from mlprod.monitoring import labelled_predictions
from mlprod.registry import Route, clear_deployment, set_alias, set_deployment
from mlprod.scheduling._compare import Look, brier_losses, canary_look
from mlprod.scheduling._context import LoopContext
from mlprod.scheduling._decisions import close_canary, count_look, open_canary, record_decision
from mlprod.scheduling._records import Canary, Decision
from mlprod.spec import CanarySpec, ProjectSpec
from mlprod.store import MetadataStore
from mlprod.store import schema as t

LOOK_GROWTH = 1.5  # a new look needs this many times the labels of the previous one
LATENCY_ROWS = 10_000  # newest predictions per version whose latency is compared
MIN_LATENCY_ROWS = 50
LABEL, SCORE, AT = "__label__", "__score__", "__at__"


def start_canary(ctx: LoopContext, spec: ProjectSpec, *, champion: int, challenger: int) -> Canary:
    """Give `challenger` its share of the traffic; recorded so checks can follow it."""
    weight = spec.retrain.canary.weight
    canary = open_canary(
        ctx.store,
        spec.name,
        champion=champion,
        challenger=challenger,
        weight=weight,
        at=ctx.clock.now(),
    )
    routes = [
        Route(version=champion, weight=100 - weight),
        Route(version=challenger, weight=weight),
    ]
    try:
        set_deployment(
            ctx.store,
            spec.name,
            routes,
            artifacts=ctx.artifacts,
            actor=ctx.actor,
            reason=f"canary of v{challenger} against v{champion}",
        )
    except MlprodError as exc:
        close_canary(ctx.store, canary.id, state="rolled_back", reason=str(exc), at=ctx.clock.now())
        raise
    return canary


def check_canary(ctx: LoopContext, spec: ProjectSpec, canary: Canary) -> Decision | None:
    """Promote, roll back, or leave running; the decision when one was taken."""
    rules = spec.retrain.canary
    arms = _arms(ctx.store, canary)
    problem = _guardrail(ctx.store, canary, rules, arms)
    if problem is not None:
        return _end(ctx, spec, canary, "rolled_back", problem, arms, look=None)
    look = _look(ctx.store, canary, rules, arms)
    if look is not None and look.verdict != "continue":
        state = "promoted" if look.verdict == "promote" else "rolled_back"
        return _end(ctx, spec, canary, state, _look_text(canary, look, rules), arms, look)
    if ctx.clock.now() - canary.started_at > parse_duration(rules.max_duration):
        reason = (
            f"undecided after {rules.max_duration} "
            f"({len(arms['champion'])} and {len(arms['challenger'])} labelled predictions)"
        )
        return _end(ctx, spec, canary, "rolled_back", reason, arms, look)
    return None


def _arms(store: MetadataStore, canary: Canary) -> dict[str, pd.DataFrame]:
    """Both versions' labelled predictions since the challenger first answered.

    The challenger is new, so all its predictions belong to the canary; the champion's
    are taken from the same span, so both arms saw the same period.
    """
    challenger = labelled_predictions(store, canary.model, canary.challenger)
    first = _first_answer(store, canary)
    champion = labelled_predictions(store, canary.model, canary.champion, since=first)
    return {"champion": champion if first else champion.iloc[:0], "challenger": challenger}


def _first_answer(store: MetadataStore, canary: Canary) -> datetime | None:
    p = t.predictions
    query = sa.select(sa.func.min(p.c.at)).where(
        p.c.model == canary.model, p.c.version == canary.challenger, p.c.shadow_of.is_(None)
    )
    first: datetime | None = store.read(lambda conn: conn.execute(query).scalar())
    return first


def _guardrail(
    store: MetadataStore, canary: Canary, rules: CanarySpec, arms: dict[str, pd.DataFrame]
) -> str | None:
    """Why the canary must stop now (failing requests, slow answers), or None."""
    first = _first_answer(store, canary)
    if first is None:
        return None
    answered, nulls = _answered(store, canary.model, canary.challenger, first)
    failed = _failed_requests(store, canary.model, first)
    total = answered + failed
    if total and (nulls + failed) / total > rules.max_error_rate:
        return (
            f"{nulls + failed} of {total} requests failed or scored nothing while "
            f"v{canary.challenger} took traffic (max_error_rate {rules.max_error_rate:.0%})"
        )
    slow = _p99(store, canary.model, canary.challenger, first)
    usual = _p99(store, canary.model, canary.champion, first)
    if slow is not None and usual is not None:
        limit = max(usual * rules.latency_factor, rules.min_latency_ms)
        if slow > limit:
            return (
                f"p99 latency of v{canary.challenger} is {slow:.1f} ms, over {limit:.1f} ms "
                f"(v{canary.champion}: {usual:.1f} ms x {rules.latency_factor:g})"
            )
    return None


def _answered(store: MetadataStore, model: str, version: int, since: datetime) -> tuple[int, int]:
    p = t.predictions
    query = sa.select(sa.func.count(), sa.func.count().filter(p.c.score.is_(None))).where(
        p.c.model == model, p.c.version == version, p.c.at >= since, p.c.shadow_of.is_(None)
    )
    total, nulls = store.read(lambda conn: conn.execute(query).one())
    return int(total), int(nulls or 0)


def _failed_requests(store: MetadataStore, model: str, since: datetime) -> int:
    e = t.request_errors
    bucket = since.replace(second=0, microsecond=0)
    query = sa.select(sa.func.coalesce(sa.func.sum(e.c.count), 0)).where(
        e.c.model == model, e.c.window_start >= bucket
    )
    return int(store.read(lambda conn: conn.execute(query).scalar_one()))


def _p99(store: MetadataStore, model: str, version: int, since: datetime) -> float | None:
    p = t.predictions
    query = (
        sa.select(p.c.latency_ms)
        .where(p.c.model == model, p.c.version == version, p.c.at >= since)
        .where(p.c.shadow_of.is_(None))
        .order_by(p.c.at.desc())
        .limit(LATENCY_ROWS)
    )
    values = store.read(lambda conn: conn.execute(query).scalars().all())
    return float(np.percentile(values, 99)) if len(values) >= MIN_LATENCY_ROWS else None


def _look(
    store: MetadataStore, canary: Canary, rules: CanarySpec, arms: dict[str, pd.DataFrame]
) -> Look | None:
    """The next sequential look, once both arms have enough new labels; else None."""
    needed = rules.min_labels * LOOK_GROWTH**canary.looks
    champion, challenger = arms["champion"], arms["challenger"]
    if min(len(champion), len(challenger)) < needed:
        return None
    look = count_look(store, canary.id)
    return canary_look(
        brier_losses(champion[SCORE], champion[LABEL]),
        brier_losses(challenger[SCORE], challenger[LABEL]),
        look=look,
        alpha=rules.alpha,
        margin=rules.margin,
    )


def _look_text(canary: Canary, look: Look, rules: CanarySpec) -> str:
    verdict = "not worse" if look.verdict == "promote" else "worse"
    return (
        f"v{canary.challenger} is {verdict} than v{canary.champion} on live outcomes: mean Brier "
        f"score {look.excess:+.4f} ({look.level:.2%} interval {look.low:+.4f} to "
        f"{look.high:+.4f}, margin {rules.margin:g}) over {look.champion_rows} and "
        f"{look.challenger_rows} labelled predictions"
    )


def _end(
    ctx: LoopContext,
    spec: ProjectSpec,
    canary: Canary,
    state: str,
    reason: str,
    arms: dict[str, pd.DataFrame],
    look: Look | None,
) -> Decision | None:
    """Move the traffic, then close the canary; the closer records the decision.

    A challenger that won on outcomes but whose bundle no longer loads is rolled back.
    """
    if state == "promoted":
        note = f"canary passed: {reason}"
        try:
            set_alias(
                ctx.store,
                canary.model,
                "production",
                canary.challenger,
                artifacts=ctx.artifacts,
                actor=ctx.actor,
                reason=note,
            )
        except BrokenVersionError as exc:  # won on outcomes, but its bundle broke since
            state, reason = "rolled_back", f"{reason}, but it cannot be promoted: {exc}"
    clear_deployment(ctx.store, canary.model, actor=ctx.actor, reason=f"canary {state}")
    if not close_canary(ctx.store, canary.id, state=state, reason=reason, at=ctx.clock.now()):
        return None  # another scheduler decided it first
    champion, challenger = arms["champion"], arms["challenger"]
    figures: dict[str, Any] = {}
    if look is not None:
        figures = {
            "metric": "brier",
            "champion_value": float(brier_losses(champion[SCORE], champion[LABEL]).mean()),
            "challenger_value": float(brier_losses(challenger[SCORE], challenger[LABEL]).mean()),
            "difference": -look.excess,  # positive: the challenger is better, as for retrains
            "low": -look.high,
            "high": -look.low,
            "margin": spec.retrain.canary.margin,
        }
    decision = record_decision(
        ctx.store,
        at=ctx.clock.now(),
        model=canary.model,
        kind="canary",
        outcome=state,
        champion=canary.champion,
        challenger=canary.challenger,
        rows=len(champion) + len(challenger),
        basis="live",
        reason=reason,
        details={
            "canary": canary.id,
            "looks": canary.looks + (look is not None),
            "labels": {"champion": len(champion), "challenger": len(challenger)},
        },
        **figures,
    )
    ctx.webhook(spec, {"event": "decision", **decision.model_dump(mode="json")})
    return decision
