"""The critic: vets every launch against the budget (time, memory, GPUs) and the rules before it happens.

It estimates the experiment's wall time and peak memory (`crew.tools.cost`,
learning from what finished on the blackboard), reads the code's syntax tree
for rule breaks (`crew.tools.codecheck`), and then approves, approves a
cheaper variant it proposes (fewer tuning trials, bagged seeds, CV repeats, folds or estimators, a row
subsample; a network's epochs, image size or, to fit its GPU slot, batch), or rejects with a reason the proposing role receives.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from crew import Blackboard, Decision, Message, Role, Task
from crew.roles._util import as_task
from crew.testing import tiny_task
from crew.tools.codecheck import Finding, check_code, check_kernel
from crew.tools.cost import (
    CostModel,
    Estimate,
    Workload,
    deep_units,
    history,
    read_media_workload,
    read_normalizer_workload,
    read_workload,
)
from crew.tools.knobs import apply_changes, exposed
from crew.tools.media import media_store_cached
from crew.tools.pipelines import PipelineSpec, cached_stages, render
from crew.tools.profile import text_chars_per_row
from crew.tools.scorer import estimate_run

__all__ = ["Critic", "Verdict", "changed_workload"]

_SAFETY = 0.8  # approve only what is expected to finish in 80% of the time it may take
_MIN_FOLDS, _MIN_ESTIMATORS, _MIN_ROWS = 3, 50, 2_000
_MIN_EPOCHS, _MIN_IMAGE, _MIN_BATCH = 3, 32, 8  # a network trained less, on smaller images or batches, is not worth it


def changed_workload(work: Workload, changes: Mapping[str, int]) -> Workload:
    """The workload a variant runs: each knob is the Workload field of the same name."""
    return work.model_copy(update=dict(changes))


class Verdict(Decision):
    """The critic's call on one proposed launch."""

    verdict: Literal["approve", "approve_variant", "reject"]
    changes: dict[str, int] = Field(default_factory=dict,
                                    description="for approve_variant: knob (tune_trials, bags, repeats, folds, estimators, "
                                                "subsample) "
                                                "-> new value")
    reason: str = Field(default="", description="what the proposer must know; required for a variant or a rejection")

    def summary(self) -> str:
        changes = ", ".join(f"{k}={v}" for k, v in self.changes.items())
        return f"critic: {self.verdict}" + (f" ({changes})" if changes else "") + (f": {self.reason}" if self.reason else "")


