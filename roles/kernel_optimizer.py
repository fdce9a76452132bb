"""The kernel optimizer: proposes the next candidate of a kernel task, a faster rewrite of the best valid one so far.

RE-Bench's lesson is that many measured tries beat a few careful ones when a
scorer gives fast, exact feedback. The offline expert walks the catalogue of
moves (`crew.tools.kernels.TRANSFORMS`) over the best valid candidates,
best first, and stops when no untried move applies; an LLM brain may instead
write a whole candidate in `code`. Either way the scorer, not the role,
decides what counts: a candidate that changes one output value scores
nothing and is never chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from pydantic import Field

from crew import Blackboard, Decision, Experiment, Role, Task, best_first
from crew.roles._util import add_proposed, as_task
from crew.tools.kernels import TRANSFORMS, transform
from crew.tools.pipelines import PipelineSpec, TaskInfo, render
from crew.tools.speed import PREDICTION_TOLERANCE, profile, variants_left

__all__ = ["Candidate", "KernelOptimizer", "ranked"]

_PARENTS = 3  # the expert tries its moves on this many of the best valid candidates


class Candidate(Decision):
    """The next kernel candidate: a catalogue move applied to a parent, or a whole module of the brain's own."""

    transform: str = Field(description=f"the move: one of {', '.join(t.name for t in TRANSFORMS)}, or a short name "
                                       "for your own rewrite in `code`")
    parent: str | None = Field(default=None, description="id of the candidate this one rewrites (the start's id "
                                                          "for the first)")
    code: str | None = Field(default=None, description="the complete candidate module; leave empty to apply the "
                                                       "catalogue move named in `transform` to the parent")
    stop: bool = Field(default=False, description="true when no move worth measuring is left")

    def summary(self) -> str:
        if self.stop:
            return "optimizer: no untried move left"
        return f"optimizer: {self.transform} on {self.parent}" + (" (own code)" if self.code else "")


def ranked(experiments: list[Experiment]) -> list[Experiment]:
    """Valid candidates, fastest first (the scorer's score is higher-is-better)."""
    valid = [e for e in experiments if e.status in ("done", "cached") and e.score is not None]
    return sorted(valid, key=lambda e: -float(e.score or 0.0))


class _Parent(NamedTuple):
    id: str | None
    insights: list[str]
    code: str


def _parents(context: Mapping[str, Any], judged: list[Experiment]) -> list[_Parent]:
    """The candidates to rewrite: the best valid ones; before the start is scored, the starting solution itself."""
    if context["valid"]:
        return [_Parent(e.id, e.insights, e.code) for e in context["valid"][:_PARENTS]]
    if any(e.insights == ["start"] for e in judged):
        return []  # the start was measured and failed: nothing valid to build on
    return [_Parent(None, ["start"], context["task"]["start_code"])]


def _tried(experiments: list[Experiment]) -> set[tuple[str | None, str]]:
    return {(e.parent, e.insights[-1]) for e in experiments if e.insights}


