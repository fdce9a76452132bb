"""ChatBrain with langchain-core's scripted fake chat models: parsing, retries, fallback, usage and money."""

from __future__ import annotations

from typing import ClassVar, Literal

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from pydantic import Field

from crew import Blackboard, Budget, ChatBrain, CrewError, Decision, ExpertBrain, NoExpertPolicy, Role
from crew._brain import MalformedAnswer, chat_model_from_string, parse_decision
from crew._pricing import CONSERVATIVE, price_of
from crew.testing import ScriptedChatModel


class Verdict(Decision):
    verdict: Literal["accept", "reject"]
    confidence: float = Field(ge=0, le=1)


class Judge(Role):
    profile: ClassVar[str] = "judge"
    goal: ClassVar[str] = "Accept or reject a claim."
    decision: ClassVar[type[Decision]] = Verdict
    reads: ClassVar[tuple[str, ...]] = ("claim",)
    writes: ClassVar[tuple[str, ...]] = ("verdict",)
    prompt: ClassVar[str] = "Claim: {claim}"

    def expert(self, context):
        return Verdict(rationale="offline", verdict="reject", confidence=0.5)

    def act(self, decision, context, blackboard):
        return {"verdict": decision.verdict}


@pytest.fixture
def board(tmp_path):
    with Blackboard(tmp_path / "bb.sqlite") as bb:
        yield bb


GOOD = '{"rationale": "looks right", "verdict": "accept", "confidence": 0.9}'


def test_valid_answer_decides(board):
    model = FakeListChatModel(responses=[GOOD])
    update = Judge(brain=ChatBrain(model, prices={"FakeListChatModel": (0, 0)}), blackboard=board)({"claim": "2+2=4"})
    assert update == {"verdict": "accept"}
    (message,) = board.messages(kind="judge.decide")
    assert message.payload["confidence"] == 0.9 and message.payload_type == "Verdict"
    (usage,) = board.llm_usage(role="judge")
    assert usage.estimated_tokens and usage.input_tokens > 0  # the fake model reports no usage: counted, flagged


def test_fenced_answer_with_prose_is_parsed():
    text = "Here you go:\n```json\n" + GOOD + "\n```\nHope it helps."
    assert parse_decision(text, Verdict).verdict == "accept"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("no json here", "no JSON object"), ('{"verdict": "accept", "confidence": ', "no JSON object"),
     ('{"verdict": "accept", "confidence": 0.9,}', "does not parse"),
     ('{"verdict": "maybe", "confidence": 0.9}', "verdict"), ('{"verdict": "accept", "confidence": 2}', "confidence"),
     ('{"verdict": "accept", "confidence": 0.5, "extra": 1}', "extra")],
)
def test_malformed_answers_name_the_problem(text, fragment):
    with pytest.raises(MalformedAnswer, match=fragment):
        parse_decision(text, Verdict)


def test_retry_shows_the_error_then_succeeds(board):
    model = ScriptedChatModel(answers=["nonsense", '{"verdict": "maybe", "confidence": 1}', GOOD])
    update = Judge(brain=ChatBrain(model, max_retries=2, prices={"scripted": (0, 0)}), blackboard=board)({"claim": "x"})
    assert update == {"verdict": "accept"}
    assert len(board.messages(kind="brain.retry")) == 2 and not board.messages(kind="brain.fallback")
    retry_prompt = model.calls[2][-1].content
    assert "verdict" in retry_prompt and "not valid" in retry_prompt
    assert len(board.llm_usage()) == 3 and not board.llm_usage()[0].estimated_tokens


def test_bounded_retries_then_expert_fallback(board):
    model = ScriptedChatModel(answers=["bad"] * 5)
    update = Judge(brain=ChatBrain(model, max_retries=1, prices={"scripted": (0, 0)}), blackboard=board)({"claim": "x"})
    assert update == {"verdict": "reject"} and len(model.calls) == 2
    (fallback,) = board.messages(kind="brain.fallback")
    assert fallback.payload["reason"] == "malformed" and len(fallback.payload["errors"]) == 2


