"""The modeler: turns a search step (parent + one new insight) into an experiment script on the blackboard.

The offline expert composes the script from the pipeline catalogue
(`crew.tools.pipelines`): the parent's design plus one insight, rendered as a
standalone script. An LLM brain may instead return the whole script in
`code`; either way the experiment lands on the blackboard as `proposed`, and
code identical to a finished experiment is not run again (the cache).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from crew import Blackboard, Decision, Experiment, Role, Task
from crew.roles._util import as_task, tiny_task
from crew.tools.pipelines import FEATURES, MODELS, TaskInfo, default_params, render, spec_from_report

__all__ = ["IMPROVEMENTS", "Design", "Modeler", "stage_of"]

IMPROVEMENTS = ("tune", "more_estimators", "regularize", "missing_indicators", "seed_bag", *FEATURES)
"""Insights the expert knows how to add to a parent's design."""

_BOOSTERS = ("lightgbm", "xgboost", "hist_gradient_boosting")
_FORESTS = ("random_forest", "extra_trees")


def stage_of(insight: str) -> str:
    """The SELA stage an insight belongs to."""
    if insight in FEATURES:
        return "feature_engineering"
    if insight in ("missing_indicators", "scale_numeric", "one_hot_low_cardinality", "ordinal_high_cardinality",
                   "drop_leakage_suspects", "impute_median"):
        return "preprocessing"
    if insight in ("tune", "more_estimators", "regularize", "seed_bag", "debug") or insight in MODELS:
        return "model"
    return "evaluation"


class Design(Decision):
    """One experiment: the model family and its settings, the stages' insights, and what is new in it."""

    model: str = Field(description=f"model family, one of {', '.join(MODELS)}")
    params: dict[str, Any] = Field(default_factory=dict)
    preprocessing: list[str] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)
    folds: int = Field(default=5, ge=2, le=20)
    tune_trials: int = Field(default=0, ge=0)
    tune_timeout: float = Field(default=0.0, ge=0)
    subsample: int | None = None
    seed: int = 0
    insight: str = Field(description="the one new idea this experiment tests, relative to its parent")
    code: str | None = Field(default=None, description="a complete experiment script; leave empty to have it "
                                                       "composed from the pipeline catalogue")

    def summary(self) -> str:
        return f"modeler: {self.model} + {self.insight}" + (" (own code)" if self.code else "")


