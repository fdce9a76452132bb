"""Brains decide for roles: `ExpertBrain` (offline policy, the default) and `ChatBrain` (any chat model)."""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import ValidationError

from crew._blackboard import Blackboard
from crew._budget import Budget
from crew._llmspec import _PROVIDERS, ROLES, llm_spec_problem
from crew._pricing import CONSERVATIVE, cost_of, price_of
from crew._redact import redact
from crew.errors import CrewError
from crew.types import Decision, LLMUsage, Message

if TYPE_CHECKING:  # a heavy import, only for annotations
    from langchain_core.language_models import BaseChatModel

__all__ = ["ROLES", "Brain", "ChatBrain", "ExpertBrain", "LLMAuthError", "MalformedAnswer", "chat_model_from_string",
           "llm_spec_problem", "team_brains"]

class Role(Protocol):
    """What a brain needs of a role (`crew.Role` has it): who it is, its decision type, its prompt and its offline
    policy. A protocol, so that the brains do not import the roles that call them."""

    profile: ClassVar[str]
    goal: ClassVar[str]
    decision: ClassVar[type[Decision]]

    def expert(self, context: Mapping[str, Any]) -> Decision: ...

    def render_prompt(self, context: Mapping[str, Any], *, limit: int = 6000) -> str: ...


class LLMAuthError(CrewError):
    """The provider refused the credentials: retrying cannot help, so the run stops at once."""


class MalformedAnswer(ValueError):
    """A chat answer that is not a valid Decision; the message is shown to the model on retry."""


@runtime_checkable
class Brain(Protocol):
    """How a role decides: given the role and its context, return the role's Decision."""

    def decide(self, role: Role, context: Mapping[str, Any], *, blackboard: Blackboard | None = None) -> Decision: ...


class ExpertBrain:
    """The offline default: the role's own deterministic expert policy; no network, no key."""

    name = "expert"

    def decide(self, role: Role, context: Mapping[str, Any], *, blackboard: Blackboard | None = None) -> Decision:
        return role.expert(context)

    def __repr__(self) -> str:
        return "ExpertBrain()"


def chat_model_from_string(spec: str, **kwargs: Any) -> BaseChatModel:
    """A chat model from `provider:model` (openai, anthropic, ollama) or an OpenAI-compatible base URL.

    A URL (vLLM, llama.cpp, Ollama's /v1) may end in `#model`; without it the
    server's default model name `default` is asked for.
    """
    if spec.startswith(("http://", "https://")):
        url, _, model = spec.partition("#")
        kwargs.setdefault("api_key", os.environ.get("OPENAI_API_KEY") or "not-needed")
        named = kwargs.pop("model", None)
        return _load("openai", spec)(model=model or named or "default", base_url=url, **kwargs)
    provider, sep, model = spec.partition(":")
    if not sep or provider not in _PROVIDERS or not model:
        raise CrewError(f"cannot read the model {spec!r}; fix: write provider:model with provider one of "
                        f"{', '.join(_PROVIDERS)}, or an OpenAI-compatible URL such as http://127.0.0.1:8000/v1#my-model")
    return _load(provider, spec)(model=model, **kwargs)


def team_brains(*specs: str | Mapping[str, str] | None, budget: Budget | None = None,
                model_kwargs: dict[str, Any] | None = None) -> dict[str, Brain]:
    """One brain per role from `--llm` style specs, later specs overriding earlier ones.

    Each spec is `MODEL` (every role), `ROLE=MODEL`, or a mapping role ->
    model with `default` for the roles not named (task.yaml's `llm:`). MODEL
    is `offline` or anything `chat_model_from_string` reads. Roles naming the
    same model share one ChatBrain, so one money budget (`budget`) covers them.
    """
    chosen: dict[str, str] = dict.fromkeys(ROLES, "offline")
    for spec in specs:
        if spec is None:
            continue
        items = list(spec.items()) if isinstance(spec, Mapping) else [_split_role(spec)]
        for role, model in items:
            problem = llm_spec_problem(model)
            if problem:
                raise CrewError(f"llm{'.' + role if role != 'default' else ''}: {problem}; fix: write e.g. "
                                "openai:gpt-4o, ollama:qwen2.5-coder, http://127.0.0.1:8000/v1#my-model or offline")
            if role == "default":
                chosen = dict.fromkeys(ROLES, model)
            elif role in ROLES:
                chosen[role] = model
            else:
                raise CrewError(f"llm: unknown role {role!r}; fix: name one of {', '.join(ROLES)} (or default)")
    shared: dict[str, Brain] = {}
    for model in set(chosen.values()):
        shared[model] = ExpertBrain() if model == "offline" else ChatBrain(model, budget=budget, model_kwargs=model_kwargs)
    return {role: shared[model] for role, model in chosen.items()}


