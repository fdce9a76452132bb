"""The planner: turns task, data report and budget into a search space of insights by stage and a schedule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from crew import Blackboard, Decision, Role
from crew.roles._util import as_task
from crew.tools.catalogue import FAMILIES, INSIGHTS

__all__ = ["STAGES", "Plan", "PlanStep", "Planner"]

STAGES = ("eda", "preprocessing", "feature_engineering", "model", "evaluation")
"""SELA's stages; every insight belongs to one."""


class PlanStep(BaseModel):
    phase: Literal["baseline", "draft", "improve", "ensemble"]
    insights: list[str] = Field(description="insights (from the search space) this step adds")
    share: float = Field(ge=0, le=1, description="fraction of the wall-time budget for this step")


class Plan(Decision):
    """Where to search and in what order: a fast valid baseline first, then diverse drafts, then refinement."""

    search_space: dict[str, list[str]] = Field(description="stage -> candidate insights")
    schedule: list[PlanStep]
    cv_folds: int = Field(ge=2, le=20)
    cv_repeats: int = Field(default=1, ge=1, le=10, description="times the folds are redrawn; more repeats make "
                                                                  "small-data scores less noisy")

    def summary(self) -> str:
        phases = " -> ".join(f"{s.phase}({', '.join(s.insights) or '-'})" for s in self.schedule)
        repeats = f" x{self.cv_repeats}" if self.cv_repeats > 1 else ""
        return f"plan: {self.cv_folds}-fold CV{repeats}; {phases}"


class Planner(Role):
    """Reads `task` and `data_report`; writes `plan`."""

    profile: ClassVar[str] = "planner"
    goal: ClassVar[str] = ("Lay out the search: which insights to try at each stage (preprocessing, features, model, "
                           "evaluation) and a schedule that secures a valid submission first and spends the budget well.")
    decision: ClassVar[type[Decision]] = Plan
    reads: ClassVar[tuple[str, ...]] = ("task", "data_report")
    writes: ClassVar[tuple[str, ...]] = ("plan",)
    prompt: ClassVar[str] = (
        "Task: {task}\n\nThe analyst's data report: {data_report}\n\nStages: eda, preprocessing, feature_engineering, "
        "model, evaluation. Propose insights per stage and a schedule (baseline, draft, improve, ensemble) whose "
        "shares sum to at most 1."
    )

    def context(self, state: Mapping[str, Any]) -> dict[str, Any]:
        context = super().context(state)
        task = as_task(context["task"])
        info = {**task.summary(), "rows": task.shapes.get("train", (0, 0))[0], "target_type": task.target_type,
                "n_classes": len(task.classes),
                "wall_time_s": task.budget.wall_time, "experiment_time_s": task.budget.experiment_time}
        return {"task": info, "data_report": context["data_report"]}

    def expert(self, context: Mapping[str, Any]) -> Plan:
        task, report = context["task"], context["data_report"]
        rows = int(task["rows"])
        classification = task["target_type"] != "regression"
        suggested = [name for name, insight in INSIGHTS.items() if insight.suggest and insight.suggest(report)
                     and (insight.target_types is None or task["target_type"] in insight.target_types)]
        preprocessing = [name for name in suggested if INSIGHTS[name].stage == "preprocessing"]
        features = ["none", *(name for name in suggested if INSIGHTS[name].stage == "feature_engineering")]
        linear = "linear"
        models = [name for name, family in FAMILIES.items() if family.drafted(rows, int(task.get("n_classes", 0)))]
        folds = 10 if rows < 1_000 else 5 if rows < 100_000 else 3
        # On small data one split's CV is noisy enough to crown the wrong "best"; redrawn splits cost little there.
        repeats = 3 if rows < 2_000 else 2 if rows < 10_000 else 1
        evaluation = [f"{'stratified_' if classification else ''}kfold_{folds}" + (f"_x{repeats}" if repeats > 1 else "")]
        baseline = "lightgbm" if rows > 50_000 else linear
        schedule = [
            PlanStep(phase="baseline", insights=[baseline], share=0.05),
            PlanStep(phase="draft", insights=[m for m in models if m != baseline], share=0.40),
            PlanStep(phase="improve", insights=["tune_best_three", *features[1:]], share=0.40),
            PlanStep(phase="ensemble", insights=["weighted_blend_of_top_oof"], share=0.10),
        ]
        return Plan(
            rationale=f"{rows} rows, {task['target_type']} target: {folds}-fold CV"
                      + (f" repeated {repeats} times" if repeats > 1 else "") + f"; a {baseline} baseline first, "
                      f"then {len(models) - 1} diverse drafts, tuning and a blend",
            search_space={"eda": ["analyst_profile"], "preprocessing": preprocessing, "feature_engineering": features,
                          "model": models, "evaluation": evaluation},
            schedule=schedule,
            cv_folds=folds,
            cv_repeats=repeats,
        )

    def act(self, decision: Decision, context: Mapping[str, Any], blackboard: Blackboard) -> dict[str, Any]:
        return {"plan": decision.model_dump(mode="json")}
