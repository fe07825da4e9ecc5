"""Understanding the data before modelling: a profile of a source, a ranking of features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlprod.data import load_frame, profile_frame
from mlprod.errors import DataError
from mlprod.evaluation import write_profile_report
from mlprod.features import infer_kinds
from mlprod.pipelines._prepare import prepare
from mlprod.pipelines._progress import Steps
from mlprod.pipelines._target import encode_target
from mlprod.spec import ProjectSpec, SqlSource, load_spec
from mlprod.training import rank_features


def profile_data(
    source: str | Path | SqlSource,
    *,
    target: str | None = None,
    positive: object = None,
    output: str | Path | None = None,
) -> dict[str, Any]:
    """Profile a source (with target rates when `target` is given); write HTML to `output`.

    Example::

        profile = profile_data("customers.csv", target="churned", output="profile.html")
        profile["suspects"]   # columns that look like ids or leaks
    """
    df = load_frame(source)
    y = None
    if target is not None:
        if target not in df.columns:
            raise DataError(
                f"--target {target!r} is not a column; columns: {list(df.columns)[:30]}"
            )
        y, _, labelled = encode_target(df[target], positive)
        df = df.loc[labelled].reset_index(drop=True)
    kinds = infer_kinds(df, {target} if target else set())
    profile = profile_frame(df, y, target=target, kinds=kinds)
    if output is not None:
        name = source.query[:40] if isinstance(source, SqlSource) else Path(str(source)).name
        profile["report"] = str(
            write_profile_report(output, profile, title=f"Data profile: {name}")
        )
    return profile


def profile_spec(
    spec: str | Path | ProjectSpec, output: str | Path | None = None
) -> dict[str, Any]:
    """Profile the data a spec names, with its target and positive value."""
    if not isinstance(spec, ProjectSpec):
        spec = load_spec(spec)
    return profile_data(
        spec.data.source, target=spec.data.target, positive=spec.data.positive, output=output
    )


def rank_spec_features(spec: str | Path | ProjectSpec) -> list[dict[str, Any]]:
    """Rank a spec's raw feature columns: mutual information and tree importance on the
    training rows, permutation importance on the validation rows (the test set is unused).
    """
    if not isinstance(spec, ProjectSpec):
        spec = load_spec(spec)
    data = prepare(spec.model_copy(update={"selection": None}), Steps(quiet=True))
    split = data.split
    held = split.validation if len(split.validation) else split.folds[0][1]
    fit = split.train if len(split.validation) else split.folds[0][0]
    return rank_features(
        data.features,
        data.df.iloc[fit],
        data.y[fit],
        data.df.iloc[held],
        data.y[held],
        seed=spec.seed,
    )
