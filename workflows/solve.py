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
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
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
    team_brains,
)
from crew.roles.analyst import Analyst
from crew.roles.critic import Critic
from crew.roles.modeler import Modeler
from crew.roles.planner import Planner
from crew.roles.reviewer import Reviewer
from crew.roles.speed_optimizer import SpeedOptimizer
from crew.sandbox import GPUSlots, GPUSource, LocalExecutor, Pool, available_memory, confinement
from crew.tools import sizing
from crew.tools.pipelines import promote_stages, rendered
from crew.tools.probe import judge, judge_canaries, perturb_train
from crew.workflows._run import events, remaining
from crew.workflows.experiment import MIN_EXPERIMENT, RunContext, run_experiment
from crew.workflows.final import constant_submission, finalize, write_best
from crew.workflows.optimize import optimize, score_log
from crew.workflows.speed_pass import speed_report, speed_step
from crew.workflows.strategies import STRATEGIES, Strategy

__all__ = ["ExperimentState", "SolveContext", "SolveState", "build_experiment_graph", "build_solve_graph",
           "default_run_dir", "probe", "solve", "speed_report"]



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


def _workers(requested: int | None, task: Task, executor: Any = None) -> int:
    """Experiments side by side: asked for, else what cores, memory and GPUs allow (the sandbox pool's rule); the
    GPUs are the executor's when it lists them (a Ray cluster's), else this machine's."""
    if requested:
        return max(1, requested)
    source = executor if isinstance(executor, GPUSource) else None
    gpus = len(GPUSlots(nvml=source).devices()) if task.budget.gpus else 0
    return Pool.size(cores=len(os.sched_getaffinity(0)), memory_available=available_memory(),
                     per_experiment_memory=task.budget.memory, gpu_count=gpus, gpus_per_experiment=task.budget.gpus)


@dataclass
class SolveContext(RunContext):
    """A solve run's context: `RunContext` plus the search strategy that proposes each round's steps."""

    search: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.search is None:
            self.search = STRATEGIES["greedy"](seed=self.seed)


# -- the experiment branch -------------------------------------------------------------

def _first(state: ExperimentState) -> str:
    return "optimizer" if state["step"].get("phase") == "speed" else "modeler"


def _after_optimizer(state: ExperimentState) -> str:
    proposal = state["proposal"]
    return "critic" if proposal.get("id") and not proposal.get("rejected") else "done"


def _after_run(state: ExperimentState) -> str:
    return "review" if state["result"]["reason"] not in ("rejected", "cached") else "done"


def probe(state: ExperimentState, runtime: Runtime[SolveContext]) -> dict[str, Any]:
    """A chat model's code is run once more on a train table with new labels for random rows: accepted only
    if its out-of-fold predictions do not follow each row's own label (tools/probe.py)."""
    context = SolveContext.of(runtime)
    task, board, budget = context.task, context.blackboard, context.budget
    exp_id, review = state["proposal"]["id"], dict(state.get("review") or {})
    found = board.experiment(exp_id)
    # a chat model's script (the modeler marks it own_code, and the critic's cheaper variants keep the mark)
    if not review.get("accepted") or not found.spec.get("own_code") or not task.data:
        return {}
    left = budget.remaining()
    wall = min(left.experiment_time, left.wall_time - context.reserve, 2.0 * float(found.wall_time or 0.0) + 10.0)
    verdict: str | None = None
    if wall < max(MIN_EXPERIMENT, float(found.wall_time or 0.0) * 1.2):
        verdict = "not verified: too little wall time left to run the label probe, so it is not trusted"
    else:
        change = perturb_train(task, context.run_dir / "probes" / exp_id, seed=context.seed)
        result = context.executor.run(context.launch(f"{exp_id}-probe", found.code, context.limits(wall),
                                                     shared=False, data_sources=change.sources))
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


