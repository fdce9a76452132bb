"""The `solve` workflow: analyst -> planner -> search loop (modeler -> critic -> sandbox -> reviewer) -> final selection.

A LangGraph `StateGraph`. Each search round fans out with `Send` to one
`experiment` subgraph per free worker; each experiment's branch runs the
modeler, the critic, the sandbox and the reviewer, and lands on the
blackboard. A valid submission exists from the first seconds (a constant
prediction), is replaced by the best reviewed experiment after every
round, and finally by the ensemble or single model that final selection
chooses; so the run always leaves one, even when killed.
"""

from __future__ import annotations

import json
import operator
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypedDict

import numpy as np
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from crew import (
    Blackboard,
    Brain,
    Budget,
    ChatBrain,
    CrewError,
    Message,
    TableError,
    Task,
    best_first,
    brain_for,
    team_brains,
)
from crew.roles.analyst import Analyst
from crew.roles.critic import Critic
from crew.roles.kernel_optimizer import KernelOptimizer
from crew.roles.modeler import Modeler
from crew.roles.planner import Planner
from crew.roles.reviewer import Reviewer
from crew.sandbox import GPUSlots, Launch, Limits, LocalExecutor, Pool, available_memory, confinement, disk_usage
from crew.tools import ensemble, sizing
from crew.tools.pipelines import promote_stages, rendered
from crew.tools.probe import judge, judge_canaries, perturb_train
from crew.tools.speed import variants_left
from crew.workflows._run import events, remaining
from crew.workflows.optimize import optimize, score_log
from crew.workflows.strategies import STRATEGIES, Step, Strategy, family_leaders, opening_done

__all__ = ["ExperimentState", "SolveState", "build_solve_graph", "default_run_dir", "solve", "speed_report"]

_MIN_EXPERIMENT = 5.0  # seconds: below this, launching is pointless
_MIN_DISK = 64 * 1024**2  # bytes: an experiment with less disk than this cannot write its outputs
_TOP_K = 12  # experiments final selection considers
_SPEED_MIN_SECONDS = 8.0  # a winner faster than this is not worth a speed variant
_SPEED_TRIES = 2  # speed variants tried on one winner before the search moves on


class SolveState(TypedDict, total=False):
    task: str
    run_dir: str
    blackboard: str
    data_report: dict
    plan: dict
    rounds: int
    finished: Annotated[list[str], operator.add]
    final: dict


class ExperimentState(TypedDict, total=False):
    task: str
    blackboard: str
    data_report: dict
    plan: dict
    step: dict
    remaining: dict
    proposal: dict
    verdict: dict
    result: dict
    review: dict
    stage_cache: str
    finished: Annotated[list[str], operator.add]


def _out_of_time_streak(board: Blackboard, n: int, seconds_left: float) -> bool:
    """The last `n` proposals were all rejected by the critic as needing more of the run's wall time than it could
    allow them then (`wall_allowed`), or than is left now: wall time only shrinks, so the next ones would be too."""
    recent = [e for e in board.experiments() if e.status not in ("proposed", "running")][-n:]
    return len(recent) == n and all(
        e.status == "rejected" and float(e.estimate.get("seconds") or 0.0)
        > min(seconds_left, float(e.estimate.get("wall_allowed", seconds_left))) for e in recent)


def default_run_dir(task: Task) -> Path:
    return Path("runs") / f"{task.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _workers(requested: int | None, task: Task) -> int:
    """Experiments side by side: asked for, else what cores, memory and GPUs allow (the sandbox pool's rule)."""
    if requested:
        return max(1, requested)
    gpus = len(GPUSlots().devices()) if task.budget.gpus else 0
    return Pool.size(cores=len(os.sched_getaffinity(0)), memory_available=available_memory(),
                     per_experiment_memory=task.budget.memory, gpu_count=gpus, gpus_per_experiment=task.budget.gpus)


