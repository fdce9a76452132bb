"""The `normalize` workflow for seq2seq tasks (`kind: seq2seq`): a token in, its normalised text out.

A LangGraph `StateGraph`: the safety net first (every token copied
unchanged: on text normalisation most tokens are), then the offline
expert's ladder of learnt mappings (`LADDER`), each an experiment script
(`crew.tools.normalizer`) priced by the critic (per token, from its
settings), run in the sandbox under the budget left and recorded on the
blackboard, scored on whole held-out groups. After every
experiment the submission holds the best held-out accuracy so far, so a
killed run leaves its best; `--resume` skips the rungs already run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypedDict

import polars as pl
from langgraph.runtime import Runtime

from crew import Blackboard, Brain, Budget, Experiment, Message, Task, read_table
from crew.tools import normalizer
from crew.tools.artifacts import test_ids
from crew.tools.predictor import save_seq2seq_predictor
from crew.workflows._run import (
    INTERRUPTED,
    fill_constants,
    keep_best_model,
    keep_if_better,
    ladder_graph,
    mark_interrupted,
    record_final,
    remaining,
    stream_ladder,
    write_atomically,
)
from crew.workflows.experiment import RunContext, launch

__all__ = ["LADDER", "Seq2SeqState", "build_seq2seq_graph", "normalize", "script_for"]

LADDER: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("token_memory", {"context": False, "shapes": False}),
    ("shape_fallbacks", {"context": False, "shapes": True}),
    ("context_memory", {"context": True, "min_context": 2, "shapes": True}),
    ("context_memory_all", {"context": True, "min_context": 1, "shapes": True}),
)
"""The expert's experiments, in order: what each tries beyond the one before (a token's most frequent output;
learnt fall-backs for unseen tokens; the tokens either side when seen twice; and when seen once)."""


class Seq2SeqState(TypedDict, total=False):
    task: str
    blackboard: str
    proposal: dict
    remaining: dict
    verdict: dict
    final: dict


def script_for(task: Task, config: Mapping[str, Any], *, seed: int = 0) -> str:
    """The experiment's code.py: `crew.tools.normalizer` with the task's columns and `config` filled in."""
    assert task.data is not None
    source = Path(normalizer.__file__).read_text(encoding="utf-8")
    spec = {"train": task.data.train, "test": task.data.test, "source": task.source, "target": task.target,
            "id_column": task.id_column, "group": task.group}
    return fill_constants(source, {"TASK": spec, "CONFIG": {**normalizer.CONFIG, **config, "seed": seed}})


def _setup(state: Seq2SeqState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """The safety net: every test token copied unchanged, written before anything is learnt."""
    context = RunContext.of(runtime)
    task, board = context.task, context.blackboard
    if not context.output.exists():
        assert task.data is not None
        test = read_table(task.path(task.data.test), as_text=True)
        write_atomically(test.select(task.id_column, pl.col(str(task.source)).alias(str(task.target))), context.output)
        board.post(Message(content=f"wrote every {task.source} unchanged to {task.output_name} as a safety net",
                           sent_from="workflow", cause_by="workflow.submission"))
    return {"task": str(task.root / "task.yaml")}


def _modeler(state: Seq2SeqState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """The next rung of the ladder not yet on the blackboard, or stop when none is left or the time is spent."""
    context = RunContext.of(runtime)
    board, budget = context.blackboard, context.budget
    tried = {e.insights[0] for e in board.experiments() if e.insights and e.status in ("done", "failed", "rejected")
             and e.error != INTERRUPTED}
    left = budget.remaining()
    for name, config in LADDER:
        if name in tried:
            continue
        if left.wall_time - context.reserve < 2.0 or left.experiments <= 0:
            break
        exp = board.add_experiment(Experiment(insights=[name], stage="model", spec=dict(config),
                                              code=script_for(context.task, config, seed=context.seed)))
        board.post(Message(content=f"{exp.id}: {name} ({LADDER_NOTES[name]})", sent_from="modeler",
                           send_to=["sandbox"], cause_by="modeler.proposal",
                           payload={"experiment": exp.id, "config": dict(config)}))
        return {"proposal": {"id": exp.id, "name": name, "code": exp.code, "insights": [name]},
                "remaining": remaining(budget, context.reserve)}
    return {"proposal": {"stop": True}}


LADDER_NOTES = {"token_memory": "each token's most frequent output in train, else unchanged",
                "shape_fallbacks": "and for unseen tokens the fall-back their shape learnt",
                "context_memory": "and a token's output beside its neighbours, seen twice or more",
                "context_memory_all": "and beside its neighbours seen once"}


def _valid_predictions(task: Task, workdir: Path) -> str | None:
    """Why an experiment's predictions.csv cannot be the submission, or None."""
    path = workdir / "predictions.csv"
    if not path.is_file():
        return "wrote no predictions.csv"
    frame = read_table(path, as_text=True)
    if frame.columns != [task.id_column, task.target]:
        return f"predictions.csv has columns {frame.columns}, expected {[task.id_column, task.target]}"
    keys = test_ids(task)[1]  # the test ids, read once per file version
    if keys is None or frame.height != len(keys) or set(frame[str(task.id_column)].to_list()) != set(keys.to_list()):
        return "predictions.csv does not hold one row per test id"
    return None


