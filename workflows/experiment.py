"""Running one experiment: the run's shared objects (`RunContext`) and the sandbox node every graph uses.

Graphs compile once, without a run; the run's task, folder, blackboard,
budget, sandbox and brains reach their nodes as LangGraph's runtime context
(`graph.invoke(state, context=RunContext(...))`). `run_experiment` is the
node that launches a proposal the critic passed: the solve workflow's
experiment branch uses it, and so do the examples that wire the roles into
graphs of their own, so every launch hides the task's answers, reads only its
data files, charges the budget and lands on the blackboard the same way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from langgraph.runtime import Runtime

from crew import Blackboard, Brain, Budget, Message, Task
from crew.sandbox import Launch, Limits, LocalExecutor, disk_usage

__all__ = ["MIN_DISK", "MIN_EXPERIMENT", "RunContext", "launch", "run_experiment"]

MIN_EXPERIMENT = 5.0
"""Seconds: an experiment allowed less wall time than this is not launched."""
MIN_DISK = 64 * 1024**2
"""Bytes: an experiment with less disk than this cannot write its outputs."""


@dataclass
class RunContext:
    """What the nodes of one run share. `executor` is anything with `run(Launch) -> Result` (the local sandbox in
    `run_dir/experiments` when None); `brain` is one Brain or role name -> Brain (None: the offline expert)."""

    task: Task
    run_dir: Path
    blackboard: Blackboard
    budget: Budget
    executor: Any = None
    brain: Brain | Mapping[str, Brain] | None = None
    seed: int = 0
    workers: int = 1

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        if self.executor is None:
            self.executor = LocalExecutor(root=self.run_dir / "experiments")

    @property
    def reserve(self) -> float:
        """Wall time kept back for finishing the run (final selection, the submission, the kept model): 5% of
        the budget, at least 8 s, but never more than a fifth of a short budget, which has little to choose from.
        The critic vets against the wall time left after it, so this is the run's only reserve."""
        wall = self.budget.wall_time
        return max(0.05 * wall, min(8.0, 0.2 * wall))

    @property
    def threads(self) -> int:
        """Threads each of the `workers` side-by-side experiments may use."""
        return max(1, len(os.sched_getaffinity(0)) // self.workers)

    @classmethod
    def of(cls, runtime: Runtime[Any]) -> Self:
        """The run a node was invoked with; a graph invoked without one fails here, naming what to pass."""
        if not isinstance(runtime.context, cls):
            raise TypeError(f"this graph needs its run: invoke it with context={cls.__name__}(...)")
        return runtime.context

    @property
    def output(self) -> Path:
        """Where the run leaves what it hands over (the submission, or a kernel task's solution)."""
        return self.run_dir / self.task.output_name

    @property
    def stage_cache(self) -> Path:
        return self.run_dir / "stage_cache"

    def record_elapsed(self) -> None:
        """The run's wall time so far, earlier lives of a resumed run included, on the blackboard."""
        board = self.blackboard
        board.set_meta("elapsed", self.budget.elapsed() + float(board.get_meta("elapsed_before", 0.0)))

    def disk_left(self) -> int:
        """What the run's budget.disk still allows its experiment folders."""
        return self.task.budget.disk - disk_usage(self.run_dir / "experiments")[0]

    def limits(self, wall_time: float, *, disk_left: int | None = None) -> Limits:
        """An experiment's limits: `wall_time`, the memory left, its share of the threads and the disk left
        (`disk_left` when the caller has just measured it: measuring walks every experiment folder)."""
        disk = self.disk_left() if disk_left is None else disk_left
        return Limits(wall_time=wall_time, memory=self.budget.remaining().memory, threads=self.threads,
                      disk=min(Limits().disk, max(MIN_DISK, disk)))

    def launch(self, exp_id: str, code: str, limits: Limits, *, shared: bool = True, **fields: Any) -> Launch:
        """A launch of `code` on the task: its data files only, its hidden paths unreadable, and (`shared`) the
        run's stage cache readable."""
        return Launch(id=exp_id, code=code, data_dir=str(self.task.root), data_files=self.task.data_files,
                      hide=[str(p) for p in self.task.hidden], shared_dir=str(self.stage_cache) if shared else None,
                      limits=limits, **fields)


def launch(context: RunContext, exp_id: str, code: str, *, estimate: Mapping[str, Any] | None = None,
           gpus: list[int] | None = None) -> dict[str, Any]:
    """Run experiment `exp_id` (already on the blackboard) in the sandbox under what the budget has left (on the
    GPUs `gpus`, a slot the caller holds, when given), and
    record it there: its status, times and memory, the sandbox's result and anything the audit hook saw. Returns
    the result as the reviewer reads it (`reason`, `detail`, `workdir`, `stderr_tail`, `audit`)."""
    board, budget = context.blackboard, context.budget
    left = budget.remaining()
    wall = min(left.experiment_time, left.wall_time - context.reserve)
    if wall < MIN_EXPERIMENT:
        board.update_experiment(exp_id, status="rejected", error="no wall time left to run it")
        return {"reason": "rejected", "detail": "no wall time left"}
    disk_left = context.disk_left()
    if disk_left < MIN_DISK:
        board.update_experiment(exp_id, status="rejected", error="the run's disk quota (budget.disk) is spent")
        return {"reason": "rejected", "detail": "no disk quota left"}
    budget.charge(experiments=1)
    board.update_experiment(exp_id, status="running")
    limits = context.limits(wall, disk_left=disk_left)
    result = context.executor.run(context.launch(exp_id, code, limits, estimate=dict(estimate or {}),
                                                 gpus=list(gpus or [])))
    for loss in result.lost:  # a cluster worker died under it and it was run again elsewhere
        board.post(Message(content=f"{exp_id}: lost ({loss}); retried", sent_from="sandbox", send_to=["reviewer"],
                           cause_by="sandbox.lost", payload={"experiment": exp_id, "lost": loss}))
    board.update_experiment(exp_id, wall_time=result.wall_time, peak_memory=result.peak_memory,
                            finished_at=time.time(), gpu=result.gpus)
    board.post(Message(content=f"{exp_id}: {result.reason} in {result.wall_time:.1f}s"
                               + (f" ({result.detail})" if result.detail else ""),
                       sent_from="sandbox", send_to=["reviewer"], cause_by="sandbox.result",
                       payload={"experiment": exp_id, "reason": result.reason, "wall_time": result.wall_time,
                                "peak_memory": result.peak_memory}, payload_type="Result"))
    if result.audit:  # what the experiment did at run time, beside what the critic read in its code
        board.post(Message(content=f"{exp_id}: audit hook saw " + "; ".join(f"{e['level']}: {e['event']}: "
                                                                           f"{e['detail']}" for e in result.audit[:5]),
                           sent_from="sandbox", send_to=["reviewer"], cause_by="sandbox.audit",
                           payload={"experiment": exp_id, "audit": result.audit}))
    return {"reason": result.reason, "detail": result.detail, "workdir": result.workdir,
            "stderr_tail": result.stderr_tail[-4000:], "audit": result.audit}


def run_experiment(state: Mapping[str, Any], runtime: Runtime[RunContext]) -> dict[str, Any]:
    """The sandbox node: reads `proposal` (the modeler's) and `verdict` (the critic's), writes `result`. A
    rejected proposal is not run; one identical to a finished experiment points at that one's folder."""
    context = RunContext.of(runtime)
    proposal, verdict = state["proposal"], state["verdict"]
    exp_id = proposal["id"]
    base = {"experiment": exp_id, "findings": verdict.get("findings", [])}
    if proposal.get("cached_from"):
        return {"result": {**base, "reason": "cached",
                           "workdir": str(context.run_dir / "experiments" / proposal["cached_from"])}}
    if verdict["verdict"] == "reject":
        return {"result": {**base, "reason": "rejected", "detail": verdict["reason"]}}
    return {"result": {**base, **launch(context, exp_id, verdict["code"], estimate=verdict.get("estimate"))}}
