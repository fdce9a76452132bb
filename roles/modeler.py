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

from crew import Blackboard, Decision, Experiment, ExpertBrain, Message, Role, Task, best_first, positive_label
from crew.roles._util import add_proposed, as_task
from crew.testing import tiny_task
from crew.tools.catalogue import FAMILIES, FEATURES, INSIGHTS, applies, debug_depth, default_params, stage_of
from crew.tools.pipelines import TUNE_ROWS, TaskInfo, render, spec_from_report
from crew.tools.sizing import scale
from crew.tools.speed import ran_params

__all__ = ["Design", "Modeler"]

def _memory(experiments: list[Experiment], higher_is_better: bool, size: int) -> list[str]:
    """One line per experiment: the best finished ones, then the latest failures with the start of their error."""
    done = [e for e in experiments if e.status in ("done", "cached") and e.score is not None]
    done = best_first(done, higher_is_better)
    failed = [e for e in experiments if e.status in ("failed", "rejected")][-max(1, size // 3):]
    lines = [f"{e.id} {'+'.join(e.insights)}: cv {e.score:.5g}" for e in done[: size - len(failed)]]
    lines += [f"{e.id} {'+'.join(e.insights)}: {e.status}: {(e.error or '').splitlines()[0][:120] if e.error else ''}"
              for e in failed]
    return lines


def _contract(template: str, task: Task) -> str:
    classes = task.classes
    if task.target_type == "regression":
        columns, submission = f"a {task.target!r} column of predicted values", f"columns {task.submission_columns()}"
    else:
        columns = f"one probability column per class, named {classes}"
        submission = f"columns {task.submission_columns()}" + (
            f", where {task.target!r} holds the positive class's probability ({positive_label(classes)!r})"
            if task.target_type == "binary" and task.metric_info.submission == "proba" else "")
    assert task.data is not None
    return template.format(train=task.data.train, test=task.data.test, target=task.target, id=task.id_column,
                           metric=task.metric, direction="higher" if task.metric_info.higher_is_better else "lower",
                           classes=classes or "(regression)", submission=submission, prediction_columns=columns)


class Design(Decision):
    """One experiment: the model family and its settings, the stages' insights, and what is new in it."""

    model: str = Field(description=f"model family, one of {', '.join(FAMILIES)}")
    params: dict[str, Any] = Field(default_factory=dict)
    preprocessing: list[str] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)
    folds: int = Field(default=5, ge=2, le=20)
    repeats: int = Field(default=1, ge=1, le=10)
    tune_trials: int = Field(default=0, ge=0)
    tune_timeout: float = Field(default=0.0, ge=0)
    bags: int = Field(default=1, ge=1, description="models per fold on consecutive seeds, averaged")
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
    decision: ClassVar[type[Decision]] = Design
    reads: ClassVar[tuple[str, ...]] = ("task", "data_report", "plan", "step")
    writes: ClassVar[tuple[str, ...]] = ("proposal",)
    prompt: ClassVar[str] = (
        "Task: {task}\n\nData report: {data_report}\n\nWhat was tried so far (best first, then recent failures): "
        "{memory}\n\nThis step: {step}\n\nThe parent experiment (build on it): {parent}\n\nThe parent's code:\n"
        "{parent_code}\n\n{contract}\n\nDesign the experiment: the parent's settings plus the step's insight "
        "(phase `debug`: fix what the parent's error shows, changing nothing else). Either leave `code` empty and "
        "set model (one of {models}), params, preprocessing, features (from {features}) and tune_trials to have "
        "the catalogue render it, or put a complete script in `code`."
    )
    contract: ClassVar[str] = (
        "The experiment contract, for a script you write in `code`: it runs alone with python, in its own working "
        "folder, without network, shell or package installs, and reads only the task's data: train at "
        "$CREW_DATA/{train} and test at $CREW_DATA/{test} (csv or parquet). Target {target!r}; id column {id!r}; "
        "metric {metric} ({direction} is better); classes in this order: {classes}. It cross-validates and writes "
        "into the working folder: metrics.json ({{\"metric\": ..., \"cv\": overall CV score, \"cv_std\": ..., "
        "\"folds\": [per-fold scores], \"train_score\": score on training rows}}; for a label metric, labels may "
        "be the argmax of probabilities x per-class weights fitted on the out-of-fold predictions: then add "
        "\"class_weights\": [one positive number per class]); oof.csv (out-of-fold "
        "predictions, one row per train row); test_pred.csv (the fitted models' test predictions); predictions.csv "
        "(the submission: {submission}). oof.csv and test_pred.csv carry the id column {id!r} (or a 0-based `row` "
        "column) and {prediction_columns}. The reviewer recomputes the CV from oof.csv and checks predictions.csv "
        "against test_pred.csv: hand-written or copied predictions are rejected. Use $OMP_NUM_THREADS threads."
    )
    prompt_limits: ClassVar[Mapping[str, int]] = {"parent_code": 16_000}
    """A script is longer than the other fields (capped at 6,000 characters each)."""
    memory_size: ClassVar[int] = 12

    def context(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """Lean, as AIDE's: the task, the report, the step, the parent (with its code and trimmed error) and a
        capped memory of what was tried; never the whole tree."""
        context = super().context(state)
        task = as_task(context["task"])
        step = dict(context["step"])
        parent, parent_code, memory, depth = None, "(none: this is a draft)", [], 0
        board = self.blackboard if self.blackboard is not None else state.get("blackboard")
        if board is not None:
            blackboard = self.board(state)
            experiments = blackboard.experiments()
            if step.get("parent"):
                found = blackboard.experiment(step["parent"])
                parent = {"id": found.id, "spec": found.spec, "insights": found.insights, "score": found.score,
                          "status": found.status, "error": (found.error or "")[-2000:],
                          "params": ran_params(found.spec, found.metrics),
                          "timings": dict(found.metrics.get("timings") or {}), "wall_time": found.wall_time}
                parent_code = found.code
                depth = debug_depth(found, {e.id: e for e in experiments})
            memory = _memory(experiments, task.metric_info.higher_is_better, self.memory_size)
        return {"task": task.summary(), "task_object": task, "data_report": context["data_report"],
                "plan": context["plan"], "step": step, "parent": parent, "parent_code": parent_code,
                "memory": memory, "debug_depth": depth, "contract": _contract(self.contract, task),
                "models": ", ".join(FAMILIES), "features": ", ".join(FEATURES)}

    def decide(self, context: Mapping[str, Any], *, blackboard: Blackboard | None = None) -> Decision:
        """A step marked `expert` (the debug depth of an LLM's own code is spent) is decided by the expert policy."""
        if context["step"].get("expert") and self.brain is not None and not isinstance(self.brain, ExpertBrain):
            if blackboard is not None:
                blackboard.post(Message(content=f"debugging {context['step'].get('parent')} reached its depth; the "
                                                "expert's experiment takes its place", sent_from=self.profile,
                                        send_to=[self.profile], cause_by="brain.fallback",
                                        payload={"reason": "debug_depth", "parent": context["step"].get("parent")}))
            return ExpertBrain().decide(self, context, blackboard=blackboard)
        return super().decide(context, blackboard=blackboard)

    def expert(self, context: Mapping[str, Any]) -> Design:
        step, plan, task = context["step"], context["plan"], context["task_object"]
        rows = task.shapes.get("train", (0, 0))[0]
        regression = task.target_type == "regression"
        parent = context["parent"]
        phase, insight = step.get("phase", "draft"), step.get("insight")
        if parent is None or phase in ("baseline", "draft"):
            model = step.get("model") or "linear"
            space = plan.get("search_space", {})
            preprocessing = [p for p in space.get("preprocessing", []) if p in INSIGHTS and INSIGHTS[p].draft]
            features = [f for f in space.get("feature_engineering", []) if f in INSIGHTS and INSIGHTS[f].draft
                        and applies(f, model, plan)]
            return Design(rationale=f"{phase}: {model} with default settings", model=model,
                          params=default_params(model, rows=rows, regression=regression,
                                                text="text_ngrams" in features),
                          preprocessing=preprocessing, features=features, folds=int(plan.get("cv_folds", 5)),
                          repeats=int(plan.get("cv_repeats", 1)),
                          seed=int(step.get("seed", 0)), insight=insight or model)
        spec = dict(parent["spec"])
        if spec.get("model") not in FAMILIES:  # a chat model's own script: the expert falls back to a catalogue family
            fallback = step.get("model") if step.get("model") in FAMILIES else "lightgbm"
            spec = {"model": fallback, "params": default_params(fallback, rows=rows, regression=regression)}
        own = spec.get("model") == parent["spec"].get("model")  # not the fallback family: the parent's tuning applies
        params = parent.get("params") if own and parent.get("params") else spec.get("params", {})
        design = Design(rationale="", model=spec["model"], params=dict(params),
                        preprocessing=list(spec.get("preprocessing", [])), features=list(spec.get("features", [])),
                        folds=int(spec.get("folds", plan.get("cv_folds", 5))),
                        repeats=int(spec.get("repeats", plan.get("cv_repeats", 1))), seed=int(spec.get("seed", 0)),
                        subsample=spec.get("subsample"), bags=int(spec.get("bags", 1)), insight=insight or "seed_bag")
        if phase == "debug":
            return self._debug(design, parent, rows, regression)
        return self._improve(design, rows, parent, step.get("share"), regression)

    @staticmethod
    def _improve(design: Design, rows: int, parent: Mapping[str, Any], share: float | None,
                 regression: bool = False) -> Design:
        """The parent's design plus the insight. Tuning and seed bags grow with the step's `share` of the run
        (`crew.tools.sizing`): when many seconds are left per remaining experiment, one experiment does more."""
        insight, params, model = design.insight, design.params, design.model
        timings = parent.get("timings") or {}
        cv_seconds = (float(timings.get("cross_validate") or parent.get("wall_time") or 0.0)
                      / max(1, design.bags) / max(1, design.repeats))  # one pass over the folds, one seed
        if insight in FEATURES and insight not in design.features:
            design.features.append(insight)
        elif insight in ("missing_indicators", "native_categories", "drop_leakage_suspects") \
                and insight not in design.preprocessing:
            design.preprocessing.append(insight)
        elif insight == "tune":
            trials = 40 if rows < 20_000 else 15
            # a trial: 3 folds, one seed, on at most TUNE_ROWS rows
            trial_seconds = cv_seconds * min(design.folds, 3) / design.folds * min(1.0, TUNE_ROWS / max(1, rows))
            factor = scale(share, trials * trial_seconds + cv_seconds * design.bags * design.repeats)
            design.tune_trials = trials * factor
            if factor > 1:  # sized from measured times: a time box keeps a misjudged size inside the share
                design.tune_timeout = round(0.8 * float(share or 0.0), 1)
        elif insight.startswith("portfolio_") and insight.removeprefix("portfolio_").isdigit():
            index = int(insight.removeprefix("portfolio_")) - 1
            design.params = FAMILIES[model].alternative(index, rows=rows, regression=regression)
        elif insight == "more_estimators":
            design.params = FAMILIES[model].more_estimators(params)
        elif insight == "regularize":
            design.params = FAMILIES[model].regularize(params)
        elif insight == "seed_bag":  # several seeds per fold, averaged: less variance on the same folds
            design.bags = design.bags * max(2, scale(share, cv_seconds * design.bags * design.repeats, headroom=0.8))
        else:  # anything unknown: the same design on another seed, for the ensemble's diversity
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
            plain = default_params(design.model, rows=rows, regression=regression)
            kept = [f for f in design.features if f in INSIGHTS and INSIGHTS[f].draft]  # what every draft has
            if design.features == kept and design.params == plain and not design.tune_trials:
                # The plain design is what failed: running it again would fail again. Change the family.
                design.model = "hist_gradient_boosting" if design.model == "linear" else "linear"
                design.params = default_params(design.model, rows=rows, regression=regression)
                design.bags = 1
                design.rationale = (f"debug: the parent's plain {parent['spec'].get('model')} design failed; "
                                    f"try {design.model} on the same data")
            else:
                design.features = kept
                design.params = plain
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
                                features=decision.features, folds=decision.folds, repeats=decision.repeats,
                                seed=decision.seed,
                                subsample=decision.subsample, tune_trials=decision.tune_trials,
                                tune_timeout=decision.tune_timeout, bags=decision.bags,
                                threads=int(step.get("threads", 1))) \
            if decision.model in FAMILIES else None
        code = decision.code or (render(spec, TaskInfo.from_task(task)) if spec else "")
        parent = context["parent"]
        insights = [*(parent["insights"] if parent else []), decision.insight]
        recorded = spec.model_dump(mode="json") if spec else {"model": decision.model}
        if decision.code:  # a script of the brain's own: the strategy gives its failures to the expert after a while
            recorded["own_code"] = True
        if step.get("insight"):  # the step it answers, whatever the brain named its insight (the opening tracks it)
            recorded["step"] = step["insight"]
        experiment = Experiment(parent=step.get("parent"), stage=stage_of(decision.insight), insights=insights,
                                code=code, spec=recorded)
        cached = add_proposed(blackboard, experiment)
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
