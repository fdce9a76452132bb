"""The speed pass of a tabular search: profile a winning pipeline by stage, and the variants that make its slowest
stage cheaper without changing what it predicts.

A faster winner buys more experiments inside the same budget: every
improvement the search builds on it inherits the speed. So a variant is
kept only when it predicts what its parent predicted (out-of-fold, within
`PREDICTION_TOLERANCE`) and scores no worse than the parent's CV beyond a
quarter of the parent's fold spread; otherwise the reviewer rejects it and
the search goes on from the parent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crew import Blackboard, Experiment, Task, oriented
from crew.tools.artifacts import ArtifactError, aligned_predictions
from crew.tools.review import Audit

__all__ = ["CV_SPREAD_TOLERANCE", "PREDICTION_TOLERANCE", "SPEED_VARIANTS", "SpeedVariant", "check_speed_variant",
           "prediction_gap", "profile",
           "ran_params", "variants_for", "variants_left"]

PREDICTION_TOLERANCE = 0.03
"""Mean absolute out-of-fold difference allowed: in probability for classifiers, in target standard deviations for
regressors."""
CV_SPREAD_TOLERANCE = 0.25
"""A variant's CV may be worse than its parent's by at most this share of the parent's fold standard deviation."""

_STAGES = ("load", "features", "tune", "cross_validate")


@dataclass(frozen=True)
class SpeedVariant:
    """One cheaper way to run a stage: its name, which stage it speeds up, for which families, and the change."""

    name: str
    stage: str
    description: str
    families: tuple[str, ...]
    change: Callable[[dict[str, Any]], dict[str, Any]]


def _halve(key: str, rate: bool = False) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(params: dict[str, Any]) -> dict[str, Any]:
        out = {**params, key: max(50, int(params.get(key, 300)) // 2)}
        if rate and "learning_rate" in params:
            out["learning_rate"] = round(min(0.5, float(params["learning_rate"]) * 2), 5)
        return out
    return change


SPEED_VARIANTS: tuple[SpeedVariant, ...] = (
    SpeedVariant("coarser_bins", "cross_validate", "63 histogram bins instead of 255: cheaper split finding",
                 ("lightgbm", "xgboost", "hist_gradient_boosting"),
                 lambda p: {**p, "max_bins": 63} if "max_iter" in p else {**p, "max_bin": 63}),
    SpeedVariant("half_bootstrap", "cross_validate", "each tree fits on a half-size bootstrap sample",
                 ("random_forest",), lambda p: {**p, "max_samples": 0.5}),
    SpeedVariant("half_trees", "cross_validate", "half the trees: the forest's average barely moves",
                 ("random_forest", "extra_trees"), _halve("n_estimators")),
    SpeedVariant("half_rounds", "cross_validate", "half the boosting rounds at twice the learning rate",
                 ("lightgbm", "xgboost"), _halve("n_estimators", rate=True)),
)
"""What the optimizer may try on a winner, slowest stage first; GPU placement is not among them (the solve
workflow does not give experiments GPUs yet)."""


def ran_params(spec: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters an experiment really ran: the tuned ones when it tuned (metrics.json's `params`), else its
    design's. What a child builds on, so that improving a tuned experiment keeps its tuning."""
    ran = metrics.get("params")
    return dict(ran) if spec.get("tune_trials") and isinstance(ran, dict) else dict(spec.get("params") or {})


def profile(metrics: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The stages an experiment's script timed (metrics.json's `timings`), slowest first."""
    timings = metrics.get("timings") or {}
    stages = [(stage, float(timings[stage])) for stage in _STAGES if isinstance(timings.get(stage), int | float)]
    return sorted(stages, key=lambda item: -item[1])


def variants_for(model: str, params: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[tuple[SpeedVariant, dict[str, Any]]]:
    """The variants that apply to this family, for its slowest stages first, with the parameters each would run."""
    order = {stage: i for i, (stage, _) in enumerate(profile(metrics))}
    found = []
    for variant in sorted(SPEED_VARIANTS, key=lambda v: order.get(v.stage, len(order))):
        if model in variant.families:
            changed = variant.change(dict(params))
            if changed != dict(params):
                found.append((variant, changed))
    return found


def variants_left(winner: Experiment, experiments: list[Experiment]) -> list[tuple[SpeedVariant, dict[str, Any]]]:
    """`variants_for` the winner's design as it ran, less those already tried on it."""
    tried = {e.insights[-1] for e in experiments if e.spec.get("speed_of") == winner.id and e.insights}
    return [(variant, params) for variant, params in
            variants_for(str(winner.spec.get("model")), ran_params(winner.spec, winner.metrics), winner.metrics)
            if f"speed:{variant.name}" not in tried]


def prediction_gap(task: Task, parent_oof: str | Path, variant_oof: str | Path) -> float:
    """Mean absolute difference of two experiments' out-of-fold predictions, in the tolerance's units (probability
    for classifiers, the parent's standard deviation for regressors), both read and aligned to the task's train rows
    by `crew.tools.artifacts`.

    Raises ArtifactError (a ValueError) when a file breaks the contract or the two hold different kinds of predictions.
    """
    kind, parent = aligned_predictions(Path(parent_oof), task, "train")
    other, variant = aligned_predictions(Path(variant_oof), task, "train")
    if kind != other or kind == "label" or parent.shape != variant.shape:
        raise ArtifactError("the out-of-fold files do not hold the same kind of predictions")
    parent, variant = parent.astype(float), variant.astype(float)
    gap = float(np.nanmean(np.abs(parent - variant)))
    if task.target_type == "regression":
        scale = float(np.nanstd(parent))
        return gap / scale if scale > 0 else gap
    return gap


def check_speed_variant(out: Audit, task: Task, board: Blackboard, exp_id: str) -> None:
    """A speed variant counts only if it predicts what its parent did and scores no worse beyond the folds' noise."""
    found = board.find_experiment(exp_id)
    speed_of = found.spec.get("speed_of") if found is not None else None
    parent = board.find_experiment(speed_of) if speed_of else None
    if parent is None:
        return
    mine, theirs = out.artifacts.get("oof.csv"), parent.artifacts.get("oof.csv")
    if not mine or not theirs or parent.score is None or not Path(theirs).is_file():
        out.record("speed_equivalence", fails=[f"cannot compare with {speed_of}: its out-of-fold predictions are gone"])
        return
    fails = []
    try:
        gap = prediction_gap(task, theirs, mine)
    except (ValueError, OSError) as exc:
        out.record("speed_equivalence", fails=[f"cannot compare with {speed_of}: {exc}"])
        return
    if gap > PREDICTION_TOLERANCE:
        fails.append(f"a speed variant must predict what {speed_of} predicts: its out-of-fold predictions differ by "
                     f"{gap:.4f} on average (tolerance {PREDICTION_TOLERANCE})")
    spread = float(parent.metrics.get("cv_std") or 0.0)
    higher = task.metric_info.higher_is_better
    drop = oriented(parent.score, higher) - oriented(out.score, higher)
    if drop > CV_SPREAD_TOLERANCE * spread:
        fails.append(f"a speed variant must not score worse than {speed_of}: CV {_fmt(out.score)} against "
                     f"{_fmt(parent.score)} (allowed drop {CV_SPREAD_TOLERANCE} x fold spread {_fmt(spread)})")
    out.record("speed_equivalence", fails=fails, note=f"gap {gap:.4f}, CV {_fmt(out.score)} vs {_fmt(parent.score)}")


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"