def _done(state: ExperimentState, runtime: Runtime[SolveContext]) -> dict[str, Any]:
    """The branch's end: a reviewed experiment of crew's own script fills the stage cache later ones read."""
    context = SolveContext.of(runtime)
    exp_id = state.get("proposal", {}).get("id")
    workdir = (state.get("result") or {}).get("workdir")
    if exp_id and workdir and (state.get("review") or {}).get("accepted"):
        found = context.blackboard.experiment(exp_id)  # only crew's own scripts may fill the cache others trust
        if rendered(found.code, found.spec, context.task):
            promote_stages(found.code, workdir, context.stage_cache)
    return {"finished": [exp_id] if exp_id else []}


def build_experiment_graph() -> Any:
    """One experiment: modeler (or, for a speed step, the optimizer) -> critic -> sandbox -> reviewer -> probe."""
    branch = StateGraph(ExperimentState, context_schema=SolveContext)
    branch.add_node("modeler", Modeler())
    branch.add_node("optimizer", SpeedOptimizer())
    branch.add_node("critic", Critic())
    branch.add_node("run", run_experiment)
    branch.add_node("review", Reviewer())
    branch.add_node("probe", probe)
    branch.add_node("done", _done)
    branch.add_conditional_edges(START, _first, ["modeler", "optimizer"])
    branch.add_edge("modeler", "critic")
    branch.add_conditional_edges("optimizer", _after_optimizer, ["critic", "done"])
    branch.add_edge("critic", "run")
    branch.add_conditional_edges("run", _after_run, ["review", "done"])
    branch.add_edge("review", "probe")
    branch.add_edge("probe", "done")
    branch.add_edge("done", END)
    return branch.compile()


# -- the main graph -------------------------------------------------------------------------

def _setup(state: SolveState, runtime: Runtime[SolveContext]) -> dict[str, Any]:
    context = SolveContext.of(runtime)
    if not context.output.exists():
        constant_submission(context.task, context.output)
        context.blackboard.post(Message(content=f"wrote a constant-prediction {context.task.output_name} as a "
                                                "safety net", sent_from="workflow", cause_by="workflow.submission"))
    return {"rounds": 0}


def _dispatch(state: SolveState, runtime: Runtime[SolveContext]) -> dict[str, Any]:
    context = SolveContext.of(runtime)
    board, task = context.blackboard, context.task
    context.record_elapsed()
    write_best(board, task, context.output, task.metric_info.higher_is_better)
    return {"rounds": state.get("rounds", 0) + 1}


def _route(state: SolveState, runtime: Runtime[SolveContext]) -> list[Send] | str:
    """The next round: one `Send` per step the speed pass and the search propose, or final selection when the
    budget would not hold even the cheapest experiment so far."""
    context = SolveContext.of(runtime)
    board, budget, workers, reserve = context.blackboard, context.budget, context.workers, context.reserve
    higher = context.task.metric_info.higher_is_better
    left = budget.remaining()
    times = [e.wall_time for e in board.experiments(status="done") if e.wall_time]
    cheapest = max(MIN_EXPERIMENT, 0.8 * min(times)) if times else MIN_EXPERIMENT
    if budget.exhausted() or left.wall_time - reserve < cheapest:
        return "finalize"  # not even the cheapest experiment so far would fit
    if _out_of_time_streak(board, 2 * workers, left.wall_time - reserve):
        return "finalize"  # the last proposals were all refused for time, and less time is left now
    search = context.search
    speed = speed_step(board, state["plan"], higher, context.seed, max_drafts=getattr(search, "max_drafts", None))
    steps = [speed] if speed else []
    steps += search.next_steps(board, state["plan"], workers - len(steps), higher_is_better=higher, pending=steps)
    if not steps:
        return "finalize"
    left_now = remaining(budget, reserve)
    base = {"task": state["task"], "blackboard": state["blackboard"], "data_report": state["data_report"],
            "plan": state["plan"], "remaining": left_now, "stage_cache": str(context.stage_cache)}
    share = round(sizing.share(left_now["wall_time"], left_now["experiments"], workers), 1)
    return [Send("experiment", {**base, "step": {**step.model_dump(), "threads": context.threads, "share": share}})
            for step in steps]