class Critic(Role):
    """Reads `task`, `proposal` (id, code, insights, gpus) and `remaining` (the budget left, less what the run
    keeps back to finish: the critic adds no reserve of its own); writes `verdict`."""

    profile: ClassVar[str] = "critic"
    goal: ClassVar[str] = ("Let nothing launch that the machine or the budget cannot hold, or that breaks the rules: "
                           "estimate time and memory, propose a cheaper variant when it will not fit, reject with a "
                           "reason otherwise.")
    decision: ClassVar[type[Decision]] = Verdict
    reads: ClassVar[tuple[str, ...]] = ("task", "proposal", "remaining")
    optional: ClassVar[tuple[str, ...]] = ("stage_cache",)
    writes: ClassVar[tuple[str, ...]] = ("verdict",)
    prompt: ClassVar[str] = (
        "A proposed experiment: {summary}\n\nCost estimate: {estimate}\n\nBudget left: {remaining}\n\n"
        "Rule findings from the code's syntax tree: {findings}\n\nApprove it, approve a cheaper variant "
        "(changes: tune_trials, bags, repeats, folds, estimators, subsample -> new values) that fits in {allowed_seconds} seconds and "
        "{allowed_memory} bytes, or reject it with a reason (always reject blocking findings)."
    )

    def context(self, state: Mapping[str, Any]) -> dict[str, Any]:
        context = super().context(state)
        task = as_task(context["task"])
        proposal = dict(context["proposal"])
        remaining = dict(context["remaining"])
        board = self._history_board(state)
        if task.kind == "kernel":
            estimate, model, findings = self._kernel_cost(task, proposal, remaining, board)
        elif task.kind == "seq2seq":
            work = read_normalizer_workload(proposal.get("code", ""), rows=task.shapes.get("train", (0, 0))[0],
                                            test_rows=task.shapes.get("test", (0, 0))[0])
            model = CostModel(history=history(board) if board is not None else [])
            estimate = model.estimate(work)
            findings = check_code(proposal.get("code", ""), forbidden_paths=[str(p) for p in task.hidden])
        elif task.media:
            estimate, model, findings = self._media_cost(task, proposal, state.get("stage_cache"), board)
        else:
            estimate, model, findings = self._pipeline_cost(task, proposal, state.get("stage_cache"), board)
        wall_allowed = max(0.0, float(remaining.get("wall_time", 0.0))) * _SAFETY
        return {
            "summary": {"id": proposal.get("id"), "insights": proposal.get("insights", []),
                        "gpus": proposal.get("gpus", 0)},
            "proposal": proposal, "estimate": estimate, "cost_model": model,
            "findings": [f.model_dump() for f in findings], "remaining": remaining, "wall_allowed": wall_allowed,
            "allowed_seconds": min(float(remaining.get("experiment_time", 0.0)) * _SAFETY, wall_allowed),
            "allowed_memory": int(remaining.get("memory", 0)),
            # the GPU memory the largest free slot holds, for a launch that asks for a GPU (none said: no limit)
            "allowed_gpu_memory": int(remaining.get("gpu_memory") or 0) if proposal.get("gpus") else 0,
        }

    def _history_board(self, state: Mapping[str, Any]) -> Blackboard | None:
        """The board whose finished experiments calibrate the cost model: the constructor's, else the state's (a
        user graph may pass it either way), else none (priors only)."""
        if self.blackboard is None and state.get("blackboard") is None:
            return None
        return self.board(state)

    def _pipeline_cost(self, task: Task, proposal: dict[str, Any], stage_cache: str | None,
                       board: Blackboard | None) -> tuple[Estimate, CostModel, list[Finding]]:
        """A tabular experiment: the cost model's estimate of its workload (cached stages cost nothing), the rules."""
        rows, width = task.shapes.get("train", (0, 0))
        columns = max(1, width - 1 - (1 if task.id_column else 0))
        work = read_workload(proposal.get("code", ""), rows=rows, test_rows=task.shapes.get("test", (0, 0))[0],
                             columns=columns, classes=max(1, len(task.classes)),
                             threads=int(proposal.get("threads", 1)))
        if work.text_columns and (work.sparse_text or work.text_svd):
            work = work.model_copy(update={"text_chars_per_row": text_chars_per_row(task, work.text_columns)})
        cached = cached_stages(proposal.get("code", ""), stage_cache)
        if "tune" in cached:  # the tuned parameters will be loaded from the stage cache: no trials to pay for
            work = work.model_copy(update={"tune_trials": 0})
        if "features" in cached:  # text_tfidf's SVD is in the cached features
            work = work.model_copy(update={"text_svd": False})
        model = CostModel(history=history(board) if board is not None else [])
        estimate = model.estimate(work)
        if cached:
            estimate = estimate.model_copy(update={"basis": f"{estimate.basis}; cached stages: {', '.join(cached)}"})
        return estimate, model, check_code(proposal.get("code", ""), forbidden_paths=[str(p) for p in task.hidden])

    def _media_cost(self, task: Task, proposal: dict[str, Any], stage_cache: str | None,
                    board: Blackboard | None) -> tuple[Estimate, CostModel, list[Finding]]:
        """A media experiment: epochs x images x pixels on its device, at the per-image cost earlier experiments of
        the same network timed (their epochs) or the prior; decoding is free when a checked store is shared."""
        code = proposal.get("code", "")
        experiments = board.experiments() if board is not None else []
        work = read_media_workload(code, rows=task.shapes.get("train", (0, 0))[0],
                                   test_rows=task.shapes.get("test", (0, 0))[0], threads=int(proposal.get("threads", 1)),
                                   device="cuda" if proposal.get("gpus") else "cpu", units=deep_units(experiments))
        if stage_cache and media_store_cached(task, work.image_size, Path(stage_cache)):
            work = work.model_copy(update={"decode": False})
        model = CostModel(history=history(board) if board is not None else [])
        return model.estimate(work), model, check_code(code, forbidden_paths=[str(p) for p in task.hidden])

    def _kernel_cost(self, task: Task, proposal: dict[str, Any], remaining: dict[str, Any],
                     board: Blackboard | None) -> tuple[Estimate, CostModel, list[Finding]]:
        """A kernel candidate: a time priced from its parent's measured scorer run, and the scorer's rules."""
        runs, parent = [], None
        if board is not None:
            for exp in board.experiments():
                if exp.wall_time and exp.status in ("done", "failed"):
                    runs.append((float(exp.wall_time), exp.peak_memory))
                    if exp.id == proposal.get("parent"):
                        parent = (float(exp.wall_time), exp.peak_memory)
        estimate = estimate_run(runs, parent, experiment_time=float(remaining.get("experiment_time", 0.0)))
        findings = check_kernel(proposal.get("code", ""), scorer=str(task.score),
                                forbidden_paths=[str(p) for p in task.hidden])
        return estimate, CostModel(history=[]), findings

    def expert(self, context: Mapping[str, Any]) -> Verdict:
        blocking = [f for f in context["findings"] if f["blocking"]]
        if blocking:
            reasons = "; ".join(f"line {f['line']}: {f['rule']}: {f['message']}" for f in blocking)
            return Verdict(rationale="the code breaks the experiment rules", verdict="reject", reason=reasons)
        remaining = context["remaining"]
        gpus = int(context["summary"].get("gpus") or 0)
        if gpus > int(remaining.get("gpus", 0)):
            return Verdict(rationale="GPU request over budget", verdict="reject",
                           reason=f"asks for {gpus} GPU(s); the budget allows {remaining.get('gpus', 0)} per experiment")
        estimate: Estimate = context["estimate"]
        seconds_ok = estimate.seconds <= context["allowed_seconds"]
        memory_ok = estimate.memory <= context["allowed_memory"] and self._gpu_fits(estimate, context)
        if seconds_ok and memory_ok:
            return Verdict(rationale=f"fits: {estimate.seconds:.1f}s of {context['allowed_seconds']:.0f}s, "
                                     f"{estimate.memory / 1024**2:.0f} MiB of {context['allowed_memory'] / 1024**2:.0f} MiB",
                           verdict="approve")
        changes = self._cheaper(context)
        if changes is None and seconds_ok and estimate.memory <= context["allowed_memory"]:
            return Verdict(rationale="no variant fits the GPU", verdict="reject",
                           reason=f"needs about {estimate.gpu_memory / 1024**3:.2f} GiB of GPU memory; the largest free "
                                  f"slot holds {context['allowed_gpu_memory'] / 1024**3:.2f} GiB and no smaller batch "
                                  "or image size fits")
        if changes is None:
            return Verdict(rationale="no variant fits", verdict="reject",
                           reason=f"needs about {estimate.seconds:.0f}s and {estimate.memory / 1024**2:.0f} MiB; "
                                  f"{context['allowed_seconds']:.0f}s and {context['allowed_memory'] / 1024**2:.0f} MiB "
                                  "are available and no cheaper variant of this code fits")
        return Verdict(rationale=f"{estimate.seconds:.0f}s / {estimate.memory / 1024**2:.0f} MiB will not fit; "
                                 "a cheaper variant does", verdict="approve_variant", changes=changes,
                       reason="cut " + ", ".join(f"{k} to {v}" for k, v in changes.items()) + " to fit the budget")

    @staticmethod
    def _gpu_fits(estimate: Estimate, context: Mapping[str, Any]) -> bool:
        """Whether a launch that asks for a GPU fits the GPU memory of the largest free slot (no limit said: yes)."""
        allowed = int(context.get("allowed_gpu_memory") or 0)
        return not allowed or estimate.gpu_memory <= allowed

    @staticmethod
    def _cheaper(context: Mapping[str, Any]) -> dict[str, int] | None:
        """Give up tuning trials, bagged seeds, CV repeats, folds, estimators, then rows, until the estimate fits."""
        model: CostModel = context["cost_model"]
        work: Workload = context["estimate"].workload
        code = context["proposal"].get("code", "")
        knobs = exposed(code)
        allowed_s, allowed_m = context["allowed_seconds"], context["allowed_memory"]
        changes: dict[str, int] = {}

        def fits(candidate: dict[str, int]) -> bool:
            estimate = model.estimate(changed_workload(work, candidate))
            return estimate.seconds <= allowed_s and estimate.memory <= allowed_m \
                and Critic._gpu_fits(estimate, context)

        steps: list[tuple[str, list[int]]] = []
        if "tune_trials" in knobs and work.tune_trials:
            steps.append(("tune_trials", [max(0, work.tune_trials * k // 8) for k in range(7, -1, -1)]))
        if "bags" in knobs and work.bags > 1:
            steps.append(("bags", list(range(work.bags - 1, 0, -1))))
        if "repeats" in knobs and work.repeats > 1:
            steps.append(("repeats", list(range(work.repeats - 1, 0, -1))))
        if "folds" in knobs and work.folds > _MIN_FOLDS:
            steps.append(("folds", list(range(work.folds - 1, _MIN_FOLDS - 1, -1))))
        if "estimators" in knobs and work.estimators and work.estimators > _MIN_ESTIMATORS:
            steps.append(("estimators", [max(_MIN_ESTIMATORS, int(work.estimators * f)) for f in (0.75, 0.5, 0.3, 0.2)]))
        if "epochs" in knobs and work.epochs > _MIN_EPOCHS:
            steps.append(("epochs", list(range(work.epochs - 1, _MIN_EPOCHS - 1, -1))))
        if "batch" in knobs and work.batch > _MIN_BATCH and context.get("allowed_gpu_memory"):
            steps.append(("batch", [b for b in (work.batch // 2, work.batch // 4, work.batch // 8) if b >= _MIN_BATCH]))
        if "image_size" in knobs and work.image_size > _MIN_IMAGE:
            steps.append(("image_size", [s for s in range(work.image_size - 16, _MIN_IMAGE - 1, -16)]))
        if "subsample" in knobs and work.rows_per_fit > _MIN_ROWS:
            steps.append(("subsample", [max(_MIN_ROWS, int(work.rows_per_fit * f)) for f in (0.5, 0.25, 0.1, 0.05)]))
        for knob, values in steps:
            for value in values:
                changes[knob] = value
                if fits(changes):
                    return changes
        return None

    def recipients(self, decision: Decision) -> list[str]:
        return ["modeler"] if isinstance(decision, Verdict) and decision.verdict != "approve" else ["*"]

    def act(self, decision: Decision, context: Mapping[str, Any], blackboard: Blackboard) -> dict[str, Any]:
        assert isinstance(decision, Verdict)
        proposal = context["proposal"]
        code = proposal.get("code", "")
        estimate: Estimate = context["estimate"]
        verdict, reason = decision.verdict, decision.reason
        if verdict == "approve_variant":
            try:
                code = apply_changes(code, decision.changes)
                estimate = context["cost_model"].estimate(changed_workload(estimate.workload, decision.changes))
            except (ValueError, SyntaxError) as exc:
                verdict, reason = "reject", f"the proposed variant cannot be applied: {exc}"
            else:
                if estimate.seconds > context["allowed_seconds"] or estimate.memory > context["allowed_memory"] \
                        or not self._gpu_fits(estimate, context):
                    verdict, reason = "reject", (f"even the variant needs about {estimate.seconds:.0f}s and "
                                                 f"{estimate.memory / 1024**2:.0f} MiB")
        if verdict == "approve" and not (estimate.seconds <= context["allowed_seconds"]
                                         and estimate.memory <= context["allowed_memory"]):
            reason = (reason + "; " if reason else "") + "approved over the estimate (the sandbox still enforces limits)"
        record = {**estimate.model_dump(mode="json"), "verdict": verdict, "changes": decision.changes,
                  "wall_allowed": context["wall_allowed"]}
        exp_id = proposal.get("id")
        if exp_id and blackboard.find_experiment(exp_id) is not None:
            fields: dict[str, Any] = {"estimate": record, "code": code}
            if verdict == "reject":
                fields.update(status="rejected", error=reason)
            blackboard.update_experiment(exp_id, **fields)
        for finding in context["findings"]:
            blackboard.post(Message(content=f"line {finding['line']}: {finding['rule']}: {finding['message']}",
                                    sent_from=self.profile, send_to=["modeler", "reviewer"], cause_by="critic.finding",
                                    payload=finding, payload_type="Finding"))
        return {"verdict": {"verdict": verdict, "reason": reason, "changes": decision.changes, "code": code,
                            "estimate": record, "findings": context["findings"]}}

    @staticmethod
    def example_state(workdir: Any) -> dict[str, Any]:
        """A state `check_role` can run the critic on: a tiny task and a rendered pipeline for it."""
        path = tiny_task(workdir)
        code = render(PipelineSpec(model="linear", numeric=["x1", "x2"], categorical=["colour"]), Task.load(path))
        return {"task": str(path), "proposal": {"id": "example", "code": code, "insights": ["linear"]},
                "remaining": {"wall_time": 600.0, "experiment_time": 120.0, "memory": 4 * 1024**3, "gpus": 0}}
