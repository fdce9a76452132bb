"""check_role: the framework's roles pass it; roles that break the contract fail with a reason."""

from __future__ import annotations

from typing import ClassVar

import pytest

from crew import Decision, Role
from crew.roles.analyst import Analyst
from crew.roles.planner import Planner
from crew.testing import RoleCheckError, ScriptedChatModel, check_role
from tests.conftest import EXAMPLE_TASK


@pytest.fixture(scope="module")
def report():
    from crew.roles.analyst import Analyst as A

    context = A().context({"task": str(EXAMPLE_TASK / "task.yaml"), "run_dir": "."})
    return A().expert(context).model_dump(mode="json")


def test_analyst_passes(tmp_path):
    check_role(Analyst(), {"task": str(EXAMPLE_TASK / "task.yaml"), "run_dir": str(tmp_path)})


def test_planner_passes(report):
    check_role(Planner(), {"task": str(EXAMPLE_TASK / "task.yaml"), "data_report": report})


class Answer(Decision):
    value: int


class Good(Role):
    profile: ClassVar[str] = "counter"
    goal: ClassVar[str] = "Count the items."
    decision: ClassVar[type[Decision]] = Answer
    reads: ClassVar[tuple[str, ...]] = ("items",)
    writes: ClassVar[tuple[str, ...]] = ("count",)

    def expert(self, context):
        return Answer(value=len(context["items"]))

    def act(self, decision, context, blackboard):
        return {"count": decision.value}

    def example_state(self, workdir):
        return {"items": [1, 2, 3]}


def test_a_user_role_passes_with_its_example_state():
    check_role(Good())


def test_a_role_without_expert_policy_passes_by_refusing_clearly():
    class LLMOnly(Good):
        def expert(self, context):
            return Role.expert(self, context)

    check_role(LLMOnly())


@pytest.mark.parametrize(
    ("attrs", "fragment"),
    [
        ({"goal": ""}, "goal"),
        ({"decision": Decision}, "own subclass"),
        ({"reads": ["items"]}, "tuple of str"),
        ({"act": lambda self, d, c, b: {"count": 1, "extra": 2}}, "undeclared state key"),
        ({"context": lambda self, state: {"items": state.get("items", [])}}, "ran without state key 'items'"),
        ({"expert": lambda self, c: Answer(value=__import__("random").randint(0, 10**9))}, "differs"),
    ],
    ids=["no-goal", "base-decision", "reads-not-tuple", "undeclared-write", "ignores-missing-key", "non-deterministic"],
)
def test_broken_roles_fail_with_a_reason(attrs, fragment):
    broken = type("Broken", (Good,), attrs)
    with pytest.raises(RoleCheckError, match=fragment):
        check_role(broken())


def test_missing_example_state_asks_for_one():
    class NoExample(Good):
        example_state = None

    with pytest.raises(RoleCheckError, match="pass state="):
        check_role(NoExample())


def test_scripted_model_answers_in_order_and_raises_when_exhausted():
    from langchain_core.messages import HumanMessage

    model = ScriptedChatModel(answers=["a", lambda messages: messages[-1].content.upper(), ValueError("boom")])
    assert model.invoke([HumanMessage("x")]).content == "a"
    reply = model.invoke([HumanMessage("shout")])
    assert reply.content == "SHOUT" and reply.usage_metadata["output_tokens"] == 1
    with pytest.raises(ValueError, match="boom"):
        model.invoke([HumanMessage("x")])
    with pytest.raises(IndexError, match="3 answers"):
        model.invoke([HumanMessage("x")])


def test_check_role_names_a_state_key_the_role_reads_without_declaring():
    class Peeks(Good):
        def context(self, state):
            return {**super().context(state), "secret": state.get("api_key")}

    with pytest.raises(RoleCheckError, match=r"read state key\(s\) \['api_key'\] it does not declare"):
        check_role(Peeks())

    class Declares(Peeks):
        optional = ("api_key",)

    check_role(Declares())  # a key read when present is fine once it is declared optional
