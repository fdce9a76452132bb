"""The `optimize` workflow for kernel tasks: score the start, then optimizer -> critic -> scorer until the budget ends.

A LangGraph `StateGraph`, one candidate at a time: the scorer times code on
the whole machine, and two candidates timed side by side would each be
measured slower than they are. Every scorer call lands on the blackboard's
score log with its time; a candidate the scorer calls wrong scores nothing.
The output file holds the starting solution from the first second, and
after every valid improvement the fastest valid candidate so far, so a
killed run still leaves the best code it found. Before finishing, the
fastest few are scored once more and the winner is the one whose mean
score over its runs is best: a single lucky timing does not win.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

import crew
from crew import Blackboard, Brain, Budget, Experiment, Message, ScoreEntry, Task
from crew.roles.critic import Critic
from crew.roles.kernel_optimizer import KernelOptimizer, ranked
from crew.sandbox import Launch, Limits
from crew.tools.scorer import read_score, scorer_driver
from crew.workflows._run import events, remaining
from crew.workflows.experiment import RunContext

__all__ = ["OptimizeContext", "OptimizeState", "build_optimize_graph", "describe_log", "hidden_paths", "optimize", "score_log"]

_MIN_RUN = 5.0  # seconds: below this a scorer run cannot finish
_CONFIRM = 3  # the fastest candidates scored once more before the winner is chosen


class OptimizeState(TypedDict, total=False):
    task: str
    blackboard: str
    remaining: dict
    proposal: dict
    verdict: dict
    final: dict


def hidden_paths(task: Task) -> list[str]:
    """What a candidate must not read: the task's answers, and crew's benchmark folder (hand-written kernels)."""
    paths = [*task.hidden, Path(crew.__file__).resolve().parents[1] / "bench"]
    return [str(p) for p in paths if p.exists()]


def score_log(board: Blackboard) -> list[dict[str, Any]]:
    """The scorer's calls in order: when, which candidate and move, valid, milliseconds, score, error."""
    start = None
    rows = []
    for entry in board.scores():
        start = entry.at if start is None else start
        time_s = entry.details.get("time_s")
        rows.append({"at": round(entry.at - start, 1), "candidate": entry.experiment_id, "move": entry.source,
                     "valid": entry.valid, "ms": None if time_s is None else round(1000 * float(time_s), 3),
                     "score": entry.score, "error": entry.details.get("error")})
    return rows


@dataclass
class OptimizeContext(RunContext):
    """A kernel run's context: `RunContext`, with the whole machine's threads for each (one-at-a-time) scorer run."""

    @property
    def reserve(self) -> float:
        return max(5.0, 0.03 * self.budget.wall_time)

    @property
    def threads(self) -> int:
        return len(os.sched_getaffinity(0))

    @property
    def start_code(self) -> str:
        return (self.task.root / str(self.task.starting_solution)).read_text(encoding="utf-8")


def _score(context: OptimizeContext, exp_id: str, code: str, source: str, wall: float) -> dict[str, Any]:
    """One scorer call in the sandbox, logged: valid or not, the scorer's JSON ({} when it gave none), the
    error, the sandbox's result."""
    task, board = context.task, context.blackboard
    launch = Launch(id=f"{exp_id}-{source}" if source == "confirm" else exp_id,
                    code=scorer_driver(code, str(task.score)), data_dir=str(task.root), hide=hidden_paths(task),
                    limits=Limits(wall_time=wall, memory=context.budget.memory, threads=context.threads))
    result = context.executor.run(launch)
    scored = (read_score(result.stdout_tail) if result.reason == "ok" else None) or {}
    valid = bool(scored.get("valid") and scored.get("score") is not None)
    error = None if valid else (scored.get("error") or f"{result.reason}: {result.detail}".strip(": ")
                                + ("\n" + result.stderr_tail[-1500:] if result.stderr_tail else ""))
    board.log_score(ScoreEntry(source=source, score=float(scored["score"]) if valid else None, valid=valid,
                               experiment_id=exp_id, details={"time_s": scored.get("time_s"),
                                                              "error": error, "wall_time": result.wall_time}))
    board.post(Message(content=f"{exp_id} ({source}): " + (f"{1000 * float(scored['time_s']):.3f} ms, score "
                                                          f"{float(scored['score']):.4f}" if valid else
                                                          f"scores nothing: {str(error).splitlines()[0][:200]}"),
                       sent_from="scorer", send_to=["optimizer"], cause_by="scorer.result",
                       payload={"experiment": exp_id, "valid": valid, "scored": scored, "reason": result.reason,
                                "wall_time": result.wall_time}))
    return {"valid": valid, "scored": scored, "error": error, "result": result}


