"""The reviewer: the role that decides, from the checks in `crew.tools.review`, whether a finished experiment counts.

Scripts are written by a model, and a model can be wrong or can cheat. So the
reviewer trusts nothing a script says about itself: it reads the files the
experiment left behind, validates `predictions.csv` against the task's test
ids, recomputes the CV score from `oof.csv` and the true train targets with
the task's metric, checks that the submission is what the model's own test
predictions (`test_pred.csv`) imply, and reads the analyst's leakage suspects
against the score. Each check is a named entry of `Review.checks`; a failed
check rejects the experiment, a warning does not.

`Review.accepted` is the single source of truth: a rejected experiment is
marked `failed` on the blackboard (never `done`, so `Blackboard.best` and the
final selection never see it), and a chat model may reject what the checks
passed but may never accept what a mechanical check failed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
from pydantic import Field

from crew import Blackboard, Brain, Decision, Message, Role, Task
from crew.roles._util import as_task
from crew.testing import tiny_task
from crew.tools.review import ARTIFACTS, CHECKS, DEFAULT_THRESHOLDS, Audit, Thresholds, audit, finding_line
from crew.tools.speed import check_speed_variant

__all__ = ["ARTIFACTS", "CHECKS", "Audit", "Review", "Reviewer", "Thresholds", "audit"]


class Review(Decision):
    """The reviewer's call on one finished experiment."""

    accepted: bool = Field(description="true only when no check failed; a rejected experiment never becomes the answer")
    score: float | None = Field(default=None, description="the CV score recomputed from oof.csv and the true targets")
    issues: list[str] = Field(default_factory=list,
                              description="one line each, a reason a person can act on; failures first, then "
                                          "'warning: ...' lines")
    checks: dict[str, str] = Field(default_factory=dict,
                                   description="check name -> 'pass', 'fail', 'warn' or 'skip', each optionally "
                                               "followed by ': detail'")

    def summary(self) -> str:
        score = f"CV {self.score:.5g}" if self.score is not None else "no CV"
        if not self.accepted:
            first = self.issues[0] if self.issues else (self.rationale or "no reason given")
            more = f" (+{len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
            return f"reviewer: rejected ({score}): {first}{more}"
        warns = sum(1 for value in self.checks.values() if value.startswith("warn"))
        return f"reviewer: accepted ({score})" + (f"; {warns} warning(s)" if warns else "")


def _traceback(result: Mapping[str, Any], lines: int = 30, chars: int = 2500) -> str:
    """The end of a failed run's stderr, trimmed as AIDE trims it: enough to debug, not the whole log."""
    kept = [line.rstrip() for line in str(result.get("stderr_tail") or "").splitlines() if line.strip()][-lines:]
    text = "\n".join(kept)
    return text if len(text) <= chars else "..." + text[-chars:]


