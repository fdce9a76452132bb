"""A human approves every launch: the graph pauses (LangGraph `interrupt`) after the critic, before the sandbox.

    python examples/human_in_the_loop.py [TASK_YAML] [--experiments 3] [--auto yes|no|alternate] [--out DIR]

The analyst profiles, the planner plans, then for each of the plan's first
drafts the modeler writes the experiment and the critic prices it; the graph
then stops and shows you what would run and what the critic expects it to
cost. Answer y to launch it in the sandbox (the reviewer then checks the
result), anything else to skip it. `--auto` answers for you (the test suite
uses it). The pause is a real LangGraph interrupt with a checkpointer: the
process could stop there and a later one resume with the answer.
"""


import argparse
import tempfile
from pathlib import Path
from typing import Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from crew import Blackboard, Budget, Task
from crew.roles.analyst import Analyst
from crew.roles.critic import Critic
from crew.roles.modeler import Modeler
from crew.roles.planner import Planner
from crew.roles.reviewer import Reviewer
from crew.workflows.experiment import RunContext, run_experiment

HERE = Path(__file__).resolve().parent
DEFAULT_TASK = HERE / "tasks" / "breast-cancer" / "task.yaml"


class State(TypedDict, total=False):
    task: str
    run_dir: str
    blackboard: str
    data_report: dict[str, Any]
    plan: dict[str, Any]
    queue: list[str]
    step: dict[str, Any]
    remaining: dict[str, Any]
    proposal: dict[str, Any]
    verdict: dict[str, Any]
    approved: bool
    result: dict[str, Any]
    review: dict[str, Any]


def build(*, experiments: int) -> Any:
    def queue(state: State) -> dict[str, Any]:
        drafts = [i for s in state["plan"]["schedule"] if s["phase"] in ("baseline", "draft") for i in s["insights"]]
        task = Task.load(state["task"])
        left = {"wall_time": 600.0, "experiment_time": task.budget.experiment_time, "memory": task.budget.memory,
                "gpus": 0, "experiments": experiments}
        return {"queue": drafts[:experiments], "remaining": left}

    def next_step(state: State) -> dict[str, Any]:
        model, rest = state["queue"][0], state["queue"][1:]
        return {"queue": rest, "step": {"phase": "draft", "parent": None, "model": model, "insight": model,
                                        "threads": 1}}

    def ask_human(state: State) -> dict[str, Any]:
        verdict, proposal = state["verdict"], state["proposal"]
        if verdict["verdict"] == "reject":
            return {"approved": False}
        answer = interrupt({"experiment": proposal["id"], "insights": proposal["insights"],
                            "critic": verdict["verdict"], "estimate_s": verdict.get("estimate", {}).get("seconds"),
                            "reason": verdict.get("reason", "")})
        if not answer:
            Blackboard(state["blackboard"]).update_experiment(proposal["id"], status="rejected",
                                                              error="a person declined to launch it")
        return {"approved": bool(answer)}

    def more(state: State) -> str:
        return "next_step" if state["queue"] else END

    graph = StateGraph(State, context_schema=RunContext)
    graph.add_node("analyst", Analyst())
    graph.add_node("planner", Planner())
    graph.add_node("queue", queue)
    graph.add_node("next_step", next_step)
    graph.add_node("modeler", Modeler())
    graph.add_node("critic", Critic())
    graph.add_node("ask_human", ask_human)
    graph.add_node("launch", run_experiment)  # crew's own sandbox node: answers hidden, budget charged
    graph.add_node("reviewer", Reviewer())
    graph.add_edge(START, "analyst")
    graph.add_edge("analyst", "planner")
    graph.add_edge("planner", "queue")
    graph.add_edge("queue", "next_step")
    graph.add_edge("next_step", "modeler")
    graph.add_edge("modeler", "critic")
    graph.add_edge("critic", "ask_human")
    graph.add_conditional_edges("ask_human", lambda s: "launch" if s["approved"] else more(s),
                                ["launch", "next_step", END])
    graph.add_edge("launch", "reviewer")
    graph.add_conditional_edges("reviewer", more, ["next_step", END])
    return graph.compile(checkpointer=InMemorySaver())


def main(argv: list[str] | None = None) -> list[tuple[str, bool]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", default=str(DEFAULT_TASK))
    parser.add_argument("--experiments", type=int, default=3)
    parser.add_argument("--auto", choices=["yes", "no", "alternate"], help="answer every pause without asking")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    args = parser.parse_args(argv)
    run_dir = args.out or Path(tempfile.mkdtemp(prefix="crew-hitl-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    graph = build(experiments=args.experiments)
    config = {"configurable": {"thread_id": "approvals"}}
    task = Task.load(args.task)
    board = Blackboard(run_dir / "blackboard.sqlite")
    context = RunContext(task=task, run_dir=run_dir, blackboard=board, budget=Budget.from_task(task))
    state = graph.invoke({"task": args.task, "run_dir": str(run_dir), "blackboard": str(board.path)}, config,
                         context=context)
    answers: list[tuple[str, bool]] = []
    while state.get("__interrupt__"):
        ask = state["__interrupt__"][0].value
        print(f"launch {ask['experiment']} ({' + '.join(ask['insights'])})? the critic says {ask['critic']}, "
              f"about {ask['estimate_s'] or '?'}s. {ask['reason']}")
        if args.auto == "alternate":
            answer = len(answers) % 2 == 0
        elif args.auto:
            answer = args.auto == "yes"
        else:
            answer = input("[y/N] ").strip().lower().startswith("y")
        print(f"  -> {'launch' if answer else 'skip'}")
        answers.append((ask["experiment"], answer))
        state = graph.invoke(Command(resume=answer), config, context=context)
    for exp in Blackboard(run_dir / "blackboard.sqlite").experiments():
        print(f"{exp.id} {'+'.join(exp.insights)}: {exp.status}" + (f", cv {exp.score:.5f}" if exp.score else ""))
    return answers


if __name__ == "__main__":
    main()