def _setup(state: OptimizeState, runtime: Runtime[OptimizeContext]) -> dict[str, Any]:
    """The start is the safety net and the yardstick: written to the output, then scored first."""
    context = OptimizeContext.of(runtime)
    board, start_code = context.blackboard, context.start_code
    if not context.output.exists():
        context.output.write_text(start_code, encoding="utf-8")
        board.post(Message(content=f"wrote the starting solution to {context.task.output_name} as a safety net",
                           sent_from="workflow", cause_by="workflow.submission"))
    start = next((e for e in board.experiments() if e.insights == ["start"]), None)
    if start is None:
        start = Experiment(stage="kernel", insights=["start"], code=start_code, spec={"transform": "start"})
        board.add_experiment(start)
    return {"proposal": {"id": start.id, "code": start.code, "insights": ["start"], "parent": None,
                         "transform": "start"}, "remaining": remaining(context.budget, context.reserve)}


def _propose(state: OptimizeState, runtime: Runtime[OptimizeContext]) -> dict[str, Any]:
    context = OptimizeContext.of(runtime)
    return {"remaining": remaining(context.budget, context.reserve)}


def _run(state: OptimizeState, runtime: Runtime[OptimizeContext]) -> dict[str, Any]:
    context = OptimizeContext.of(runtime)
    board, budget = context.blackboard, context.budget
    proposal, verdict = state["proposal"], state.get("verdict") or {}
    if proposal.get("stop") or proposal.get("rejected") or proposal.get("cached_from"):
        return {}
    if verdict.get("verdict") == "reject":
        return {}
    exp_id = proposal["id"]
    left = budget.remaining()
    wall = min(left.experiment_time, left.wall_time - context.reserve)
    if wall < _MIN_RUN:
        board.update_experiment(exp_id, status="rejected", error="no wall time left to score it")
        return {}
    budget.charge(experiments=1)
    board.update_experiment(exp_id, status="running")
    outcome = _score(context, exp_id, proposal["code"], proposal.get("transform") or "start", wall)
    result, scored = outcome["result"], outcome["scored"]
    board.update_experiment(exp_id, status="done" if outcome["valid"] else "failed", metrics=scored,
                            score=float(scored["score"]) if outcome["valid"] else None,
                            error=outcome["error"], wall_time=result.wall_time, peak_memory=result.peak_memory,
                            finished_at=time.time())
    if outcome["valid"]:
        _write_fastest(board, context.output)
    return {}


def _after_run(state: OptimizeState, runtime: Runtime[OptimizeContext]) -> str:
    context = OptimizeContext.of(runtime)
    budget = context.budget
    left = budget.remaining()
    runs = [e.wall_time for e in context.blackboard.experiments() if e.wall_time]
    cheapest = max(_MIN_RUN, min(runs)) if runs else _MIN_RUN
    if state["proposal"].get("stop") or budget.exhausted() or left.wall_time - context.reserve < cheapest:
        return "confirm"
    return "propose"


def _confirm(state: OptimizeState, runtime: Runtime[OptimizeContext]) -> dict[str, Any]:
    """Score the fastest few once more while time allows, so the winner is not one lucky timing."""
    context = OptimizeContext.of(runtime)
    for exp in ranked(context.blackboard.experiments())[:_CONFIRM]:
        left = context.budget.remaining()
        wall = min(left.experiment_time, left.wall_time - context.reserve)
        if exp.status == "cached" or not exp.wall_time or wall < max(_MIN_RUN, 1.5 * exp.wall_time):
            continue
        _score(context, exp.id, exp.code, "confirm", wall)
    return {}


def _finalize(state: OptimizeState, runtime: Runtime[OptimizeContext]) -> dict[str, Any]:
    context = OptimizeContext.of(runtime)
    board = context.blackboard
    winner = _write_fastest(board, context.output)
    start = next((e for e in board.experiments() if e.insights == ["start"]), None)
    final: dict[str, Any] = {"kind": "kernel", "experiments": [winner["id"]] if winner else []}
    if winner is None:
        final["rationale"] = "no candidate passed the scorer; the starting solution stands"
    else:
        base = _mean_ms(_runs(board).get(start.id, [])) if start else None
        speedup = (base / winner["ms"]) if base and winner["ms"] else None
        final.update(winner=winner["id"], insights=winner["insights"], ms=winner["ms"], score=winner["score"],
                     start_ms=base, speedup=speedup, runs=winner["runs"],
                     rationale=f"{winner['id']} ({'+'.join(winner['insights'])}): {winner['ms']:.3f} ms mean of "
                               f"{winner['runs']} scorer run(s)" + (f", {speedup:.1f}x the start" if speedup else ""))
    board.set_meta("final", final)
    context.record_elapsed()
    board.post(Message(content=final["rationale"], sent_from="workflow", cause_by="workflow.final", payload=final))
    return {"final": final}


