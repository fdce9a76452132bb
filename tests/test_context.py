"""Graphs compile without a run; the run reaches nodes and roles as LangGraph's runtime context."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from crew import Blackboard, Budget, Decision, ExpertBrain, Role, Task
from crew.testing import tiny_task
from crew.workflows.experiment import RunContext, run_experiment
from crew.workflows.solve import SolveContext, build_solve_graph


class _Seen(Decision):
    board: str
    brain: str


class _Probe(Role):
    """Decides nothing but which board and brain it was given."""

    profile = "analyst"
    goal = "report what it was bound to"
    decision = _Seen
    writes = ("seen",)

    def expert(self, context: Any) -> _Seen:
        return _Seen(rationale="", board="", brain="expert")

    def act(self, decision: Decision, context: Any, blackboard: Blackboard) -> dict[str, Any]:
        assert isinstance(decision, _Seen)
        return {"seen": {"board": str(blackboard.path), "brain": decision.brain}}


class _Named(ExpertBrain):
    def decide(self, role: Role, context: Any, *, blackboard: Blackboard | None = None) -> Decision:
        return _Seen(rationale="", board="", brain="named")


@dataclass
class _Context:
    blackboard: Blackboard
    brain: Any = None


class _State(TypedDict, total=False):
    seen: dict


def _graph(role: Role) -> Any:
    graph = StateGraph(_State, context_schema=_Context)
    graph.add_node("probe", role)
    graph.add_edge(START, "probe")
    graph.add_edge("probe", END)
    return graph.compile()


def test_a_role_takes_the_board_and_its_brain_from_the_context(tmp_path: Path) -> None:
    board = Blackboard(tmp_path / "context.sqlite")
    seen = _graph(_Probe()).invoke({}, context=_Context(board, {"analyst": _Named()}))["seen"]
    assert seen == {"board": str(board.path), "brain": "named"}
    assert board.messages(sent_from="analyst")  # its decision was posted on the context's board


def test_what_the_constructor_gave_wins_over_the_context(tmp_path: Path) -> None:
    own = Blackboard(tmp_path / "own.sqlite")
    seen = _graph(_Probe(blackboard=own, brain=ExpertBrain())).invoke(
        {}, context=_Context(Blackboard(tmp_path / "context.sqlite"), _Named()))["seen"]
    assert seen == {"board": str(own.path), "brain": "expert"}


def test_the_solve_graph_compiles_without_a_task_and_says_what_it_needs() -> None:
    graph = build_solve_graph()
    nodes = set(graph.get_graph(xray=1).nodes)
    assert {"setup", "analyst", "planner", "dispatch", "finalize", "experiment:run", "experiment:review"} <= nodes
    with pytest.raises(TypeError, match="context=SolveContext"):
        graph.invoke({"task": "x", "finished": []})


def test_the_sandbox_node_refuses_to_run_without_the_run(tmp_path: Path) -> None:
    graph = StateGraph(dict, context_schema=RunContext)
    graph.add_node("run", run_experiment)
    graph.add_edge(START, "run")
    graph.add_edge("run", END)
    with pytest.raises(TypeError, match="RunContext"):
        graph.compile().invoke({"proposal": {"id": "x"}, "verdict": {"verdict": "approve", "code": ""}})


def test_the_run_context_hides_what_the_task_hides(tmp_path: Path) -> None:
    task = Task.load(tiny_task(tmp_path / "task"))
    context = SolveContext(task=task, run_dir=tmp_path / "run", blackboard=Blackboard(tmp_path / "b.sqlite"),
                           budget=Budget.from_task(task))
    launch = context.launch("e1", "print(1)", context.limits(30.0))
    assert launch.hide == [str(task.root / "grading")] == [str(p) for p in task.hidden]
    assert launch.data_files == task.data_files and set(task.data_files or []) >= {task.data.train, task.data.test}
    assert launch.shared_dir == str(context.stage_cache)
    assert context.launch("e1", "print(1)", context.limits(30.0), shared=False).shared_dir is None
    assert context.search is not None and context.reserve >= 8.0