def _run(state: Seq2SeqState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Run the proposal in the sandbox; a better held-out accuracy than the best so far becomes the submission."""
    context = RunContext.of(runtime)
    board, task = context.blackboard, context.task
    exp_id, verdict = state["proposal"]["id"], state["verdict"]
    if verdict["verdict"] == "reject":  # the critic marked it rejected, with its reason, on the blackboard
        context.record_elapsed()
        return {}
    result = launch(context, exp_id, verdict["code"], estimate=verdict.get("estimate"))
    workdir = Path(result.get("workdir") or context.run_dir / "experiments" / exp_id)
    metrics_path = workdir / "metrics.json"
    problem = None
    if result["reason"] != "ok":
        problem = f"{result['reason']}: {result.get('detail', '')}".strip(": ")
    elif not metrics_path.is_file():
        problem = "wrote no metrics.json"
    else:
        problem = _valid_predictions(task, workdir)
    if problem is not None:
        board.update_experiment(exp_id, status="failed", error=(problem + "\n" + result.get("stderr_tail", ""))[:4000])
        board.post(Message(content=f"{exp_id}: failed ({problem})", sent_from="reviewer", cause_by="reviewer.verdict",
                           payload={"experiment": exp_id, "valid": False}))
        context.record_elapsed()
        return {}
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    score = float(metrics["cv"])
    board.update_experiment(exp_id, status="done", score=score, metrics=metrics, cv_folds=list(metrics["folds"]),
                            artifacts={"predictions": str(workdir / "predictions.csv")})
    improved = keep_if_better(context, exp_id, score, workdir / "predictions.csv")
    sources = ", ".join(f"{k} {v['rows']} rows at {v['accuracy']:.4f}" for k, v in metrics.get("by_source", {}).items())
    board.post(Message(content=f"{exp_id}: held-out accuracy {score:.5f} ({sources})"
                               + ("; now the submission" if improved else ""),
                       sent_from="reviewer", cause_by="reviewer.verdict",
                       payload={"experiment": exp_id, "valid": True, "cv": score, "improved": improved}))
    context.record_elapsed()
    return {}


def _finalize(state: Seq2SeqState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    context = RunContext.of(runtime)
    kept = keep_best_model(context, save_seq2seq_predictor)
    final: dict[str, Any]
    if kept is None:
        final = {"kind": "unchanged", "cv": None, "rationale": "no experiment finished: every token copied unchanged"}
    else:
        exp, cv, saved = kept
        final = {"kind": "seq2seq", "experiment": exp.id, "insights": exp.insights, "cv": cv,
                 "by_source": exp.metrics.get("by_source"), "language": exp.metrics.get("language"),
                 "predictor": saved, "rationale": f"{exp.insights[0]}: best held-out accuracy "
                                                  f"{cv:.5f} of {len(context.blackboard.experiments())} experiment(s)"}
    return record_final(context, final)


def build_seq2seq_graph() -> Any:
    """The seq2seq graph, compiled: invoke it with `context=RunContext(...)` (what `normalize` does)."""
    return ladder_graph(Seq2SeqState, RunContext, setup=_setup, modeler=_modeler, run=_run, finalize=_finalize)


def normalize(task: Task, run_dir: Path, *, board: Blackboard, budget: Budget,
              brain: Brain | Mapping[str, Brain] | None = None, executor: Any = None, seed: int = 0,
              on_event: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the seq2seq graph to the end and return the final choice. A resumed run starts the graph again: the
    blackboard says which rungs already ran, and the submission already holds the best of them."""
    context = RunContext(task=task, run_dir=run_dir, blackboard=board, budget=budget, executor=executor,
                         brain=brain, seed=seed)
    mark_interrupted(board)  # what a killed run left running: its rung is proposed again
    graph = build_seq2seq_graph()
    start = {"task": str(task.root / "task.yaml"), "blackboard": str(board.path)}
    stream_ladder(graph, start, context, on_event)
    return board.get_meta("final") or {}