def _route(state: OptimizeState) -> str:
    proposal = state["proposal"]
    if proposal.get("stop"):
        return "confirm"
    return "run" if proposal.get("rejected") or proposal.get("cached_from") else "critic"


def build_optimize_graph(*, checkpointer: Any = None) -> Any:
    """The optimize graph, compiled without a run: invoke it with `context=OptimizeContext(...)` (what `optimize`
    does)."""
    graph = StateGraph(OptimizeState, context_schema=OptimizeContext)
    graph.add_node("setup", _setup)
    graph.add_node("propose", _propose)
    graph.add_node("optimizer", KernelOptimizer())
    graph.add_node("critic", Critic())
    graph.add_node("run", _run)
    graph.add_node("confirm", _confirm)
    graph.add_node("finalize", _finalize)
    graph.add_edge(START, "setup")
    graph.add_edge("setup", "critic")
    graph.add_edge("propose", "optimizer")
    graph.add_conditional_edges("optimizer", _route, ["critic", "run", "confirm"])
    graph.add_edge("critic", "run")
    graph.add_conditional_edges("run", _after_run, ["propose", "confirm"])
    graph.add_edge("confirm", "finalize")
    graph.add_edge("finalize", END)
    return graph.compile(checkpointer=checkpointer)


def _runs(board: Blackboard) -> dict[str | None, list[ScoreEntry]]:
    """The score log grouped by candidate, read once."""
    runs: dict[str | None, list[ScoreEntry]] = {}
    for entry in board.scores():
        runs.setdefault(entry.experiment_id, []).append(entry)
    return runs


def _mean_ms(entries: list[ScoreEntry]) -> float | None:
    times = [float(s.details["time_s"]) for s in entries if s.valid and s.details.get("time_s") is not None]
    return 1000 * sum(times) / len(times) if times else None


def _write_fastest(board: Blackboard, output: Path) -> dict[str, Any] | None:
    """Copy the valid candidate with the best mean score over its scorer runs to `output` (atomically)."""
    runs = _runs(board)
    best = None
    for exp in board.experiments():
        entries = runs.get(exp.id, [])
        scores = [s.score for s in entries if s.valid and s.score is not None]
        if exp.status != "done" or not scores or any(not s.valid for s in entries):
            continue
        mean = sum(scores) / len(scores)
        if best is None or mean > best[0]:
            best = (mean, exp, len(scores))
    if best is None:
        return None
    mean, exp, count = best
    if board.get_meta("best_written") != exp.id:
        tmp = output.with_suffix(output.suffix + ".tmp")
        tmp.write_text(exp.code, encoding="utf-8")
        os.replace(tmp, output)
        board.set_meta("best_written", exp.id)
    return {"id": exp.id, "insights": exp.insights, "score": mean, "ms": _mean_ms(runs[exp.id]), "runs": count}


def optimize(task: Task, run_dir: Path, *, board: Blackboard, budget: Budget,
             brain: Brain | Mapping[str, Brain] | None = None,
             resume: bool = False, executor: Any = None,
             on_event: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the optimize graph to the end (or continue it, `resume`) and return the final choice."""
    connection = sqlite3.connect(run_dir / "checkpoints.sqlite", check_same_thread=False)
    try:
        graph = build_optimize_graph(checkpointer=SqliteSaver(connection))
        context = OptimizeContext(task=task, run_dir=run_dir, blackboard=board, budget=budget, executor=executor,
                                  brain=brain)
        config = {"configurable": {"thread_id": "optimize"}, "recursion_limit": 10_000}
        start = None if resume else {"task": str(task.root / "task.yaml"), "blackboard": str(board.path)}
        for kind, payload in events(graph.stream(start, config, context=context, stream_mode="updates",
                                                 subgraphs=True)):
            if on_event:
                on_event(kind, payload)
        state = graph.get_state(config).values
    finally:
        connection.close()
    return state.get("final") or board.get_meta("final") or {}


def describe_log(rows: list[dict[str, Any]]) -> str:
    """The score log as a plain-text table (what `crew solve` prints for a kernel task)."""
    lines = [f"{'at s':>7}  {'candidate':<14} {'move':<16} {'valid':<5} {'ms':>10}  {'score':>8}"]
    for row in rows:
        ms = "-" if row["ms"] is None else f"{row['ms']:.3f}"
        value = "-" if row["score"] is None else f"{row['score']:.4f}"
        lines.append(f"{row['at']:>7.1f}  {row['candidate']!s:<14} {row['move']:<16} {row['valid']!s:<5} "
                     f"{ms:>10}  {value:>8}")
    return "\n".join(lines)