def test_provider_error_falls_back_but_auth_error_stops(board):
    class AuthenticationError(Exception):
        status_code = 401

    flaky = ScriptedChatModel(answers=[TimeoutError("slow")] * 2)
    brain = ChatBrain(flaky, prices={"scripted": (0, 0)}, provider_retries=1, backoff=0.01)
    assert Judge(brain=brain, blackboard=board)({"claim": "x"}) == {"verdict": "reject"}
    assert len(flaky.calls) == 2 and len(board.messages(kind="brain.provider_retry")) == 1
    assert board.messages(kind="brain.error") and not board.llm_usage()[-1].ok
    broken = ScriptedChatModel(answers=[ValueError("a bug, not a hiccup"), "unused"])
    assert Judge(brain=ChatBrain(broken, prices={"scripted": (0, 0)}, backoff=0.01), blackboard=board)({"claim": "x"})
    assert len(broken.calls) == 1  # not transient: no retry
    denied = ScriptedChatModel(answers=[AuthenticationError("bad key")])
    with pytest.raises(CrewError, match="API key"):
        Judge(brain=ChatBrain(denied), blackboard=board)({"claim": "x"})


def test_money_budget_stops_calls_and_unknown_prices_are_charged_conservatively(board):
    budget = Budget(llm_spend=1e-4)
    model = ScriptedChatModel(answers=[GOOD, GOOD], model_name="mystery-model")
    brain = ChatBrain(model, budget=budget)
    with pytest.warns(UserWarning, match="no price known"):
        Judge(brain=brain, blackboard=board)({"claim": "x"})
    usage = board.llm_usage()[-1]
    assert usage.cost is None
    expected = (usage.input_tokens * CONSERVATIVE[0] + usage.output_tokens * CONSERVATIVE[1]) / 1e6
    assert budget.spent["llm_spend"] == pytest.approx(expected) and expected > 1e-4
    assert Judge(brain=brain, blackboard=board)({"claim": "x"}) == {"verdict": "reject"}
    assert len(model.calls) == 1
    assert board.messages(kind="brain.fallback")[-1].payload["reason"] == "llm_budget"
    assert len(board.messages(kind="brain.warning")) == 1


def test_known_prices_are_costed(board):
    model = ScriptedChatModel(answers=[GOOD], model_name="gpt-4o-mini")
    Judge(brain=ChatBrain(model), blackboard=board)({"claim": "x"})
    usage = board.llm_usage()[-1]
    assert usage.cost == pytest.approx((usage.input_tokens * 0.15 + usage.output_tokens * 0.60) / 1e6)
    assert board.llm_spend() == pytest.approx(usage.cost)
    assert price_of("openai:gpt-4o-2024-08-06") == (2.50, 10.00) and price_of("gpt-4o-mini") == (0.15, 0.60)
    assert price_of("my-local-model") is None


def test_expert_brain_and_refusal():
    class Mute(Judge):
        def expert(self, context):
            return Role.expert(self, context)

    assert ExpertBrain().decide(Judge(), {"claim": "x"}).verdict == "reject"
    with pytest.raises(NoExpertPolicy, match="judge"):
        ExpertBrain().decide(Mute(), {"claim": "x"})


def test_provider_strings():
    model = chat_model_from_string("openai:gpt-4o-mini", api_key="sk-test")
    assert type(model).__name__ == "ChatOpenAI" and model.model_name == "gpt-4o-mini"
    local = chat_model_from_string("http://127.0.0.1:9/v1#qwen2.5-coder")
    assert local.model_name == "qwen2.5-coder" and "127.0.0.1:9" in str(local.openai_api_base)
    assert chat_model_from_string("http://127.0.0.1:9/v1", model="named").model_name == "named"
    assert chat_model_from_string("http://127.0.0.1:9/v1").model_name == "default"
    with pytest.raises(CrewError, match="provider:model"):
        chat_model_from_string("gpt-4o")
    assert repr(ChatBrain("openai:gpt-4o")) == "ChatBrain('openai:gpt-4o', max_retries=2)"


def test_credentials_in_a_prompt_never_reach_the_chat_model(board):
    # an experiment that read a secret and printed it into its traceback: the debug prompt carries the stderr
    leaked = ("Traceback (most recent call last):\nValueError: AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCY "
              "root:$6$saltsalt$hashhashhashhash:19000:0:99999:7::: key sk-proj-abcdefghijklmnopqrstuv\n"
              "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
              "-----END OPENSSH PRIVATE KEY-----\ncould not convert string to float: 'abc'")
    model = ScriptedChatModel(answers=[GOOD])
    Judge(brain=ChatBrain(model, prices={"scripted": (0, 0)}), blackboard=board)({"claim": leaked})
    sent = " ".join(str(m.content) for m in model.calls[0])
    for secret in ["wJalrXUtnFEMI", "$6$saltsalt", "sk-proj-abc", "b3BlbnNzaC1rZXkt"]:
        assert secret not in sent
    assert "could not convert string to float: 'abc'" in sent and "[redacted]" in sent