def _constant_submission(task: Task, path: Path) -> None:
    """The first valid submission: class priors or the target's mean, written before any experiment runs."""
    rows = ensemble.task_rows(task)
    if task.target_type == "regression":
        raw = np.full(len(rows.test_ids), float(np.mean(rows.y)))
    else:
        prior = np.array([(rows.y == c).mean() for c in task.classes])
        raw = np.tile(prior, (len(rows.test_ids), 1))
    ensemble.submission_frame(task, rows.test_ids, raw).to_csv(path, index=False)


def build_solve_graph(task: Task, run_dir: Path, *, board: Blackboard, budget: Budget,
                      brain: Brain | Mapping[str, Brain] | None = None,
                      strategy: str | Strategy = "greedy", workers: int = 1, seed: int = 0, executor: Any = None,
                      checkpointer: Any = None) -> Any:
    """Compile the solve graph for one run; roles share `board`, the sandbox runs under `budget`."""
    executor = executor or LocalExecutor(root=run_dir / "experiments")
    search = STRATEGIES[strategy](seed=seed) if isinstance(strategy, str) else strategy
    reserve = max(8.0, 0.05 * budget.wall_time)
    threads = max(1, len(os.sched_getaffinity(0)) // workers)
    higher = task.metric_info.higher_is_better
    output = run_dir / task.output_name
    hidden = [str(task.root / "grading")]
    data_files = [f for f in (task.data.train, task.data.test, task.data.sample_submission) if f] if task.data else None
    stage_cache = run_dir / "stage_cache"

    def run_disk_left() -> int:
        """What the run's budget.disk still allows its experiment folders."""
        return task.budget.disk - disk_usage(run_dir / "experiments")[0]

    # -- the experiment branch -------------------------------------------------------------

    def run(state: ExperimentState) -> dict[str, Any]:
        proposal, verdict = state["proposal"], state["verdict"]
        exp_id = proposal["id"]
        base = {"experiment": exp_id, "findings": verdict.get("findings", [])}
        if proposal.get("cached_from"):
            return {"result": {**base, "reason": "cached", "workdir": str(run_dir / "experiments" / proposal["cached_from"])}}
        if verdict["verdict"] == "reject":
            return {"result": {**base, "reason": "rejected", "detail": verdict["reason"]}}
        left = budget.remaining()
        wall = min(left.experiment_time, left.wall_time - reserve)
        if wall < _MIN_EXPERIMENT:
            board.update_experiment(exp_id, status="rejected", error="no wall time left to run it")
            return {"result": {**base, "reason": "rejected", "detail": "no wall time left"}}
        disk_left = run_disk_left()
        if disk_left < _MIN_DISK:
            board.update_experiment(exp_id, status="rejected", error="the run's disk quota (budget.disk) is spent")
            return {"result": {**base, "reason": "rejected", "detail": "no disk quota left"}}
        budget.charge(experiments=1)
        board.update_experiment(exp_id, status="running")
        launch = Launch(id=exp_id, code=verdict["code"], data_dir=str(task.root), data_files=data_files, hide=hidden,
                        shared_dir=str(stage_cache),
                        limits=Limits(wall_time=wall, memory=left.memory, threads=threads,
                                      disk=min(Limits().disk, disk_left)),
                        estimate=verdict.get("estimate") or {})
        result = executor.run(launch)
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
        return {"result": {**base, "reason": result.reason, "detail": result.detail, "workdir": result.workdir,
                           "stderr_tail": result.stderr_tail[-4000:], "audit": result.audit}}

    def after_run(state: ExperimentState) -> str:
        return "review" if state["result"]["reason"] not in ("rejected", "cached") else "done"

    def probe(state: ExperimentState) -> dict[str, Any]:
        """A chat model's code is run once more on a train table with new labels for random rows: accepted only
        if its out-of-fold predictions do not follow each row's own label (tools/probe.py)."""
        exp_id, review = state["proposal"]["id"], dict(state.get("review") or {})
        found = board.experiment(exp_id)
        # a chat model's script (the modeler marks it own_code, and the critic's cheaper variants keep the mark)
        if not review.get("accepted") or not found.spec.get("own_code") or not task.data:
            return {}
        left = budget.remaining()
        wall = min(left.experiment_time, left.wall_time - reserve, 2.0 * float(found.wall_time or 0.0) + 10.0)
        verdict: str | None = None
        if wall < max(_MIN_EXPERIMENT, float(found.wall_time or 0.0) * 1.2):
            verdict = "not verified: too little wall time left to run the label probe, so it is not trusted"
        else:
            change = perturb_train(task, run_dir / "probes" / exp_id, seed=seed)
            launch = Launch(id=f"{exp_id}-probe", code=found.code, data_dir=str(task.root), data_files=data_files,
                            data_sources=change.sources, hide=hidden,
                            limits=Limits(wall_time=wall, memory=left.memory, threads=threads,
                                          disk=min(Limits().disk, max(_MIN_DISK, run_disk_left()))))
            result = executor.run(launch)
            if result.reason != "ok":
                verdict = f"not verified: its label probe run ended with {result.reason} ({result.detail})"
            else:
                try:
                    judged = judge(task, change, Path(state["result"]["workdir"]), Path(result.workdir))
                    canaries = judge_canaries(task, change, Path(result.workdir))
                except (ValueError, KeyError, IndexError, OSError, TableError) as exc:
                    verdict = f"not verified: its label probe could not be compared ({str(exc)[:200]})"
                else:
                    for check, seen in (("label probe", judged), ("canary rows", canaries)):
                        board.post(Message(content=f"{exp_id}: {check} {'CAUGHT' if seen.caught else 'passed'}: "
                                                   f"{seen.note}", sent_from="reviewer", send_to=["*"],
                                           cause_by="reviewer.probe",
                                           payload={"experiment": exp_id, "check": check, **vars(seen)}))
                    if judged.caught:
                        verdict = ("out-of-fold predictions follow each row's own label (label probe: "
                                   f"{judged.note}): the model saw the rows it predicts, or a feature holds the target")
                    elif canaries.caught:
                        verdict = (f"the submission does not come from the model (canary rows: {canaries.note}): "
                                   "predictions for test rows must be the fitted model's")
        if verdict is None:
            return {}
        board.update_experiment(exp_id, status="failed", error=f"reviewer: {verdict}")
        board.post(Message(content=f"reviewer: {exp_id} rejected: {verdict}", sent_from="reviewer",
                           send_to=["modeler", "planner"], cause_by="reviewer.decide", payload={"experiment": exp_id}))
        return {"review": {**review, "accepted": False, "issues": [*review.get("issues", []), verdict]}}

    def done(state: ExperimentState) -> dict[str, Any]:
        exp_id = state.get("proposal", {}).get("id")
        workdir = (state.get("result") or {}).get("workdir")
        if exp_id and workdir and (state.get("review") or {}).get("accepted"):
            found = board.experiment(exp_id)  # only crew's own scripts may fill the cache later experiments trust
            if rendered(found.code, found.spec, task):
                promote_stages(found.code, workdir, stage_cache)
        return {"finished": [exp_id] if exp_id else []}

    def first(state: ExperimentState) -> str:
        return "optimizer" if state["step"].get("phase") == "speed" else "modeler"

    def after_optimizer(state: ExperimentState) -> str:
        proposal = state["proposal"]
        return "critic" if proposal.get("id") and not proposal.get("rejected") else "done"

    branch = StateGraph(ExperimentState)
    branch.add_node("modeler", Modeler(brain=brain_for(brain, "modeler"), blackboard=board))
    branch.add_node("optimizer", KernelOptimizer(brain=brain_for(brain, "optimizer"), blackboard=board))
    branch.add_node("critic", Critic(brain=brain_for(brain, "critic"), blackboard=board))
    branch.add_node("run", run)
    branch.add_node("review", Reviewer(brain=brain_for(brain, "reviewer"), blackboard=board))
    branch.add_node("done", done)
    branch.add_conditional_edges(START, first, ["modeler", "optimizer"])
    branch.add_edge("modeler", "critic")
    branch.add_conditional_edges("optimizer", after_optimizer, ["critic", "done"])
    branch.add_edge("critic", "run")
    branch.add_conditional_edges("run", after_run, ["review", "done"])
    branch.add_node("probe", probe)
    branch.add_edge("review", "probe")
    branch.add_edge("probe", "done")
    branch.add_edge("done", END)
    compiled = branch.compile()

    def experiment(state: ExperimentState) -> dict[str, Any]:
        """One branch of the fan-out; only `finished` flows back, so parallel branches never collide."""
        return {"finished": compiled.invoke(state)["finished"]}

    # -- the main graph -------------------------------------------------------------------------

    def setup(state: SolveState) -> dict[str, Any]:
        if not output.exists():
            _constant_submission(task, output)
            board.post(Message(content=f"wrote a constant-prediction {task.output_name} as a safety net",
                               sent_from="workflow", cause_by="workflow.submission"))
        return {"rounds": 0}

    def dispatch(state: SolveState) -> dict[str, Any]:
        board.set_meta("elapsed", budget.elapsed() + float(board.get_meta("elapsed_before", 0.0)))
        _write_best(board, task, output, higher)
        return {"rounds": state.get("rounds", 0) + 1}

    def route(state: SolveState) -> list[Send] | str:
        left = budget.remaining()
        times = [e.wall_time for e in board.experiments(status="done") if e.wall_time]
        cheapest = max(_MIN_EXPERIMENT, 0.8 * min(times)) if times else _MIN_EXPERIMENT
        if budget.exhausted() or left.wall_time - reserve < cheapest:
            return "finalize"  # not even the cheapest experiment so far would fit
        if _out_of_time_streak(board, 2 * workers, left.wall_time - reserve):
            return "finalize"  # the last proposals were all refused for time, and less time is left now
        speed = _speed_step(board, state["plan"], higher, seed, max_drafts=getattr(search, "max_drafts", None))
        steps = [speed] if speed else []
        steps += search.next_steps(board, state["plan"], workers - len(steps), higher_is_better=higher, pending=steps)
        if not steps:
            return "finalize"
        left_now = remaining(budget, reserve)
        base = {"task": state["task"], "blackboard": state["blackboard"], "data_report": state["data_report"],
                "plan": state["plan"], "remaining": left_now, "stage_cache": str(stage_cache)}
        share = round(sizing.share(left_now["wall_time"], left_now["experiments"], workers), 1)
        return [Send("experiment", {**base, "step": {**step.model_dump(), "threads": threads, "share": share}})
                for step in steps]

    def finalize(state: SolveState) -> dict[str, Any]:
        final = {**_finalize(board, task, run_dir, output, higher, seed), "speed": speed_report(board)}
        board.set_meta("final", final)
        board.set_meta("elapsed", budget.elapsed() + float(board.get_meta("elapsed_before", 0.0)))
        board.post(Message(content=final["rationale"], sent_from="workflow", cause_by="workflow.final", payload=final))
        return {"final": final}

    graph = StateGraph(SolveState)
    graph.add_node("setup", setup)
    graph.add_node("analyst", Analyst(brain=brain_for(brain, "analyst"), blackboard=board))
    graph.add_node("planner", Planner(brain=brain_for(brain, "planner"), blackboard=board))
    graph.add_node("dispatch", dispatch)
    graph.add_node("experiment", experiment)
    graph.add_node("finalize", finalize)
    graph.add_edge(START, "setup")
    graph.add_edge("setup", "analyst")
    graph.add_edge("analyst", "planner")
    graph.add_edge("planner", "dispatch")
    graph.add_conditional_edges("dispatch", route, ["experiment", "finalize"])
    graph.add_edge("experiment", "dispatch")
    graph.add_edge("finalize", END)
    return graph.compile(checkpointer=checkpointer)


def _speed_step(board: Blackboard, plan: dict, higher: bool, seed: int, *, max_drafts: int | None) -> Step | None:
    """The speed pass: the best experiment, when it is slow enough to matter and has variants left, goes to the
    optimizer (one variant in flight at a time, at most `_SPEED_TRIES` per winner). It waits for the opening: while
    drafts are still to come the winner is provisional, and whether a draft took `_SPEED_MIN_SECONDS` depends on how
    busy the machine was, which would make a seeded run's experiments depend on the load."""
    experiments = board.experiments()
    if not opening_done(experiments, plan, max_drafts=max_drafts):
        return None
    if any(e.spec.get("speed_of") and e.status in ("proposed", "running") for e in experiments):
        return None
    best = _accepted(board, higher)
    if not best or best[0].spec.get("speed_of") or (best[0].wall_time or 0.0) < _SPEED_MIN_SECONDS:
        return None
    winner = best[0]
    tried = [e for e in experiments if e.spec.get("speed_of") == winner.id]
    if len(tried) >= _SPEED_TRIES or any(e.status == "done" for e in tried):
        return None
    left = variants_left(winner, experiments)
    if not left:
        return None
    return Step(phase="speed", parent=winner.id, model=winner.spec.get("model"), insight=f"speed:{left[0][0].name}",
                seed=seed)


def speed_report(board: Blackboard) -> dict[str, Any]:
    """What the speed pass bought: variants tried and kept, how much faster each kept one ran the stage it speeds up
    (cross-validation), and how many more experiments the time its descendants saved there would have paid for
    at the run's mean experiment time. Stages a variant skips outright (the tuning it inherits) are not counted."""
    experiments = board.experiments()
    by_id = {e.id: e for e in experiments}
    variants = [e for e in experiments if e.spec.get("speed_of")]

    def stage_seconds(exp: Any) -> float:
        return float((exp.metrics.get("timings") or {}).get("cross_validate") or 0.0)

    kept = [e for e in variants if e.status == "done" and stage_seconds(e) and e.spec["speed_of"] in by_id
            and stage_seconds(by_id[e.spec["speed_of"]])]
    children: dict[str, list[Any]] = {}
    for e in experiments:
        if e.parent:
            children.setdefault(e.parent, []).append(e)
    saved, ratios = 0.0, {}
    for variant in kept:
        ratio = stage_seconds(variant) / stage_seconds(by_id[variant.spec["speed_of"]])
        ratios[variant.id] = round(ratio, 3)
        stack = list(children.get(variant.id, []))
        while stack:  # each descendant's cross-validation would have taken 1/ratio as long on the slower pipeline
            node = stack.pop()
            saved += stage_seconds(node) * max(0.0, 1.0 / ratio - 1.0)
            stack.extend(children.get(node.id, []))
    timed = [e.wall_time for e in experiments if e.wall_time]
    mean = sum(timed) / len(timed) if timed else 0.0
    return {"tried": len(variants), "kept": len(kept), "stage_time_ratio": ratios, "seconds_saved": round(saved, 1),
            "extra_experiments": round(saved / mean, 1) if mean else 0.0}


def _accepted(board: Blackboard, higher: bool) -> list[Any]:
    done = [e for e in board.experiments(status="done") if e.score is not None and e.artifacts.get("predictions.csv")]
    return best_first(done, higher)


def _write_best(board: Blackboard, task: Task, output: Path, higher: bool) -> None:
    best = _accepted(board, higher)
    if best and board.get_meta("best_written") != best[0].id:
        shutil.copyfile(best[0].artifacts["predictions.csv"], output)
        board.set_meta("best_written", best[0].id)


def _candidates(ranked: list[Any]) -> list[Any]:
    """What final selection weighs: the `_TOP_K` best, plus the best of every other model family. The top of a
    long search is often one family's near-copies; an ensemble gains from models that err differently."""
    chosen = ranked[:_TOP_K]
    ids = {e.id for e in chosen}
    return chosen + [e for e in family_leaders(ranked) if e.id not in ids]


def _finalize(board: Blackboard, task: Task, run_dir: Path, output: Path, higher: bool, seed: int) -> dict[str, Any]:
    accepted = _candidates(_accepted(board, higher))
    if not accepted:
        return {"kind": "constant", "rationale": "no experiment passed review; the constant-prediction submission "
                                                 "stands", "experiments": []}
    folders = [str(Path(e.artifacts["predictions.csv"]).parent) for e in accepted]
    try:
        selection = ensemble.select(task, folders, seed=seed)
    except Exception as exc:  # final selection must never cost the run its submission
        _write_best(board, task, output, higher)
        return {"kind": "single", "experiments": [accepted[0].id], "cv": accepted[0].score,
                "rationale": f"final selection failed ({type(exc).__name__}: {exc}); submitted the best experiment"}
    frame = ensemble.submission_frame(task, selection.test_ids, selection.test)
    tmp = output.with_suffix(".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, output)
    weights = {Path(name).name: w for name, w in selection.weights.items() if w}
    return {"kind": selection.kind, "weights": weights, "cv": selection.cv, "spread": selection.spread,
            "single_cv": selection.single_cv, "ensemble_cv": selection.ensemble_cv, "best_single": Path(selection.best_single).name,
            "rationale": selection.rationale, "experiments": list(weights)}


def solve(task_path: str | Path, *, out: str | Path | None = None, brain: Brain | Mapping[str, Brain] | None = None,
          llm: Sequence[str] = (), llm_spend: float | None = None, model_kwargs: dict[str, Any] | None = None,
          strategy: str | Strategy = "greedy", workers: int | None = None, wall_time: float | None = None, seed: int = 0,
          resume: str | Path | None = None, max_experiments: int | None = None, executor: Any = None,
          on_event: Callable[[str, dict[str, Any]], None] | None = None,
          allow_unconfined: bool = False) -> dict[str, Any]:
    """Run the team on a task and return the final selection; `resume` continues a killed run in place.

    A kernel task (`kind: kernel`) runs the `optimize` workflow instead: one
    candidate at a time (`workers` does not apply), its output the fastest
    valid solution, and the scorer's log in the returned `score_log`.

    Who thinks: `brain` (one Brain, or role -> Brain), else task.yaml's `llm:`
    overridden by `llm` specs (`openai:gpt-4o`, `modeler=ollama:llama3.1`,
    `reviewer=offline`), else the offline expert. `llm_spend` (US dollars,
    default the task's `budget.llm_spend`) caps what chat models may cost;
    then the expert decides. `executor` is anything with `run(Launch) ->
    Result` (the local sandbox by default, Ray's in a cluster).

    A chat model's code runs only where the local sandbox confines it (its own root, pid namespace and an
    unprivileged user, see `crew doctor`); `allow_unconfined=True` runs it anyway on a machine that cannot.
    """
    if resume is not None:
        run_dir = Path(resume)
        saved = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        task = Task.load(saved["task"])
        strategy, seed, workers = saved["strategy"], saved["seed"], saved["workers"]
        wall_time, max_experiments = saved["wall_time"], saved.get("max_experiments")
        llm, llm_spend = saved.get("llm", []), saved.get("llm_spend")
        allow_unconfined = bool(saved.get("allow_unconfined", False))
    else:
        task = Task.load(task_path)
        run_dir = Path(out) if out else default_run_dir(task)
        run_dir.mkdir(parents=True, exist_ok=True)
    board = Blackboard(run_dir / "blackboard.sqlite")
    budget_wall = float(wall_time or task.budget.wall_time)
    elapsed_before = float(board.get_meta("elapsed", 0.0)) if resume is not None else 0.0
    board.set_meta("elapsed_before", elapsed_before)
    spend = llm_spend if llm_spend is not None else task.budget.llm_spend
    budget = Budget(wall_time=max(0.0, budget_wall - elapsed_before), experiment_time=task.budget.experiment_time,
                    memory=task.budget.memory, gpus=task.budget.gpus,
                    max_experiments=max(0, (max_experiments or task.budget.max_experiments) - _launched(board)),
                    llm_spend=None if spend is None else max(0.0, spend - board.llm_spend()))
    brain = _run_brains(task, brain, list(llm), budget, model_kwargs)
    if executor is None and _writes_code_with_llm(brain):
        _require_confinement(allow_unconfined)
        executor = LocalExecutor(root=run_dir / "experiments", require_isolation=not allow_unconfined)
    workers = 1 if task.kind == "kernel" else _workers(workers, task)  # a kernel is timed on the whole machine
    if resume is None or board.task() is None:
        board.set_task(task.name, task.model_dump(mode="json"))
    if resume is None:
        (run_dir / "run.json").write_text(json.dumps({"task": str(task.root / "task.yaml"),
                                                      "strategy": _strategy_name(strategy),
                                                      "seed": seed, "workers": workers, "wall_time": budget_wall,
                                                      "max_experiments": max_experiments, "llm": list(llm),
                                                      "llm_spend": llm_spend,
                                                      "allow_unconfined": allow_unconfined}),
                                          encoding="utf-8")
    if task.kind == "kernel":
        final = optimize(task, run_dir, board=board, budget=budget, brain=brain, resume=resume is not None,
                         executor=executor, on_event=on_event)
        return {"run_dir": str(run_dir), "submission": str(run_dir / task.output_name), "final": final,
                "elapsed": float(board.get_meta("elapsed", 0.0)), "experiments": len(board.experiments()),
                "score_log": score_log(board)}
    connection = sqlite3.connect(run_dir / "checkpoints.sqlite", check_same_thread=False)
    try:
        graph = build_solve_graph(task, run_dir, board=board, budget=budget, brain=brain, strategy=strategy,
                                  workers=workers, seed=seed, executor=executor,
                                  checkpointer=SqliteSaver(connection))
        config = {"configurable": {"thread_id": "solve"}, "recursion_limit": 10_000}
        # a run killed before its first checkpoint has nothing to continue: it starts over in its folder
        fresh = resume is None or not graph.get_state(config).values
        start = {"task": str(task.root / "task.yaml"), "run_dir": str(run_dir), "blackboard": str(board.path),
                 "finished": []} if fresh else None
        for kind, payload in events(graph.stream(start, config, stream_mode="updates", subgraphs=True)):
            if on_event:
                on_event(kind, payload)
        state = graph.get_state(config).values
    finally:
        connection.close()
    final = state.get("final") or board.get_meta("final") or {}
    return {"run_dir": str(run_dir), "submission": str(run_dir / task.output_name), "final": final,
            "elapsed": float(board.get_meta("elapsed", 0.0)), "experiments": len(board.experiments())}


def _strategy_name(strategy: str | Strategy) -> str:
    """What run.json keeps so that --resume rebuilds the search: a name, or the name of the strategy's class."""
    if isinstance(strategy, str):
        return strategy
    return next((name for name, cls in STRATEGIES.items() if type(strategy) is cls), type(strategy).__name__)


def _run_brains(task: Task, brain: Brain | Mapping[str, Brain] | None, llm: Sequence[str], budget: Budget,
                model_kwargs: dict[str, Any] | None) -> Brain | Mapping[str, Brain] | None:
    """Brains from task.yaml's `llm:` then the `--llm` specs, or the brain(s) given; chat brains are charged to the
    run's budget, so LLM spend and the calls' wall time count against it."""
    if brain is None and (task.llm is not None or llm):
        brain = team_brains(task.llm, *llm, budget=budget, model_kwargs=model_kwargs)
    brains = brain.values() if isinstance(brain, Mapping) else [brain]
    for each in brains:
        if isinstance(each, ChatBrain) and each.budget is None:
            each.budget = budget
    return brain


def _writes_code_with_llm(brain: Brain | Mapping[str, Brain] | None) -> bool:
    """Whether a chat model writes code that the sandbox will run (the modeler's scripts, the optimizer's kernels)."""
    if isinstance(brain, Mapping):
        return any(isinstance(brain.get(role), ChatBrain) for role in ("modeler", "optimizer"))
    return isinstance(brain, ChatBrain)


def _require_confinement(allowed: bool) -> None:
    seen = confinement()
    if seen["confined"] != "yes" and not allowed:
        raise CrewError(f"this machine cannot confine experiments ({seen['confined']}), and a chat model writes code "
                        "here that would run with access to the host; fix: run crew where user namespaces are "
                        "allowed (see `crew doctor`), or pass --allow-unconfined to accept the risk")


def _launched(board: Blackboard) -> int:
    """Experiments a previous life of this run already sent to the sandbox (a resumed run's budget counts them)."""
    return sum(1 for e in board.experiments() if e.wall_time and e.status != "cached")
