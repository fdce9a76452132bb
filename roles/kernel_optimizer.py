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

from crew import Blackboard, Decision, Experiment, Role, Task
from crew.roles._util import add_proposed, as_task
from crew.tools.kernels import TRANSFORMS, transform

__all__ = ["Candidate", "KernelOptimizer", "ranked", "tiny_kernel_task"]

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
    """Reads `task` (a kernel task); writes `proposal` (the next candidate on the blackboard, or `stop`).

    Its twin inside a tabular solve is `crew.roles.speed_optimizer.SpeedOptimizer`, the same seat at the table
    (profile `optimizer`, decision `Candidate`) speeding up the winning pipeline instead of a kernel.
    """

    profile: ClassVar[str] = "optimizer"
    goal: ClassVar[str] = ("Make slow code fast without changing what it computes: kernel candidates measured by the "
                           "task's scorer.")
    decision: ClassVar[type[Decision]] = Candidate
    reads: ClassVar[tuple[str, ...]] = ("task",)
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
    prompt_limits: ClassVar[Mapping[str, int]] = {"best_code": 12_000}
    log_size: ClassVar[int] = 12

    def context(self, state: Mapping[str, Any]) -> dict[str, Any]:
        context = super().context(state)
        task = as_task(context["task"])
        board = self.board(state)
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

    def expert(self, context: Mapping[str, Any]) -> Candidate:
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