class Reviewer(Role):
    """Reads `task`, `result` (the sandbox outcome) and `data_report`; writes `review`.

    The checks run in `context` (see `audit`), so every brain decides from the
    same facts; the expert accepts exactly when no check failed. In `act` the
    experiment is updated on the blackboard (done/failed, the recomputed score,
    fold scores, metrics, artifacts, the joined issues as its error).
    """

    profile: ClassVar[str] = "reviewer"
    goal: ClassVar[str] = ("Let no result count that is not valid and honest: check the submission, recompute the CV "
                           "from the out-of-fold predictions, confirm the predictions come from the model, and flag "
                           "unstable folds, overfitting and leakage with reasons a person can act on.")
    decision: ClassVar[type[Decision]] = Review
    reads: ClassVar[tuple[str, ...]] = ("task", "result", "data_report")
    writes: ClassVar[tuple[str, ...]] = ("review",)
    prompt: ClassVar[str] = (
        "Experiment {experiment} ended with sandbox reason {reason}.\n\nThe reviewer's checks: {checks}\n\n"
        "Failures: {failures}\nWarnings: {warnings}\n\nTask metric: {metric} (higher is better: {higher_is_better}). "
        "Reported CV: {reported}; CV recomputed from oof.csv: {score}; fold scores: {folds}.\n"
        "Leakage suspects from the analyst: {leakage_suspects}. Critic findings: {findings}\n\n"
        "Decide: accept only when no check failed (you may still reject for a reason you state). Set score to the "
        "recomputed CV, copy the checks, and list every issue as one line a person can act on."
    )

    def __init__(self, *, brain: Brain | None = None, blackboard: Blackboard | None = None,
                 thresholds: Thresholds = DEFAULT_THRESHOLDS):
        super().__init__(brain=brain, blackboard=blackboard)
        self.thresholds = thresholds

    def context(self, state: Mapping[str, Any]) -> dict[str, Any]:
        context = super().context(state)
        task = as_task(context["task"])
        result = dict(context["result"] or {})
        report = dict(context["data_report"] or {})
        found = audit(task, result, report, self.thresholds)
        board = self.blackboard if self.blackboard is not None else state.get("blackboard")
        if board is not None and result.get("experiment") and found.score is not None:
            check_speed_variant(found, task, self.board(state), str(result["experiment"]))
        return {
            "experiment": result.get("experiment"), "reason": result.get("reason"), "metric": task.metric,
            "higher_is_better": task.metric_info.higher_is_better, "reported": found.reported, "score": found.score,
            "folds": found.folds, "checks": found.checks, "failures": found.failures, "warnings": found.warnings,
            "metrics": found.metrics, "artifacts": found.artifacts,
            "leakage_suspects": report.get("leakage_suspects") or [],
            "findings": [finding_line(f)[1] for f in result.get("findings") or []],
            "wall_time": result.get("wall_time"), "peak_memory": result.get("peak_memory"),
            "traceback": _traceback(result) if result.get("reason") not in (None, "ok") else "",
        }

    def expert(self, context: Mapping[str, Any]) -> Review:
        failures, warnings = list(context["failures"]), list(context["warnings"])
        failed = [name for name, value in context["checks"].items() if value.startswith("fail")]
        if failed:
            rationale = f"rejected: {', '.join(failed)} failed"
        elif warnings:
            rationale = f"accepted with {len(warnings)} warning(s); the CV was recomputed and the predictions are the model's"
        else:
            rationale = "accepted: every check passed; the CV was recomputed and the predictions are the model's"
        return Review(rationale=rationale, accepted=not failures, score=context["score"],
                      issues=failures + [f"warning: {w}" for w in warnings], checks=dict(context["checks"]))

    def recipients(self, decision: Decision) -> list[str]:
        return ["*"] if isinstance(decision, Review) and decision.accepted else ["modeler", "planner"]

    def act(self, decision: Decision, context: Mapping[str, Any], blackboard: Blackboard) -> dict[str, Any]:
        assert isinstance(decision, Review)
        review = decision.model_copy(update={"score": context["score"], "checks": {**decision.checks, **context["checks"]}})
        failures = list(context["failures"])
        if review.accepted and failures:
            # A chat brain may reject what the checks passed, never accept what they failed.
            review = review.model_copy(update={"accepted": False,
                                               "issues": failures + [i for i in review.issues if i not in failures]})
            blackboard.post(Message(content=f"reviewer: overruled the brain's acceptance: {failures[0]}",
                                    sent_from=self.profile, send_to=["modeler", "planner"], cause_by="reviewer.override",
                                    payload=review.model_dump(mode="json"), payload_type="Review"))
        if not review.accepted and not review.issues:
            review = review.model_copy(update={"issues": [review.rationale or "rejected without a stated reason"]})
        exp_id = context.get("experiment")
        if exp_id and blackboard.find_experiment(str(exp_id)) is not None:
            fields: dict[str, Any] = {"status": "done" if review.accepted else "failed", "score": review.score,
                                      "cv_folds": list(context["folds"]), "metrics": dict(context["metrics"]),
                                      "artifacts": dict(context["artifacts"]),
                                      "error": None if review.accepted else "; ".join(review.issues)
                                      + (f"\n--- stderr, last lines ---\n{context['traceback']}"
                                         if context.get("traceback") else "")}
            for key in ("wall_time", "peak_memory"):
                if isinstance(context.get(key), int | float):
                    fields[key] = context[key]
            blackboard.update_experiment(str(exp_id), **fields)
        return {"review": {**review.model_dump(mode="json"), "experiment": exp_id}}

    @staticmethod
    def example_state(workdir: Any) -> dict[str, Any]:
        """A state `check_role` can run the reviewer on: a tiny task and the files an honest experiment leaves."""
        path = tiny_task(workdir)
        task = Task.load(path)
        folder = Path(workdir) / "experiment"
        folder.mkdir(parents=True, exist_ok=True)
        train = pl.read_csv(task.path("data/train.csv"))
        test = pl.read_csv(task.path("data/test.csv"))

        def model(frame: pl.DataFrame) -> np.ndarray:  # a fixed "fitted" score: mostly x1, some noise from the id
            x1, ids = frame["x1"].to_numpy(), frame["id"].to_numpy()
            return np.clip(0.6 * x1 / 6 + 0.4 * ((ids * 7) % 10) / 10, 0.01, 0.99)

        p_train, p_test = model(train), model(test)
        y = train["y"].to_numpy().astype(str)
        metric = task.metric_info
        folds = [metric.score(y[train["id"].to_numpy() % 5 == k], p_train[train["id"].to_numpy() % 5 == k], task.classes)
                 for k in range(5)]
        cv = metric.score(y, p_train, task.classes)
        pl.DataFrame({"id": train["id"], "0": 1 - p_train, "1": p_train}).write_csv(folder / "oof.csv")
        pl.DataFrame({"id": test["id"], "0": 1 - p_test, "1": p_test}).write_csv(folder / "test_pred.csv")
        pl.DataFrame({"id": test["id"], "y": p_test}).write_csv(folder / "predictions.csv")
        (folder / "metrics.json").write_text(json.dumps(
            {"metric": task.metric, "cv": cv, "cv_mean": float(np.mean(folds)), "cv_std": float(np.std(folds)),
             "folds": folds, "train_score": min(1.0, cv + 0.01), "higher_is_better": True, "n_train": train.height}))
        return {"task": str(path),
                "result": {"experiment": "example", "workdir": str(folder), "reason": "ok", "detail": "",
                           "stderr_tail": "", "findings": []},
                "data_report": {"leakage_suspects": [], "drop_columns": ["id"]}}
