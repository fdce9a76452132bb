"""ChatBrain end to end: the real langchain-openai client against a scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import pytest
from pydantic import Field

import crew
from crew.testing import ScriptedChatServer

pytest.importorskip("langchain_openai")
# "test-model" has no known price: the tests that are not about pricing do not need that warning.
pytestmark = pytest.mark.filterwarnings("ignore:no price known:UserWarning")

PROMPT_TOKENS, COMPLETION_TOKENS = 123, 45  # what the server reports for every answer
AUTH_ERROR = (401, {"error": {"message": "bad key", "type": "invalid_request_error", "code": "invalid_api_key"}})
SERVER_ERROR = (500, {"error": {"message": "the server fell over", "type": "server_error", "code": None}})
VALID = '{"verdict": "reject", "confidence": 0.9, "rationale": "the evidence is thin"}'


@pytest.fixture
def server(monkeypatch) -> Iterator[ScriptedChatServer]:
    for var in ("OPENAI_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with ScriptedChatServer(prompt_tokens=PROMPT_TOKENS, completion_tokens=COMPLETION_TOKENS) as srv:
        yield srv


@pytest.fixture
def board(tmp_path) -> Iterator[crew.Blackboard]:
    with crew.Blackboard(tmp_path / "bb.sqlite") as bb:
        yield bb


def brain_for(server: ScriptedChatServer, **kwargs: Any) -> crew.ChatBrain:
    return crew.ChatBrain(f"{server.base_url}#test-model", model_kwargs={"max_retries": 0, "timeout": 10}, **kwargs)


# -- the role --------------------------------------------------------------------------------------

class Verdict(crew.Decision):
    verdict: Literal["accept", "reject"]
    confidence: float = Field(ge=0.0, le=1.0)


class Judge(crew.Role):
    profile = "judge"
    goal = "decide whether the claim in the question holds"
    decision = Verdict
    reads = ("question",)
    writes = ("verdict",)
    prompt = "Question for the judge: {question}"

    def expert(self, context: Mapping[str, Any]) -> Verdict:
        return Verdict(verdict="accept", confidence=0.5, rationale="expert default")

    def act(self, decision: Verdict, context: Mapping[str, Any], blackboard: crew.Blackboard) -> dict[str, Any]:
        return {"verdict": decision.verdict}


def ask(role: Judge, board: crew.Blackboard, question: str = "Is the sky green?") -> Verdict:
    """Run the role as a LangGraph node; return the decision it posted."""
    update = role({"question": question, "blackboard": board})
    posted = board.messages(kind="judge.decide")[-1]
    assert update == {"verdict": posted.payload["verdict"]}
    return Verdict.model_validate(posted.payload)


# -- the tests -------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [VALID, f"Here you go:\n```json\n{VALID}\n```\n"], ids=["bare", "fenced"])
def test_valid_answer_decides_and_records_usage(server, board, answer):
    server.script = [answer]
    decision = ask(Judge(brain=brain_for(server)), board, "Is the sky green?")

    assert (decision.verdict, decision.confidence) == ("reject", 0.9)  # the expert would say accept, 0.5
    assert len(server.requests) == 1
    request = server.requests[0]
    assert request["model"] == "test-model"
    assert server.headers[0].get("authorization") == "Bearer not-needed"  # the URL form's placeholder key
    system, user = request["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    assert "You are the judge" in system["content"] and Judge.goal in system["content"]
    assert json.dumps(Verdict.model_json_schema(), separators=(",", ":")) in system["content"]
    assert user["content"] == "Question for the judge: Is the sky green?"

    [usage] = board.llm_usage()
    assert (usage.role, usage.model, usage.ok) == ("judge", "test-model", True)
    assert (usage.input_tokens, usage.output_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert usage.estimated_tokens is False
    assert not board.messages(kind="brain.retry") and not board.messages(kind="brain.fallback")


def test_malformed_answers_are_fed_back_until_valid(server, board):
    server.script = ["I think the answer is no.", '{"verdict": "maybe", "confidence": 0.4}', VALID]
    decision = ask(Judge(brain=brain_for(server)), board)

    assert decision.verdict == "reject" and decision.rationale == "the evidence is thin"
    assert len(server.requests) == 3
    second, third = server.prompts(1), server.prompts(2)
    assert second[2] == "I think the answer is no."  # the bad answer is replayed as the assistant's turn
    assert "That answer was not valid: the answer holds no JSON object" in second[3]
    assert "the JSON does not fit Verdict" in third[-1] and "verdict" in third[-1] and "'accept'" in third[-1]
    assert [m["role"] for m in server.requests[2]["messages"]] == ["system", "user", "assistant", "user", "assistant", "user"]

    retries = board.messages(kind="brain.retry")
    assert [m.payload["attempt"] for m in retries] == [1, 2]
    assert not board.messages(kind="brain.fallback")
    assert len(board.llm_usage()) == 3


def test_all_answers_malformed_falls_back_to_expert(server, board):
    server.script = ["no", "still no", '{"verdict": "reject", "confidence": 7}']
    decision = ask(Judge(brain=brain_for(server, max_retries=2)), board)

    assert decision == Judge().expert({})
    assert len(server.requests) == 3
    [fallback] = board.messages(kind="brain.fallback")
    assert fallback.payload["reason"] == "malformed" and len(fallback.payload["errors"]) == 3
    assert "confidence" in fallback.payload["errors"][2]
    assert len(board.messages(kind="brain.retry")) == 3


def test_auth_error_stops_the_run(server, board):
    server.script = [AUTH_ERROR]
    with pytest.raises(crew.LLMAuthError, match="set a valid API key") as info:
        ask(Judge(brain=brain_for(server)), board)

    assert "test-model" in str(info.value)
    assert len(server.requests) == 1
    assert not board.messages(kind="brain.fallback") and not board.messages(kind="judge.decide")


def test_server_errors_are_retried_with_backoff_then_answered(server, board):
    server.script = [SERVER_ERROR, (429, {"error": {"message": "slow down", "type": "rate_limit"}}), VALID]
    decision = ask(Judge(brain=brain_for(server, backoff=0.01)), board)

    assert decision.verdict == "reject" and decision.confidence == 0.9  # the model's answer, on the third request
    assert len(server.requests) == 3
    retries = board.messages(kind="brain.provider_retry")
    assert [m.payload["attempt"] for m in retries] == [1, 2]
    assert retries[1].payload["delay"] == pytest.approx(0.02)  # exponential: 0.01, then 0.02
    assert [u.ok for u in board.llm_usage()] == [False, False, True]
    assert not board.messages(kind="brain.fallback")


def test_server_errors_past_the_retries_fall_back_to_expert(server, board):
    server.script = [SERVER_ERROR] * 3 + [VALID]
    decision = ask(Judge(brain=brain_for(server, provider_retries=2, backoff=0.01)), board)

    assert decision == Judge().expert({})
    assert len(server.requests) == 3  # the first try and two retries; the client itself never retries (max_retries=0)
    [error] = board.messages(kind="brain.error")
    assert ("500" in error.payload["error"] or "fell over" in error.payload["error"]) and error.payload["attempts"] == 3
    [fallback] = board.messages(kind="brain.fallback")
    assert fallback.payload["reason"] == "provider_error"
    assert [u.ok for u in board.llm_usage()] == [False, False, False]


def test_money_budget_with_unknown_price_is_charged_conservatively(server, board):
    from crew._pricing import CONSERVATIVE, cost_of

    per_call = cost_of(CONSERVATIVE, PROMPT_TOKENS, COMPLETION_TOKENS)
    budget = crew.Budget(llm_spend=1.5 * per_call)  # room for a second call, not a third
    server.script = [VALID, VALID, VALID]
    role = Judge(brain=brain_for(server, budget=budget, prices=None))

    with pytest.warns(UserWarning, match="no price known for 'test-model'") as caught:
        assert ask(role, board).verdict == "reject"
        assert budget.spent["llm_spend"] == pytest.approx(per_call)
        assert ask(role, board).verdict == "reject"
    assert sum("no price known" in str(w.message) for w in caught) == 1  # warned once, not per call
    assert len(board.messages(kind="brain.warning")) == 1
    assert budget.spent["llm_spend"] == pytest.approx(2 * per_call)
    assert budget.spent["llm_tokens"] == 2 * (PROMPT_TOKENS + COMPLETION_TOKENS)
    assert not budget.llm_allowed()
    assert len(server.requests) == 2

    assert ask(role, board) == Judge().expert({})  # spent: the expert decides, and nobody is asked
    assert len(server.requests) == 2
    [fallback] = board.messages(kind="brain.fallback")
    assert fallback.payload["reason"] == "llm_budget"
    assert board.llm_spend() == 0.0  # unknown price: the blackboard records no known spend
    assert [u.cost for u in board.llm_usage()] == [None, None]


def test_known_price_is_recorded_as_spend(server, board, recwarn):
    server.script = [VALID]
    ask(Judge(brain=brain_for(server, prices={"test-model": (1.0, 2.0)})), board)

    expected = (PROMPT_TOKENS * 1.0 + COMPLETION_TOKENS * 2.0) / 1e6
    assert board.llm_spend() == pytest.approx(expected)
    assert board.llm_usage()[0].cost == pytest.approx(expected)
    assert not [w for w in recwarn if "no price known" in str(w.message)]