def _finalize_node(state: SolveState, runtime: Runtime[SolveContext]) -> dict[str, Any]:
    context = SolveContext.of(runtime)
    board, task = context.blackboard, context.task
    final = {**finalize(board, task, context.run_dir, context.output,
                         task.metric_info.higher_is_better, context.seed), "speed": speed_report(board)}
    board.set_meta("final", final)
    context.record_elapsed()
    board.post(Message(content=final["rationale"], sent_from="workflow", cause_by="workflow.final", payload=final))
    return {"final": final}


def build_solve_graph(*, checkpointer: Any = None) -> Any:
    """The solve graph, compiled without a run: invoke it with `context=SolveContext(...)` (what `solve` does).
    Each round fans out one experiment branch (`build_experiment_graph`) per free worker."""
    branch = build_experiment_graph()

    def experiment(state: ExperimentState, runtime: Runtime[SolveContext]) -> dict[str, Any]:
        """One branch of the fan-out; only `finished` flows back, so parallel branches never collide."""
        return {"finished": branch.invoke(state, context=runtime.context)["finished"]}

    graph = StateGraph(SolveState, context_schema=SolveContext)
    graph.add_node("setup", _setup)
    graph.add_node("analyst", Analyst())
    graph.add_node("planner", Planner())
    graph.add_node("dispatch", _dispatch)
    graph.add_node("experiment", experiment)
    graph.add_node("finalize", _finalize_node)
    graph.add_edge(START, "setup")
    graph.add_edge("setup", "analyst")
    graph.add_edge("analyst", "planner")
    graph.add_edge("planner", "dispatch")
    graph.add_conditional_edges("dispatch", _route, ["experiment", "finalize"])
    graph.add_edge("experiment", "dispatch")
    graph.add_edge("finalize", END)
    return graph.compile(checkpointer=checkpointer)