class Modeler(Role):
    """Reads `task`, `data_report`, `plan` and `step` (phase, parent, model, insight); writes `proposal`."""

    profile: ClassVar[str] = "modeler"
    goal: ClassVar[str] = ("Write the next experiment: the parent's pipeline plus exactly one new insight, as a "
                           "standalone script that cross-validates and writes metrics.json, oof.csv and predictions.csv.")
    watches: ClassVar[tuple[str, ...]] = ("planner.decide", "critic.decide", "reviewer.decide")
    decision: ClassVar[type[Decision]] = Design
    reads: ClassVar[tuple[str, ...]] = ("task", "data_report", "plan", "step")
    writes: ClassVar[tuple[str, ...]] = ("proposal",)
    prompt: ClassVar[str] = (
        "Task: {task}\n\nData report: {data_report}\n\nThis step: {step}\n\nThe parent experiment (build on it): "
        "{parent}\n\nDesign the experiment: the parent's settings plus the step's insight. Leave `code` empty to have "
        "the catalogue render it, or write a complete script that reads $CREW_DATA and writes metrics.json "
        "(metric, cv, cv_std, folds), oof.csv and predictions.csv in the working folder."
    )

    def context(self, state: Mapping[str, Any]) -> dict[str, Any]:
        context = super().context(state)
        task = as_task(context["task"])
        step = dict(context["step"])
        parent = None
        board = self.blackboard if self.blackboard is not None else state.get("blackboard")
        if step.get("parent") and board is not None:
            found = self.board(state).experiment(step["parent"])
            parent = {"id": found.id, "spec": found.spec, "insights": found.insights, "score": found.score,
                      "status": found.status, "error": (found.error or "")[-800:]}
        return {"task": task.summary(), "task_object": task, "data_report": context["data_report"],
                "plan": context["plan"], "step": step, "parent": parent}

    def expert(self, context: Mapping[str, Any]) -> Design:
        step, plan, task = context["step"], context["plan"], context["task_object"]
        rows = task.shapes.get("train", (0, 0))[0]
        regression = task.target_type == "regression"
        parent = context["parent"]
        phase, insight = step.get("phase", "draft"), step.get("insight")
        if parent is None or phase in ("baseline", "draft"):
            model = step.get("model") or "linear"
            preprocessing = [p for p in plan.get("search_space", {}).get("preprocessing", [])
                             if p in ("impute_median", "one_hot_low_cardinality", "ordinal_high_cardinality",
                                      "drop_leakage_suspects")]
            return Design(rationale=f"{phase}: {model} with default settings", model=model,
                          params=default_params(model, rows=rows, regression=regression),
                          preprocessing=preprocessing, folds=int(plan.get("cv_folds", 5)),
                          seed=int(step.get("seed", 0)), insight=insight or model)
        spec = dict(parent["spec"])
        design = Design(rationale="", model=spec["model"], params=dict(spec.get("params", {})),
                        preprocessing=list(spec.get("preprocessing", [])), features=list(spec.get("features", [])),
                        folds=int(spec.get("folds", plan.get("cv_folds", 5))), seed=int(spec.get("seed", 0)),
                        subsample=spec.get("subsample"), insight=insight or "seed_bag")
        if phase == "debug":
            return self._debug(design, parent, rows, regression)
        return self._improve(design, rows)

    @staticmethod
    def _improve(design: Design, rows: int) -> Design:
        insight, params, model = design.insight, design.params, design.model
        if insight in FEATURES and insight not in design.features:
            design.features.append(insight)
        elif insight == "missing_indicators" and insight not in design.preprocessing:
            design.preprocessing.append(insight)
        elif insight == "tune":
            design.tune_trials = 40 if rows < 20_000 else 15
        elif insight == "more_estimators":
            for key in ("n_estimators", "max_iter"):
                if key in params:
                    params[key] = int(params[key] * 2)
            if "learning_rate" in params:
                params["learning_rate"] = round(params["learning_rate"] / 2, 5)
        elif insight == "regularize":
            if model in ("lightgbm",):
                params.update(num_leaves=max(4, params.get("num_leaves", 31) // 2),
                              min_child_samples=params.get("min_child_samples", 20) * 2,
                              reg_lambda=max(1.0, params.get("reg_lambda", 0.0) * 4))
            elif model == "xgboost":
                params.update(max_depth=max(2, params.get("max_depth", 6) - 2),
                              min_child_weight=params.get("min_child_weight", 1.0) * 4)
            elif model == "hist_gradient_boosting":
                params.update(max_leaf_nodes=max(4, params.get("max_leaf_nodes", 31) // 2),
                              l2_regularization=max(1.0, params.get("l2_regularization", 0.0) * 4))
            elif model in _FORESTS:
                params["min_samples_leaf"] = max(3, params.get("min_samples_leaf", 1) * 3)
            elif model == "linear":
                for key in ("C",):
                    if key in params:
                        params[key] = params[key] / 4
                if "alpha" in params:
                    params["alpha"] = params["alpha"] * 4
            elif model == "knn":
                params["n_neighbors"] = params.get("n_neighbors", 15) * 2
            elif model == "svm":
                params["C"] = params.get("C", 1.0) / 4
        else:  # seed_bag and anything unknown: the same design on another seed, for the ensemble's diversity
            design.seed += 1
        design.rationale = f"improve {model}: add {insight}"
        return design

    @staticmethod
    def _debug(design: Design, parent: Mapping[str, Any], rows: int, regression: bool) -> Design:
        """Fix what the parent died of: too slow or too big -> less work; an error -> the plain design."""
        error = parent.get("error") or ""
        if any(word in error for word in ("wall-time", "memory", "timeout")):
            design.subsample = max(2_000, (design.subsample or rows) // 2)
            for key in ("n_estimators", "max_iter"):
                if key in design.params:
                    design.params[key] = max(50, design.params[key] // 2)
            design.tune_trials = 0
            design.rationale = "debug: the parent ran out of time or memory; halve rows and estimators"
        else:
            design.features = []
            design.params = default_params(design.model, rows=rows, regression=regression)
            design.tune_trials = 0
            design.rationale = "debug: the parent failed; back to the family's plain design"
        design.insight = "debug"
        return design

    def act(self, decision: Decision, context: Mapping[str, Any], blackboard: Blackboard) -> dict[str, Any]:
        assert isinstance(decision, Design)
        task: Task = context["task_object"]
        step = context["step"]
        report = context["data_report"]
        spec = spec_from_report(decision.model, report, params=decision.params, preprocessing=decision.preprocessing,
                                features=decision.features, folds=decision.folds, seed=decision.seed,
                                subsample=decision.subsample, tune_trials=decision.tune_trials,
                                tune_timeout=decision.tune_timeout, threads=int(step.get("threads", 1))) \
            if decision.model in MODELS else None
        code = decision.code or (render(spec, TaskInfo.from_task(task)) if spec else "")
        parent = context["parent"]
        insights = [*(parent["insights"] if parent else []), decision.insight]
        cached = blackboard.find_by_code_hash(Experiment(code=code).code_hash) if code else None
        experiment = Experiment(parent=step.get("parent"), stage=stage_of(decision.insight), insights=insights,
                                code=code, spec=spec.model_dump(mode="json") if spec else {"model": decision.model})
        if cached is not None:
            experiment = experiment.model_copy(update={
                "status": "cached", "score": cached.score, "metrics": cached.metrics, "cv_folds": cached.cv_folds,
                "artifacts": cached.artifacts, "wall_time": 0.0, "error": f"same code as {cached.id}; not rerun"})
        blackboard.add_experiment(experiment)
        return {"proposal": {"id": experiment.id, "code": code, "insights": insights, "parent": step.get("parent"),
                             "phase": step.get("phase"), "threads": int(step.get("threads", 1)),
                             "gpus": int(step.get("gpus", 0)), "cached_from": cached.id if cached else None}}

    @staticmethod
    def example_state(workdir: Any) -> dict[str, Any]:
        """A state `check_role` can run the modeler on: a tiny task, its report and a one-step plan."""
        path = tiny_task(workdir)
        report = {"numeric_columns": ["x1", "x2"], "categorical_columns": ["colour"], "drop_columns": []}
        plan = {"cv_folds": 3, "search_space": {"preprocessing": ["impute_median", "one_hot_low_cardinality"]}}
        return {"task": str(path), "data_report": report, "plan": plan,
                "step": {"phase": "baseline", "parent": None, "model": "linear", "insight": "linear"}}
