"""Use the whole solve team as one node of a bigger graph: your steps before it, the team, your steps after it.

    python examples/team_as_subgraph.py [TASK_YAML] [--budget SECONDS] [--out DIR]

`build_solve_graph()` returns a compiled LangGraph graph; added as a node,
it shares the state keys it declares (`task`, `run_dir`, `blackboard`,
`final`, ...) with the outer graph, and the run's objects (task, blackboard,
budget, sandbox) reach it as LangGraph's runtime context: the outer graph
declares `context_schema=SolveContext` and is invoked with one. Here the
outer graph checks the task before the team starts and writes a short
summary after it finishes; in your own graph those could be a data refresh,
an approval, a deployment.
"""


import argparse
import tempfile
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from crew import Blackboard, Budget, Task
from crew.workflows.solve import SolveContext, build_solve_graph

HERE = Path(__file__).resolve().parent
DEFAULT_TASK = HERE / "tasks" / "breast-cancer" / "task.yaml"


class Outer(TypedDict, total=False):
    task: str
    run_dir: str
    blackboard: str
    finished: list[str]
    final: dict[str, Any]
    checked: str
    summary: str


def check_task(state: Outer) -> dict[str, Any]:
    """Before the team: refuse a task that does not load (crew's own validation, the same as `crew validate`)."""
    task = Task.load(state["task"])
    return {"checked": f"{task.name}: {task.shapes['train'][0]} train rows, metric {task.metric}"}


def summarise(state: Outer) -> dict[str, Any]:
    """After the team: what a person needs, from the blackboard the team left."""
    board = Blackboard(state["blackboard"])
    done = board.experiments(status="done")
    final = state["final"]
    text = (f"{state['checked']}; {len(done)} experiments passed review; final {final.get('kind')} "
            f"with cv {final.get('cv')}; submission in {Path(state['run_dir']) / 'submission.csv'}")
    return {"summary": text}


def build() -> Any:
    """The outer graph; it compiles without a task: the run arrives at invoke time, as its context."""
    outer = StateGraph(Outer, context_schema=SolveContext)
    outer.add_node("check_task", check_task)
    outer.add_node("team", build_solve_graph())  # the compiled solve graph is one node here
    outer.add_node("summarise", summarise)
    outer.add_edge(START, "check_task")
    outer.add_edge("check_task", "team")
    outer.add_edge("team", "summarise")
    outer.add_edge("summarise", END)
    return outer.compile()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", default=str(DEFAULT_TASK))
    parser.add_argument("--budget", type=float, default=60.0, help="the team's wall time in seconds")
    parser.add_argument("--max-experiments", type=int, default=6)
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    args = parser.parse_args(argv)
    run_dir = args.out or Path(tempfile.mkdtemp(prefix="crew-subgraph-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    task = Task.load(args.task)
    board = Blackboard(run_dir / "blackboard.sqlite")
    budget = Budget(wall_time=args.budget, experiment_time=task.budget.experiment_time, memory=task.budget.memory,
                    max_experiments=args.max_experiments)
    final = build().invoke({"task": str(task.root / "task.yaml"), "run_dir": str(run_dir),
                            "blackboard": str(board.path), "finished": []}, {"recursion_limit": 10_000},
                           context=SolveContext(task=task, run_dir=run_dir, blackboard=board, budget=budget))
    print(final["summary"])
    return final


if __name__ == "__main__":
    main()
