"""The run's submission: a constant safety net first, the best reviewed experiment after every round, and final
selection (ensemble or single model, `crew.tools.ensemble`) at the end, so that a run always leaves a valid one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from crew import Blackboard, Task, best_first
from crew.tools import ensemble, submission
from crew.workflows.strategies import family_leaders

__all__ = ["TOP_K", "accepted", "candidates", "constant_submission", "finalize", "write_best"]

TOP_K = 12
"""Experiments final selection considers (plus the best of every other family)."""


def constant_submission(task: Task, path: Path) -> None:
    """The first valid submission: class priors or the target's mean, written before any experiment runs."""
    submission.constant_submission(task).to_csv(path, index=False)


def accepted(board: Blackboard, higher: bool) -> list[Any]:
    done = [e for e in board.experiments(status="done") if e.score is not None and e.artifacts.get("predictions.csv")]
    return best_first(done, higher)


def write_best(board: Blackboard, task: Task, output: Path, higher: bool) -> None:
    best = accepted(board, higher)
    if best and board.get_meta("best_written") != best[0].id:
        shutil.copyfile(best[0].artifacts["predictions.csv"], output)
        board.set_meta("best_written", best[0].id)


def candidates(ranked: list[Any]) -> list[Any]:
    """What final selection weighs: the `TOP_K` best, plus the best of every other model family. The top of a
    long search is often one family's near-copies; an ensemble gains from models that err differently."""
    chosen = ranked[:TOP_K]
    ids = {e.id for e in chosen}
    return chosen + [e for e in family_leaders(ranked) if e.id not in ids]


def finalize(board: Blackboard, task: Task, run_dir: Path, output: Path, higher: bool, seed: int) -> dict[str, Any]:
    """Final selection over the candidates, written to `output`; what was chosen and why, for the blackboard."""
    chosen = candidates(accepted(board, higher))
    if not chosen:
        return {"kind": "constant", "rationale": "no experiment passed review; the constant-prediction submission "
                                                 "stands", "experiments": []}
    folders = [str(Path(e.artifacts["predictions.csv"]).parent) for e in chosen]
    try:
        selection = ensemble.select(task, folders, seed=seed)
    except Exception as exc:  # final selection must never cost the run its submission
        write_best(board, task, output, higher)
        return {"kind": "single", "experiments": [chosen[0].id], "cv": chosen[0].score,
                "rationale": f"final selection failed ({type(exc).__name__}: {exc}); submitted the best experiment"}
    frame = submission.submission_frame(task, selection.test_ids, selection.test, selection.class_weights)
    tmp = output.with_suffix(".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, output)
    weights = {Path(name).name: w for name, w in selection.weights.items() if w}
    return {"kind": selection.kind, "weights": weights, "cv": selection.cv, "spread": selection.spread,
            "single_cv": selection.single_cv, "ensemble_cv": selection.ensemble_cv, "best_single": Path(selection.best_single).name,
            "rationale": selection.rationale, "experiments": list(weights), "class_weights": selection.class_weights}
