"""The speed pass inside solve: when the search's winner gets a speed step, and what the pass bought.

A winner slow enough to matter goes to the speed optimizer (`crew.roles.speed_optimizer`) for a cheaper
variant of its slowest stage (`crew.tools.speed`); the reviewer keeps one only if it predicts the same.
"""

from __future__ import annotations

from typing import Any

from crew import Blackboard
from crew.tools.speed import variants_left
from crew.workflows.final import accepted
from crew.workflows.strategies import Step, opening_done

__all__ = ["SPEED_MIN_SECONDS", "SPEED_TRIES", "speed_report", "speed_step"]

SPEED_MIN_SECONDS = 8.0
"""A winner faster than this is not worth a speed variant."""
SPEED_TRIES = 2
"""Speed variants tried on one winner before the search moves on."""


def speed_step(board: Blackboard, plan: dict, higher: bool, seed: int, *, max_drafts: int | None) -> Step | None:
    """The speed pass: the best experiment, when it is slow enough to matter and has variants left, goes to the
    optimizer (one variant in flight at a time, at most `SPEED_TRIES` per winner). It waits for the opening: while
    drafts are still to come the winner is provisional, and whether a draft took `SPEED_MIN_SECONDS` depends on how
    busy the machine was, which would make a seeded run's experiments depend on the load."""
    experiments = board.experiments()
    if not opening_done(experiments, plan, max_drafts=max_drafts):
        return None
    if any(e.spec.get("speed_of") and e.status in ("proposed", "running") for e in experiments):
        return None
    best = accepted(board, higher)
    if not best or best[0].spec.get("speed_of") or (best[0].wall_time or 0.0) < SPEED_MIN_SECONDS:
        return None
    winner = best[0]
    tried = [e for e in experiments if e.spec.get("speed_of") == winner.id]
    if len(tried) >= SPEED_TRIES or any(e.status == "done" for e in tried):
        return None
    left = variants_left(winner, experiments)
    if not left:
        return None
    return Step(phase="speed", parent=winner.id, model=winner.spec.get("model"), insight=f"speed:{left[0][0].name}",
                seed=seed)


def speed_report(board: Blackboard) -> dict[str, Any]:
    """What the speed pass bought: variants tried and kept, how much faster each kept one ran the stage it speeds up
    (cross-validation), and how many more experiments the time its descendants saved there would have paid for
    at the run's mean experiment time. Stages a variant skips outright (the tuning it inherits) are not counted."""
    experiments = board.experiments()
    by_id = {e.id: e for e in experiments}
    variants = [e for e in experiments if e.spec.get("speed_of")]

    def stage_seconds(exp: Any) -> float:
        return float((exp.metrics.get("timings") or {}).get("cross_validate") or 0.0)

    kept = [e for e in variants if e.status == "done" and stage_seconds(e) and e.spec["speed_of"] in by_id
            and stage_seconds(by_id[e.spec["speed_of"]])]
    children: dict[str, list[Any]] = {}
    for e in experiments:
        if e.parent:
            children.setdefault(e.parent, []).append(e)
    saved, ratios = 0.0, {}
    for variant in kept:
        ratio = stage_seconds(variant) / stage_seconds(by_id[variant.spec["speed_of"]])
        ratios[variant.id] = round(ratio, 3)
        stack = list(children.get(variant.id, []))
        while stack:  # each descendant's cross-validation would have taken 1/ratio as long on the slower pipeline
            node = stack.pop()
            saved += stage_seconds(node) * max(0.0, 1.0 / ratio - 1.0)
            stack.extend(children.get(node.id, []))
    timed = [e.wall_time for e in experiments if e.wall_time]
    mean = sum(timed) / len(timed) if timed else 0.0
    return {"tried": len(variants), "kept": len(kept), "stage_time_ratio": ratios, "seconds_saved": round(saved, 1),
            "extra_experiments": round(saved / mean, 1) if mean else 0.0}