class KernelOptimizer(Role):
    """Reads `task`; writes `proposal` (the candidate on the blackboard, or `stop`).

    On a kernel task it proposes the next kernel candidate. Inside a tabular
    solve it reads the state's `step` too (its `parent` is the winner to
    speed up) and proposes a speed variant of the winner's slowest stage.
    """

    profile: ClassVar[str] = "optimizer"
    goal: ClassVar[str] = ("Make slow code fast without changing what it computes: kernel candidates measured by the "
                           "task's scorer, and cheaper variants of the winning pipeline's slowest stage.")
    watches: ClassVar[tuple[str, ...]] = ("critic.decide", "sandbox.result")
    decision: ClassVar[type[Decision]] = Candidate
    reads: ClassVar[tuple[str, ...]] = ("task",)
    optional: ClassVar[tuple[str, ...]] = ("step",)
    writes: ClassVar[tuple[str, ...]] = ("proposal",)
    prompt: ClassVar[str] = (
        "Task: {task}\n\nMeasured so far: {log}\n\nThe code to make faster ({best_id}):\n{best_code}\n\n"
        "Catalogue moves you may name instead of writing code: {moves}\nAlready tried (parent, move): {tried}\n\n"
        "{instructions}"
    )
    kernel_instructions: ClassVar[str] = (
        "Propose the next candidate: a complete Python module in `code` defining the same function(s) as the "
        "starting solution, computing exactly the same values, faster (vectorize, compile with numba, parallelize, "
        "use the GPU when the task gives one), with `parent` the id you rewrote; or name a catalogue move in "
        "`transform` and leave `code` empty. Never read the scorer, patch its clock or modules, or cache results "
        "between calls: such code is rejected. Set `stop` when nothing is left worth measuring."
    )
    pipeline_instructions: ClassVar[str] = (
        "This is the search's winning experiment; the measurements are its stages' seconds. Propose a variant of its "
        "slowest stage that predicts the same (out-of-fold predictions within {tolerance} on average) and scores no "
        "worse: name a catalogue move in `transform` with `parent` set to {best_id}, or write the whole experiment "
        "script in `code` under the same contract. Set `stop` if no variant is worth running."
    )
    prompt_limits: ClassVar[Mapping[str, int]] = {"best_code": 12_000}
    log_size: ClassVar[int] = 12

    def context(self, state: Mapping[str, Any]) -> dict[str, Any]:
        context = super().context(state)
        task = as_task(context["task"])
        board = self.board(state)
        if task.kind == "tabular":
            return self._pipeline_context(task, board, dict(state.get("step") or {}))
        experiments = board.experiments()
        valid = ranked(experiments)
        failed = [e for e in experiments if e.status in ("failed", "rejected")][-max(1, self.log_size // 3):]
        log = [f"{e.id} {'+'.join(e.insights)}: {e.metrics.get('time_s', 0) * 1000:.3f} ms" for e in
               valid[: self.log_size - len(failed)]]
        log += [f"{e.id} {'+'.join(e.insights)}: {e.status}: {(e.error or '').strip().splitlines()[-1][:160] if e.error else ''}"
                for e in failed]
        best = valid[0] if valid else None
        return {"task": _describe(task), "task_object": task, "experiments": experiments, "valid": valid,
                "log": log, "best_id": best.id if best else None, "best_code": best.code if best else "",
                "moves": [f"{t.name}: {t.description}" for t in TRANSFORMS],
                "tried": sorted(f"{p}:{m}" for p, m in _tried(experiments)), "instructions": self.kernel_instructions}

    def _pipeline_context(self, task: Task, board: Blackboard, step: dict[str, Any]) -> dict[str, Any]:
        """Inside solve: the winning experiment (the step's parent), its stages' timings, the variants left."""
        experiments = board.experiments()
        winner: Experiment | None
        if step.get("parent"):
            winner = board.experiment(step["parent"])
        else:
            done = [e for e in experiments if e.status == "done" and e.score is not None]
            winner = next(iter(best_first(done, task.metric_info.higher_is_better)), None)
        tried = {c.insights[-1] for c in experiments if winner is not None and c.parent == winner.id and c.insights}
        variants = variants_left(winner, experiments) if winner is not None else []
        return {"task": task.summary(), "task_object": task, "mode": "pipeline", "experiments": experiments,
                "valid": [], "winner": winner, "variants": variants, "step": step,
                "log": [f"{stage}: {seconds:.2f}s" for stage, seconds in profile(winner.metrics)] if winner else [],
                "best_id": winner.id if winner else None, "best_code": winner.code if winner else "",
                "moves": [f"{v.name}: {v.description} (for its {v.stage} stage)" for v, _ in variants],
                "tried": sorted(tried), "instructions": self.pipeline_instructions.format(
                    tolerance=PREDICTION_TOLERANCE, best_id=winner.id if winner else None)}

    def expert(self, context: Mapping[str, Any]) -> Candidate:
        if context.get("mode") == "pipeline":
            if context["variants"]:
                variant = context["variants"][0][0]
                return Candidate(rationale=f"{variant.description}, for {context['best_id']}'s slowest stage "
                                           f"({variant.stage})", transform=variant.name, parent=context["best_id"])
            return Candidate(rationale="no speed variant left for the winner", transform="", stop=True)
        judged = [e for e in context["experiments"] if e.status not in ("proposed", "running")]
        tried = _tried(judged)
        hashes = {e.code_hash for e in judged}
        for parent in _parents(context, judged):
            for move in TRANSFORMS:
                if (parent.id, move.name) in tried:
                    continue
                code = move.rewrite(parent.code)
                if code is None or Experiment(code=code).code_hash in hashes:
                    continue
                return Candidate(rationale=f"{move.description}, on {parent.id or 'the starting solution'} "
                                           f"({'+'.join(parent.insights)})", transform=move.name, parent=parent.id)
        reason = ("every catalogue move was tried on the best valid candidates" if context["valid"] else
                  "no valid candidate to build on: the starting solution did not pass the scorer")
        return Candidate(rationale=reason, transform="", stop=True)

    def act(self, decision: Decision, context: Mapping[str, Any], blackboard: Blackboard) -> dict[str, Any]:
        assert isinstance(decision, Candidate)
        if decision.stop:
            return {"proposal": {"stop": True}}
        if context.get("mode") == "pipeline":
            return self._act_pipeline(decision, context, blackboard)
        by_id = {e.id: _Parent(e.id, e.insights, e.code) for e in context["experiments"]}
        parents = _parents(context, context["experiments"])
        parent = by_id.get(decision.parent or "") or (parents[0] if parents else None)
        code, error = decision.code, None
        if not code:
            try:
                code = transform(decision.transform).rewrite(parent.code) if parent else None
            except (KeyError, SyntaxError) as exc:
                error = str(exc)
            if code is None and error is None:
                error = f"move {decision.transform!r} does not apply to {parent.id if parent else 'any candidate'}"
        insights = [*(parent.insights if parent else []), decision.transform or "own"]
        spec = {"transform": decision.transform, **({"own_code": True} if decision.code else {})}
        experiment = Experiment(parent=parent.id if parent else None, stage="kernel", insights=insights,
                                code=code or "", spec=spec)
        cached = add_proposed(blackboard, experiment, error=error)
        return {"proposal": {"id": experiment.id, "code": experiment.code, "insights": insights,
                             "parent": experiment.parent, "transform": decision.transform,
                             "rejected": error, "cached_from": cached.id if cached else None}}

    @staticmethod
    def _act_pipeline(decision: Candidate, context: Mapping[str, Any], blackboard: Blackboard) -> dict[str, Any]:
        """The variant as an experiment: the winner's design with the variant's parameters (and its tuned ones)."""
        winner: Experiment = context["winner"]
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
        """A state `check_role` can run the optimizer on: a small kernel task."""
        return {"task": str(tiny_kernel_task(Path(workdir)))}


def _describe(task: Task) -> dict[str, Any]:
    start = (task.root / str(task.starting_solution)).read_text(encoding="utf-8")
    return {"name": task.name, "description": task.description, "starting_solution": task.starting_solution,
            "start_code": start, "scorer": task.score, "output": task.output_name, "gpus": task.budget.gpus}


def tiny_kernel_task(workdir: Path) -> Path:
    """Write a small kernel task (a running sum by a Python loop, with an exact scorer) into `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "solution.py").write_text(
        "import numpy as np\n\n\ndef running_sum(x):\n    out = np.empty(len(x), dtype=np.int64)\n    total = 0\n"
        "    for i, value in enumerate(x.tolist()):\n        total += value\n        out[i] = total\n    return out\n",
        encoding="utf-8")
    (workdir / "score.py").write_text(
        "import importlib.util, json, math, sys, time\nimport numpy as np\n\n"
        "spec = importlib.util.spec_from_file_location('candidate', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\nresult = {'valid': False, 'time_s': None, 'score': None}\n"
        "try:\n    spec.loader.exec_module(module)\n"
        "    x = np.random.default_rng(0).integers(-9, 10, size=20000, dtype=np.int32)\n"
        "    module.running_sum(x.copy())\n    start = time.perf_counter()\n    out = module.running_sum(x.copy())\n"
        "    took = time.perf_counter() - start\n"
        "    if np.array_equal(np.asarray(out), np.cumsum(x.astype(np.int64))):\n"
        "        result.update(valid=True, time_s=took, score=-math.log(max(took * 1000, 1e-6)))\n"
        "    else:\n        result['error'] = 'wrong output'\n"
        "except Exception as exc:\n    result['error'] = f'{type(exc).__name__}: {exc}'\n"
        "print(json.dumps(result))\n", encoding="utf-8")
    (workdir / "task.yaml").write_text(
        "name: tiny-kernel\nkind: kernel\ndescription: running sum of an int32 array\nstarting_solution: solution.py\n"
        "score: score.py\nbudget: {wall_time: 2m, experiment_time: 30s, memory: 2GiB, gpus: 0}\noutput: solution.py\n",
        encoding="utf-8")
    return workdir / "task.yaml"
