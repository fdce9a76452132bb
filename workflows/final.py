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

__all__ = ["TOP_K", "accepted", "candidates", "constant_submission", "finalize", "save_final_model", "write_best"]

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
    final = {"kind": selection.kind, "weights": weights, "cv": selection.cv, "spread": selection.spread,
             "single_cv": selection.single_cv, "ensemble_cv": selection.ensemble_cv,
             "best_single": Path(selection.best_single).name, "rationale": selection.rationale,
             "experiments": list(weights), "class_weights": selection.class_weights}
    try:
        final["predictor"] = save_final_model(task, run_dir, selection, {e.id: e for e in chosen})
    except Exception as exc:  # the submission stands; the run says why there is no model to keep
        final["predictor"] = {"saved": False, "reason": f"{type(exc).__name__}: {exc}"}
    return final


def save_final_model(task: Task, run_dir: Path, selection: ensemble.Selection, by_id: dict[str, Any]) -> dict[str, Any]:
    """Keep what final selection chose as the run's predictor (`run_dir/predictor/`, see
    `crew.tools.predictor`): the chosen experiments' saved models, the blend's weights or the stack, the decision,
    and the columns the models read with the categories seen in training."""
    from crew import read_table
    from crew.tools.pipelines import TaskInfo
    from crew.tools.predictor import save_predictor

    assert task.data is not None
    members = [{"name": name, "folder": Path(by_id[name].artifacts["predictions.csv"]).parent, "weight": w,
                "insights": list(by_id[name].insights)} for name, w in selection.weights.items() if w]
    kinds: dict[str, str] = {}
    for member in members:
        spec = by_id[member["name"]].spec
        for kind in ("numeric", "categorical", "datetime", "text"):
            for column in spec.get(kind, []):
                if column not in spec.get("drop", []):
                    kinds.setdefault(column, kind)
    train = read_table(task.path(task.data.train))
    schema: dict[str, dict[str, Any]] = {}
    for column, kind in kinds.items():
        schema[column] = {"kind": kind}
        if kind == "categorical" and column in train.columns:
            levels = train[column].drop_nulls().cast(str).unique().sort().to_list()
            schema[column]["levels"] = levels if len(levels) <= 10_000 else None
    return save_predictor(run_dir / "predictor", TaskInfo.from_task(task).model_dump(), schema, selection.kind,
                          members, stacker=selection.stacker, stacked_on=list(selection.stacked_on),
                          class_weights=selection.class_weights, cv=selection.cv, rationale=selection.rationale)
