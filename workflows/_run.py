"""What the workflows share: the budget left as the roles see it, their flattened events, a submission written
atomically, the constants of a standalone experiment script filled in, and the ladder workflows' graph, resume and
final record (seq2seq's and media's: one rung at a time, each vetted by the critic)."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl
from langgraph.graph import END, START, StateGraph

from crew import Blackboard, Budget, Experiment, Message
from crew.roles.critic import Critic

__all__ = ["INTERRUPTED", "events", "fill_constants", "keep_best_model", "keep_if_better", "ladder_graph",
           "link_or_copy", "mark_interrupted", "record_final", "remaining", "stream_ladder", "write_atomically"]

INTERRUPTED = "interrupted: the run was killed while it ran"
"""The error of an experiment a killed run left running: a ladder proposes its rung again on resume."""


def remaining(budget: Budget, reserve: float) -> dict[str, Any]:
    """The budget left, less the wall time kept back for finishing the run (what the critic vets against)."""
    left = budget.remaining()
    return {"wall_time": max(0.0, left.wall_time - reserve), "experiment_time": left.experiment_time,
            "memory": left.memory, "gpus": left.gpus, "experiments": left.experiments}


def write_atomically(frame: pl.DataFrame, path: Path) -> None:
    """Write `frame` as csv to `path` through a temporary file, so a kill never leaves half a submission."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.write_csv(tmp)
    tmp.replace(path)


def link_or_copy(source: Path, target: Path) -> None:
    """`target` as a hard link to `source` where the file system allows (a copy that costs no space), else a copy;
    an existing `target` is kept."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def fill_constants(source: str, constants: Mapping[str, Any]) -> str:
    """A standalone experiment script (`crew.tools.normalizer`, `crew.tools.multioutput`) with each of its
    `NAME: dict = {...}` constants replaced by the value given for it."""
    for name, value in constants.items():
        found = re.search(rf"^{name}: dict = \{{.*?\}}\n", source, flags=re.S | re.M)
        assert found is not None, name  # the script defines every constant it is given
        source = source[:found.start()] + f"{name}: dict = {value!r}\n" + source[found.end():]
    return source


def events(stream: Iterator[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Flatten LangGraph's (namespace, {node: update}) stream (`subgraphs=True`) into (node, update) pairs."""
    for _namespace, update in stream:
        if isinstance(update, dict):
            for node, payload in update.items():
                yield node, payload if isinstance(payload, dict) else {}


def _route(state: Mapping[str, Any]) -> str:
    return "finalize" if state["proposal"].get("stop") else "critic"


def ladder_graph(state: type, context: type, *, setup: Callable[..., Any], modeler: Callable[..., Any],
                 run: Callable[..., Any], finalize: Callable[..., Any]) -> Any:
    """A ladder workflow, compiled: setup, then modeler -> critic -> run until the modeler proposes
    `{"stop": True}`, then finalize. Invoke it with `context=` an instance of `context`."""
    graph: StateGraph[Any, Any, Any, Any] = StateGraph(state, context_schema=context)
    graph.add_node("setup", setup)
    graph.add_node("modeler", modeler)
    graph.add_node("critic", Critic())
    graph.add_node("run", run)
    graph.add_node("finalize", finalize)
    graph.add_edge(START, "setup")
    graph.add_edge("setup", "modeler")
    graph.add_conditional_edges("modeler", _route, ["critic", "finalize"])
    graph.add_edge("critic", "run")
    graph.add_edge("run", "modeler")
    graph.add_edge("finalize", END)
    return graph.compile()


def mark_interrupted(board: Blackboard) -> None:
    """What a killed run left proposed or running is marked failed (`INTERRUPTED`), so its rung runs again."""
    for exp in board.experiments():
        if exp.status in ("proposed", "running"):
            board.update_experiment(exp.id, status="failed", error=INTERRUPTED)


def stream_ladder(graph: Any, start: dict[str, Any], context: Any,
                  on_event: Callable[[str, dict[str, Any]], None] | None) -> None:
    """Run a ladder graph to its end, passing each node's update to `on_event`."""
    for kind, payload in events(graph.stream(start, {"recursion_limit": 1_000}, context=context,
                                             stream_mode="updates", subgraphs=True)):
        if on_event:
            on_event(kind, payload)


def record_final(context: Any, final: dict[str, Any]) -> dict[str, Any]:
    """The run's final choice on the blackboard, in final.json and as the last message."""
    board = context.blackboard
    board.set_meta("final", final)
    (context.run_dir / "final.json").write_text(json.dumps(final, indent=1, default=str), encoding="utf-8")
    board.post(Message(content=str(final["rationale"]), sent_from="workflow", cause_by="workflow.final",
                       payload=final))
    context.record_elapsed()
    return {"final": final}


def keep_if_better(context: Any, exp_id: str, score: float, predictions: Path, *, higher_is_better: bool = True) -> bool:
    """Make `predictions` the submission when `score` beats the best so far (the blackboard's `best`): a killed
    run always leaves its best. Whether it did."""
    board = context.blackboard
    best = board.get_meta("best")
    improved = best is None or (score > float(best["cv"]) if higher_is_better else score < float(best["cv"]))
    if improved:
        shutil.copyfile(predictions, context.output.with_suffix(".tmp"))
        os.replace(context.output.with_suffix(".tmp"), context.output)
        board.set_meta("best", {"id": exp_id, "cv": score})
    return improved


def keep_best_model(context: Any, save: Callable[..., dict[str, Any]]) -> tuple[Experiment, float, dict[str, Any]] | None:
    """The best experiment, its score and what `save(folder, model_dir, experiment=, insights=, cv=)` kept of its
    `model/` in the run's predictor/; None when no experiment finished."""
    board = context.blackboard
    best = board.get_meta("best")
    if best is None:
        return None
    exp = board.experiment(best["id"])
    try:
        kept = save(context.run_dir / "predictor", context.run_dir / "experiments" / exp.id / "model",
                    experiment=exp.id, insights=exp.insights, cv=best["cv"])
    except OSError as exc:
        kept = {"saved": False, "reason": f"its experiment's model/ could not be copied ({exc})"}
    return exp, float(best["cv"]), kept
