"""The speed optimizer: inside a tabular solve, proposes a cheaper variant of the winning pipeline's slowest stage.

The kernel optimizer's twin (`crew.roles.kernel_optimizer`): the same seat
at the table (profile `optimizer`, decision `Candidate`, so `--llm
optimizer=...` sets both), for a pipeline instead of a kernel. The
offline expert takes the first variant left in `crew.tools.speed`'s
catalogue for the winner's slowest stage; an LLM brain may write the whole
script. The reviewer keeps a variant only if it predicts what the winner
did and scores no worse (`crew.tools.speed.check_speed_variant`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from crew import Blackboard, Decision, Experiment, Role, Task, best_first
from crew.roles._util import add_proposed, as_task
from crew.roles.kernel_optimizer import Candidate, KernelOptimizer
from crew.testing import tiny_task
from crew.tools.pipelines import PipelineSpec, TaskInfo, render
from crew.tools.speed import PREDICTION_TOLERANCE, profile, variants_left

__all__ = ["SpeedOptimizer"]


class SpeedOptimizer(Role):
    """Reads `task` and `step` (its `parent` is the winner to speed up); writes `proposal` (the variant on the
    blackboard, or `stop`)."""

    profile: ClassVar[str] = "optimizer"
    goal: ClassVar[str] = ("Make slow code fast without changing what it computes: cheaper variants of the winning "
                           "pipeline's slowest stage that predict what it predicts.")
    decision: ClassVar[type[Decision]] = Candidate
    reads: ClassVar[tuple[str, ...]] = ("task", "step")
    writes: ClassVar[tuple[str, ...]] = ("proposal",)
    prompt: ClassVar[str] = KernelOptimizer.prompt
    """The optimizer seat's one prompt; `instructions` (below, filled in per winner) says what this half asks."""
    instructions: ClassVar[str] = (
        "This is the search's winning experiment; the measurements are its stages' seconds. Propose a variant of its "
        "slowest stage that predicts the same (out-of-fold predictions within {tolerance} on average) and scores no "
        "worse: name a catalogue move in `transform` with `parent` set to {best_id}, or write the whole experiment "
        "script in `code` under the same contract. Set `stop` if no variant is worth running."
    )
    prompt_limits: ClassVar[Mapping[str, int]] = KernelOptimizer.prompt_limits

    def context(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """The winning experiment (the step's parent, else the best so far), its stages' timings, the variants left."""
        context = super().context(state)
        task, board, step = as_task(context["task"]), self.board(state), dict(context["step"] or {})
        experiments = board.experiments()
        winner: Experiment | None
        if step.get("parent"):
            winner = board.experiment(step["parent"])
        else:
            done = [e for e in experiments if e.status == "done" and e.score is not None]
            winner = next(iter(best_first(done, task.metric_info.higher_is_better)), None)
        tried = {c.insights[-1] for c in experiments if winner is not None and c.parent == winner.id and c.insights}
        variants = variants_left(winner, experiments) if winner is not None else []
        return {"task": task.summary(), "task_object": task, "winner": winner, "variants": variants, "step": step,
                "log": [f"{stage}: {seconds:.2f}s" for stage, seconds in profile(winner.metrics)] if winner else [],
                "best_id": winner.id if winner else None, "best_code": winner.code if winner else "",
                "moves": [f"{v.name}: {v.description} (for its {v.stage} stage)" for v, _ in variants],
                "tried": sorted(tried), "instructions": self.instructions.format(
                    tolerance=PREDICTION_TOLERANCE, best_id=winner.id if winner else None)}

    def expert(self, context: Mapping[str, Any]) -> Candidate:
        if context["variants"]:
            variant = context["variants"][0][0]
            return Candidate(rationale=f"{variant.description}, for {context['best_id']}'s slowest stage "
                                       f"({variant.stage})", transform=variant.name, parent=context["best_id"])
        return Candidate(rationale="no speed variant left for the winner", transform="", stop=True)

    def act(self, decision: Decision, context: Mapping[str, Any], blackboard: Blackboard) -> dict[str, Any]:
        """The variant as an experiment: the winner's design with the variant's parameters (and its tuned ones)."""
        assert isinstance(decision, Candidate)
        winner: Experiment | None = context["winner"]
        if decision.stop or winner is None:
            return {"proposal": {"stop": True}}
        task: Task = context["task_object"]
        step = context["step"]
        threads = int(step.get("threads", winner.spec.get("threads", 1)))
        spec = PipelineSpec(**{k: v for k, v in winner.spec.items() if k in PipelineSpec.model_fields})
        params = next((p for v, p in context["variants"] if v.name == decision.transform), None)
        error = None
        if decision.code:
            code = decision.code
        elif params:
            spec = spec.model_copy(update={"params": params, "tune_trials": 0, "tune_timeout": 0.0, "threads": threads})
            code = render(spec, TaskInfo.from_task(task))
        else:
            code, error = "", f"no speed variant named {decision.transform!r} applies to {winner.id}"
        recorded = {**spec.model_dump(mode="json"), "speed_of": winner.id, "step": "speed",
                    "variant": decision.transform, **({"own_code": True} if decision.code else {})}
        experiment = Experiment(parent=winner.id, stage="model", insights=[*winner.insights, f"speed:{decision.transform}"],
                                code=code, spec=recorded)
        cached = add_proposed(blackboard, experiment, error=error)
        return {"proposal": {"id": experiment.id, "code": code, "insights": experiment.insights, "parent": winner.id,
                             "phase": "speed", "threads": threads, "gpus": 0, "rejected": error,
                             "cached_from": cached.id if cached else None}}

    @staticmethod
    def example_state(workdir: Any) -> dict[str, Any]:
        """A state `check_role` can run the optimizer on: a tiny task with no winner yet (it stops)."""
        return {"task": str(tiny_task(workdir)), "step": {"phase": "speed", "parent": None}}