def solve(task_path: str | Path, *, out: str | Path | None = None, brain: Brain | Mapping[str, Brain] | None = None,
          llm: Sequence[str] = (), llm_spend: float | None = None, model_kwargs: dict[str, Any] | None = None,
          strategy: str | Strategy = "greedy", workers: int | None = None, wall_time: float | None = None, seed: int = 0,
          resume: str | Path | None = None, max_experiments: int | None = None, executor: Any = None,
          on_event: Callable[[str, dict[str, Any]], None] | None = None,
          allow_unconfined: bool = False) -> dict[str, Any]:
    """Run the team on a task and return the final selection; `resume` continues a killed run in place.

    A kernel task (`kind: kernel`) runs the `optimize` workflow instead: one
    candidate at a time (`workers` does not apply), its output the fastest
    valid solution, and the scorer's log in the returned `score_log`. A
    seq2seq task (`kind: seq2seq`) runs the `normalize` workflow
    (workflows/seq2seq.py): learnt token mappings, one at a time; a task
    of images or sounds (`media:`) runs the `see` workflow
    (workflows/media.py): networks and a boosted baseline, one at a time.

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
    if task.targets:  # several targets: one run per column (workflows/columns.py)
        from crew.workflows.columns import solve_columns

        if resume is None:
            _write_run_record(run_dir, task, strategy=strategy, seed=seed, workers=workers,
                              wall_time=float(wall_time or task.budget.wall_time), max_experiments=max_experiments,
                              llm=llm, llm_spend=llm_spend, allow_unconfined=allow_unconfined, columns=task.targets)
        return solve_columns(task, run_dir, solve=solve, wall_time=float(wall_time or task.budget.wall_time),
                             resume=resume is not None, brain=brain, llm=llm, llm_spend=llm_spend,
                             model_kwargs=model_kwargs, strategy=strategy, workers=workers, seed=seed,
                             max_experiments=max_experiments, executor=executor, on_event=on_event,
                             allow_unconfined=allow_unconfined)
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
    # a kernel is timed on the whole machine; a seq2seq run's experiments each build on the one before
    workers = 1 if task.kind in ("kernel", "seq2seq") or task.media else _workers(workers, task, executor)
    if resume is None or board.task() is None:
        board.set_task(task.name, task.model_dump(mode="json"))
    if resume is None:
        _write_run_record(run_dir, task, strategy=strategy, seed=seed, workers=workers, wall_time=budget_wall,
                          max_experiments=max_experiments, llm=llm, llm_spend=llm_spend,
                          allow_unconfined=allow_unconfined)
    if task.kind == "kernel":
        final = optimize(task, run_dir, board=board, budget=budget, brain=brain, resume=resume is not None,
                         executor=executor, on_event=on_event)
        return {"run_dir": str(run_dir), "submission": str(run_dir / task.output_name), "final": final,
                "elapsed": float(board.get_meta("elapsed", 0.0)), "experiments": len(board.experiments()),
                "score_log": score_log(board)}
    if task.media:
        from crew.workflows.media import see

        final = see(task, run_dir, board=board, budget=budget, brain=brain, executor=executor, seed=seed,
                    on_event=on_event)
        return {"run_dir": str(run_dir), "submission": str(run_dir / task.output_name), "final": final,
                "elapsed": float(board.get_meta("elapsed", 0.0)), "experiments": len(board.experiments())}
    if task.kind == "seq2seq":
        from crew.workflows.seq2seq import normalize

        final = normalize(task, run_dir, board=board, budget=budget, brain=brain, executor=executor, seed=seed,
                          on_event=on_event)
        return {"run_dir": str(run_dir), "submission": str(run_dir / task.output_name), "final": final,
                "elapsed": float(board.get_meta("elapsed", 0.0)), "experiments": len(board.experiments())}
    connection = sqlite3.connect(run_dir / "checkpoints.sqlite", check_same_thread=False)
    try:
        graph = build_solve_graph(checkpointer=SqliteSaver(connection))
        search = STRATEGIES[strategy](seed=seed) if isinstance(strategy, str) else strategy
        context = SolveContext(task=task, run_dir=run_dir, blackboard=board, budget=budget, executor=executor,
                               brain=brain, seed=seed, workers=workers, search=search)
        config = {"configurable": {"thread_id": "solve"}, "recursion_limit": 10_000}
        # a run killed before its first checkpoint has nothing to continue: it starts over in its folder
        fresh = resume is None or not graph.get_state(config).values
        start = {"task": str(task.root / "task.yaml"), "run_dir": str(run_dir), "blackboard": str(board.path),
                 "finished": []} if fresh else None
        for kind, payload in events(graph.stream(start, config, context=context, stream_mode="updates",
                                                 subgraphs=True)):
            if on_event:
                on_event(kind, payload)
        state = graph.get_state(config).values
    finally:
        connection.close()
    final = state.get("final") or board.get_meta("final") or {}
    return {"run_dir": str(run_dir), "submission": str(run_dir / task.output_name), "final": final,
            "elapsed": float(board.get_meta("elapsed", 0.0)), "experiments": len(board.experiments())}


def _write_run_record(run_dir: Path, task: Task, *, strategy: str | Strategy, seed: int, workers: int | None,
                      wall_time: float, max_experiments: int | None, llm: Sequence[str], llm_spend: float | None,
                      allow_unconfined: bool, **more: Any) -> None:
    """`run.json`: what `--resume` needs to start the run again as it was started (`more`: what a kind of run
    adds, such as the columns of a several-target run)."""
    (run_dir / "run.json").write_text(json.dumps({
        "task": str(task.root / "task.yaml"), "strategy": _strategy_name(strategy), "seed": seed, "workers": workers,
        "wall_time": wall_time, "max_experiments": max_experiments, "llm": list(llm), "llm_spend": llm_spend,
        "allow_unconfined": allow_unconfined, **more}), encoding="utf-8")


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