def _split_role(spec: str) -> tuple[str, str]:
    head, sep, tail = spec.partition("=")
    if sep and head in (*ROLES, "default"):
        return head, tail
    if sep and "://" not in head and ":" not in head:
        raise CrewError(f"--llm {spec}: unknown role {head!r}; fix: name one of {', '.join(ROLES)}, e.g. "
                        "--llm modeler=openai:gpt-4o")
    return "default", spec


def _load(provider: str, spec: str) -> Any:
    module_name, class_name = _PROVIDERS[provider]
    try:
        module = __import__(module_name, fromlist=[class_name])
    except ImportError:
        raise CrewError(f"the model {spec!r} needs {module_name.replace('_', '-')}; fix: pip install 'crew[llm]'") from None
    return getattr(module, class_name)


class ChatBrain:
    """Any langchain-core chat model deciding for a role, with a safety net.

    The model answers with one JSON object validated against the role's
    Decision. A malformed answer is shown its validation error and retried
    `max_retries` times; then the role's expert policy decides instead. Both
    facts, and every call's tokens and cost, go on the blackboard. A money
    budget stops calls once spent; models of unknown price are charged at the
    most expensive known price, with one warning, so the budget still holds.
    Rate limits, timeouts and 5xx are retried `provider_retries` times with
    exponential backoff from `backoff` seconds (never sleeping past the
    budget's wall time); an auth error stops the run at once.
    """

    name = "chat"

    def __init__(
        self,
        model: BaseChatModel | str,
        *,
        max_retries: int = 2,
        budget: Budget | None = None,
        prices: dict[str, tuple[float, float]] | None = None,
        fallback: Brain | None = None,
        model_kwargs: dict[str, Any] | None = None,
        provider_retries: int = 3,
        backoff: float = 1.0,
    ):
        self.model = model
        self.max_retries = max_retries
        self.provider_retries = provider_retries
        self.backoff = backoff
        self.budget = budget
        self.prices = prices
        self.fallback = fallback
        self.model_kwargs = model_kwargs

    # -- resolution ------------------------------------------------------------------------

    @property
    def chat_model(self) -> BaseChatModel:
        if isinstance(self.model, str):
            self.model = chat_model_from_string(self.model, **(self.model_kwargs or {}))
        return self.model

    @property
    def model_name(self) -> str:
        model = self.chat_model
        for attr in ("model_name", "model", "model_id"):
            value = getattr(model, attr, None)
            if isinstance(value, str) and value:
                return value
        return type(model).__name__

    # -- deciding --------------------------------------------------------------------------

    def decide(self, role: Role, context: Mapping[str, Any], *, blackboard: Blackboard | None = None) -> Decision:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        fallback = self.fallback or ExpertBrain()
        if self.budget is not None and not self.budget.llm_allowed():
            self._note(blackboard, role, "brain.fallback", "LLM budget spent; the expert policy decides", {"reason": "llm_budget"})
            return fallback.decide(role, context, blackboard=blackboard)
        # everything a role puts in a prompt may carry an experiment's output: no credential leaves this machine
        messages: list[Any] = [SystemMessage(_system_prompt(role)), HumanMessage(redact(role.render_prompt(context)))]
        errors: list[str] = []
        for attempt in range(1 + self.max_retries):
            answer = self._invoke(role, messages, blackboard)
            if answer is None:  # a provider error already noted; let the expert decide
                break
            try:
                return parse_decision(answer.content, role.decision)
            except MalformedAnswer as exc:
                errors.append(str(exc))
                self._note(blackboard, role, "brain.retry", f"malformed answer (attempt {attempt + 1}): {str(exc)[:300]}",
                           {"attempt": attempt + 1, "error": str(exc)[:2000]})
                messages += [AIMessage(content=_text(answer.content)),
                             HumanMessage(redact(f"That answer was not valid: {exc}\nReply with only the corrected JSON "
                                                 "object."))]
        self._note(blackboard, role, "brain.fallback", "the chat model gave no valid decision; the expert policy decides",
                   {"reason": "malformed" if errors else "provider_error", "errors": [e[:500] for e in errors]})
        return fallback.decide(role, context, blackboard=blackboard)

    def _invoke(self, role: Role, messages: list[Any], blackboard: Blackboard | None) -> Any:
        for attempt in range(1 + self.provider_retries):
            started = time.monotonic()
            try:
                answer = self.chat_model.invoke(messages)
            except Exception as exc:  # providers raise their own types; classify by status and name
                if _is_auth_error(exc):
                    raise LLMAuthError(f"the model {self.model_name!r} refused the credentials ({type(exc).__name__}); "
                                       f"fix: set a valid API key for its provider") from None
                self._record(blackboard, role, messages, None, ok=False, note=f"{type(exc).__name__}: {str(exc)[:200]}")
                delay = min(_MAX_BACKOFF, self.backoff * 2**attempt)
                if _is_transient(exc) and attempt < self.provider_retries and self._can_wait(delay):
                    self._note(blackboard, role, "brain.provider_retry",
                               f"{type(exc).__name__}; retrying in {delay:.1f}s (attempt {attempt + 1})",
                               {"attempt": attempt + 1, "delay": delay, "error": str(exc)[:500]})
                    time.sleep(delay)
                    continue
                self._note(blackboard, role, "brain.error", f"chat model call failed: {type(exc).__name__}",
                           {"error": str(exc)[:500], "transient": _is_transient(exc), "attempts": attempt + 1})
                return None
            self._record(blackboard, role, messages, answer, ok=True, note=f"{time.monotonic() - started:.2f}s")
            return answer
        return None

    def _can_wait(self, delay: float) -> bool:
        """Backoff never eats the run's last minutes: sleep only while a tenth of the wall time left covers it."""
        if self.budget is None:
            return True
        return delay <= 0.1 * self.budget.remaining().wall_time

    def _record(self, blackboard: Blackboard | None, role: Role, messages: list[Any], answer: Any, *, ok: bool, note: str) -> None:
        usage = getattr(answer, "usage_metadata", None) or {}
        estimated = not usage
        prompt_chars = sum(len(_text(m.content)) for m in messages)
        reply_chars = len(_text(answer.content)) if answer is not None else 0
        input_tokens = int(usage["input_tokens"] if "input_tokens" in usage else prompt_chars // 4)
        output_tokens = int(usage["output_tokens"] if "output_tokens" in usage else reply_chars // 4)
        price = price_of(self.model_name, self.prices)
        cost = cost_of(price, input_tokens, output_tokens) if price else None
        if price is None:
            self._warn_unknown_price(blackboard, role)
        charge = cost if cost is not None else cost_of(CONSERVATIVE, input_tokens, output_tokens)
        if self.budget is not None:
            self.budget.charge(llm_cost=charge, llm_tokens=input_tokens + output_tokens)
        if blackboard is not None:
            blackboard.record_llm_usage(LLMUsage(role=role.profile, model=self.model_name, input_tokens=input_tokens,
                                                 output_tokens=output_tokens, cost=cost, estimated_tokens=estimated,
                                                 ok=ok, note=note))

    def _warn_unknown_price(self, blackboard: Blackboard | None, role: Role) -> None:
        if getattr(self, "_warned", False):
            return
        self._warned = True
        text = (f"no price known for {self.model_name!r}: tokens are counted, and a money budget is charged "
                f"at ${CONSERVATIVE[0]}/${CONSERVATIVE[1]} per million tokens; pass prices= to set it")
        warnings.warn(text, stacklevel=3)
        self._note(blackboard, role, "brain.warning", text, {"model": self.model_name})

    @staticmethod
    def _note(blackboard: Blackboard | None, role: Role, kind: str, content: str, payload: dict[str, Any]) -> None:
        if blackboard is not None:
            blackboard.post(Message(content=content, sent_from=role.profile, send_to=[role.profile], cause_by=kind, payload=payload))

    def __repr__(self) -> str:
        model = self.model if isinstance(self.model, str) else type(self.model).__name__
        return f"ChatBrain({model!r}, max_retries={self.max_retries})"


def _system_prompt(role: Role) -> str:
    schema = json.dumps(role.decision.model_json_schema(), separators=(",", ":"))
    return (f"You are the {role.profile} of a data-science team. Your goal: {role.goal}\n"
            f"Answer with exactly one JSON object, no prose around it, that validates against this JSON schema:\n{schema}")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(block.get("text", "") if isinstance(block, dict) else str(block) for block in content)
    return str(content)


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_decision(content: Any, decision: type[Decision]) -> Decision:
    """The Decision in a chat answer: a JSON object, bare or fenced, validated by pydantic."""
    text = _text(content).strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise MalformedAnswer("the answer holds no JSON object")
    try:
        data = json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise MalformedAnswer(f"the JSON does not parse: {exc}") from None
    try:
        return decision.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()[:8])
        raise MalformedAnswer(f"the JSON does not fit {decision.__name__}: {details}") from None


_MAX_BACKOFF = 30.0
_TRANSIENT_NAMES = ("RateLimit", "Timeout", "APIConnection", "Connection", "ServiceUnavailable", "InternalServer",
                    "Overloaded", "APIStatusError")


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _is_transient(exc: Exception) -> bool:
    """Worth retrying: rate limits (429), timeouts (408) and server errors (5xx), by status or by type name."""
    status = _status(exc)
    if status is not None:
        return status in (408, 409, 425, 429) or status >= 500
    name = type(exc).__name__
    return isinstance(exc, TimeoutError | ConnectionError) or any(part in name for part in _TRANSIENT_NAMES)


def _is_auth_error(exc: Exception) -> bool:
    return _status(exc) in (401, 403) or "Authentication" in type(exc).__name__ or "PermissionDenied" in type(exc).__name__


def brain_for(brain: Brain | Mapping[str, Brain] | None, role: str) -> Brain | None:
    """A mapping gives each role its own brain (a mixed team); a single brain thinks for all."""
    if isinstance(brain, Mapping):
        return brain.get(role, brain.get("default"))
    return brain
