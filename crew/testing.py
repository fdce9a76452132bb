"""Public test seams: `ScriptedChatModel` (a chat model that answers from a script), `ScriptedChatServer` (an
OpenAI-compatible HTTP server on loopback that answers from a script) and `check_role`.

Like scikit-learn's `check_estimator`, `check_role` is for third parties too:
run it on your own Role subclass to learn whether it honours the contract
the workflows rely on.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from crew._blackboard import Blackboard
from crew._brain import ChatBrain, ExpertBrain
from crew._role import MissingStateKeys, NoExpertPolicy, Role, RoleContractError
from crew.types import Decision

__all__ = ["RoleCheckError", "ScriptedChatModel", "ScriptedChatServer", "check_role", "tiny_task"]

Answer = str | BaseException | Callable[[list[BaseMessage]], str]


class ScriptedChatModel(BaseChatModel):
    """Answers each call with the next scripted item: a string, an exception to raise, or a function of the prompt.

    It reports token usage like a real provider (about four characters a
    token), so budgets and usage records are exercised as in production.
    """

    answers: list[Any] = Field(default_factory=list)
    model_name: str = "scripted"
    calls: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        index = len(self.calls)
        self.calls.append(list(messages))
        if index >= len(self.answers):
            raise IndexError(f"ScriptedChatModel has {len(self.answers)} answers and was asked a {index + 1}th time")
        answer = self.answers[index]
        if isinstance(answer, BaseException):
            raise answer
        text = answer(messages) if callable(answer) else str(answer)
        prompt_tokens = sum(len(str(m.content)) for m in messages) // 4
        usage = {"input_tokens": prompt_tokens, "output_tokens": len(text) // 4, "total_tokens": prompt_tokens + len(text) // 4}
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text, usage_metadata=usage))])


Reply = str | tuple[int, dict[str, Any]]


class ScriptedChatServer(ThreadingHTTPServer):
    """`POST /v1/chat/completions` on 127.0.0.1, answered from `script`: real HTTP for real clients (langchain-openai).

    Each request takes the next item of `script`: a str is the assistant's
    reply, a `(status, body)` tuple an error response, and a callable gets
    the request body (model, messages) and returns either. With `respond`
    set, requests past the end of the script go to it (e.g. a function that
    answers by role); otherwise they get a 500. Every reply reports
    `prompt_tokens` / `completion_tokens` usage. Use it as a context manager:

        with ScriptedChatServer(script=["{...}"]) as server:
            ChatBrain(f"{server.base_url}#gpt-4o-mini", model_kwargs={"max_retries": 0})
    """

    daemon_threads = True

    def __init__(self, script: Sequence[Reply | Callable[[dict[str, Any]], Reply]] = (), *,
                 respond: Callable[[dict[str, Any]], Reply] | None = None, prompt_tokens: int = 123,
                 completion_tokens: int = 45) -> None:
        super().__init__(("127.0.0.1", 0), _ChatHandler)
        self.script: list[Any] = list(script)
        self.respond = respond
        self.prompt_tokens, self.completion_tokens = prompt_tokens, completion_tokens
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def prompts(self, i: int) -> list[str]:
        """The message contents of request `i`."""
        return [m["content"] for m in self.requests[i]["messages"]]

    def __enter__(self) -> ScriptedChatServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def _next(self, body: dict[str, Any]) -> Reply:
        with self.lock:
            self.requests.append(body)
            item = self.script.pop(0) if self.script else self.respond
        if item is None:
            return (500, {"error": {"message": "script exhausted", "type": "server_error"}})
        return item(body) if callable(item) else item


class _ChatHandler(BaseHTTPRequestHandler):
    server: ScriptedChatServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        with self.server.lock:
            self.server.headers.append({k.lower(): v for k, v in self.headers.items()})
        item = self.server._next(body)
        if self.path != "/v1/chat/completions":
            item = (404, {"error": {"message": f"no route {self.path}"}})
        if isinstance(item, tuple):
            self._reply(*item)
            return
        prompt, completion = self.server.prompt_tokens, self.server.completion_tokens
        self._reply(200, {
            "id": f"chatcmpl-{len(self.server.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": item}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        })

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


_FREE = {"scripted": (0.0, 0.0)}


class RoleCheckError(AssertionError):
    """A role that breaks the contract; the message says which part and how to fix it."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise RoleCheckError(message)


def check_role(role: Role, state: Mapping[str, Any] | None = None) -> None:
    """Verify that `role` honours the Role contract; raise RoleCheckError naming the first breach.

    Checks: declared attributes and state keys; a clear error when a read key
    is missing; an expert policy that returns the declared Decision, or a
    clear NoExpertPolicy refusal; the decision posted to the blackboard as a
    message whose payload validates; only declared keys written; a prompt that
    renders; and, through a scripted chat model, the LLM path including the
    fallback after malformed answers. `state` defaults to `role.example_state(dir)`.
    """
    cls = type(role)
    name = cls.__name__
    _require(isinstance(role.profile, str) and role.profile.strip() != "" and role.profile != "role",
             f"{name}.profile must be a non-empty name of its own")
    _require(isinstance(role.goal, str) and role.goal.strip() != "", f"{name}.goal must say what the role is for")
    for attr in ("reads", "optional", "writes"):
        value = getattr(role, attr)
        _require(isinstance(value, tuple) and all(isinstance(v, str) for v in value), f"{name}.{attr} must be a tuple of str")
    _require(isinstance(role.decision, type) and issubclass(role.decision, Decision) and role.decision is not Decision,
             f"{name}.decision must be its own subclass of crew.types.Decision")
    role.decision.model_json_schema()

    with tempfile.TemporaryDirectory(prefix="crew-check-") as tmp:
        workdir = Path(tmp)
        if state is None:
            maker = getattr(role, "example_state", None)
            if not callable(maker):
                raise RoleCheckError(f"{name} has no example_state(workdir); pass state= to check_role")
            state = maker(workdir)
        assert state is not None
        missing = [key for key in role.reads if key not in state]
        _require(not missing, f"the state given to check_role lacks {name}'s read keys {missing}")
        board = Blackboard(workdir / "check.sqlite")
        base = {**state, "blackboard": board}

        recorder = _Reads(base)
        _node(role, ExpertBrain()).context(recorder)  # a role sees state only through its context (and its board)
        undeclared = sorted(recorder.read - set(role.reads) - set(role.optional) - {"blackboard"})
        _require(not undeclared, f"{name} read state key(s) {undeclared} it does not declare: add them to reads "
                                 "(required) or optional (used when present)")

        for key in role.reads:
            partial = {k: v for k, v in base.items() if k != key}
            try:
                _node(role, ExpertBrain())(partial)
            except MissingStateKeys as exc:
                _require(key in exc.missing, f"{name} raised MissingStateKeys without naming {key!r}")
            else:
                raise RoleCheckError(f"{name} ran without state key {key!r}, which it declares in reads")

        prompt = role.render_prompt(role.context(base))
        _require(isinstance(prompt, str) and prompt.strip() != "", f"{name}.render_prompt gave an empty prompt")

        try:
            expert = role.expert(role.context(base))
        except NoExpertPolicy as exc:
            _require(role.profile in str(exc), f"{name}'s NoExpertPolicy must name the role")
            return
        _require(isinstance(expert, role.decision), f"{name}.expert returned {type(expert).__name__}, not {role.decision.__name__}")
        _run_and_check(role, _node(role, ExpertBrain()), base, board, name, expect=expert)

        scripted = ScriptedChatModel(answers=[expert.model_dump_json()])
        _run_and_check(role, _node(role, ChatBrain(scripted, prices=_FREE)), base, board, name, expect=expert)
        _require(len(scripted.calls) == 1, f"{name} with a ChatBrain asked the model {len(scripted.calls)} times for one decision")

        garbage = ScriptedChatModel(answers=["not json"] * 2)
        before = len(board.messages(kind="brain.fallback"))
        _run_and_check(role, _node(role, ChatBrain(garbage, max_retries=1, prices=_FREE)), base, board, name, expect=expert)
        _require(len(board.messages(kind="brain.fallback")) == before + 1,
                 f"{name}: a malformed LLM answer must fall back to the expert and say so on the blackboard")
        board.close()


class _Reads(Mapping[str, Any]):
    """A state that records which keys are read (looked up or tested for), so undeclared reads can be named."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data: dict[str, Any] = dict(data)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return self.data[key]

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return key in self.data

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def _node(role: Role, brain: Any) -> Role:
    return role.clone(brain=brain, blackboard=None)


def _run_and_check(role: Role, node: Role, state: Mapping[str, Any], board: Blackboard, name: str, *, expect: Decision) -> None:
    before = len(board.messages(sent_from=role.profile, kind=f"{role.profile}.decide"))
    try:
        update = node(dict(state))
    except RoleContractError as exc:
        raise RoleCheckError(f"{name}: {exc}") from None
    _require(isinstance(update, dict), f"{name} must return a dict state update")
    undeclared: Sequence[str] = sorted(set(update) - set(role.writes))
    _require(not undeclared, f"{name} wrote undeclared keys {undeclared}")
    posted = board.messages(sent_from=role.profile, kind=f"{role.profile}.decide")
    _require(len(posted) == before + 1, f"{name} must post exactly one decision message per call")
    decision = role.decision.model_validate(posted[-1].payload)
    _require(decision == expect, f"{name}'s posted decision differs from the one it made")


def tiny_task(workdir: Path) -> Path:
    """Write a 40-row binary task into `workdir` and return its task.yaml: what roles' `example_state` (and so
    `check_role`) and tests run on when the example task would be too slow."""
    workdir = Path(workdir)
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    train = ["id,x1,x2,colour,y"] + [f"{i},{i % 7},{(i * 3) % 11},{'red' if i % 3 else 'blue'},{int(i % 7 > 3)}"
                                     for i in range(40)]
    test = ["id,x1,x2,colour"] + [f"{i},{i % 5},{i % 9},{'red' if i % 2 else 'blue'}" for i in range(40, 50)]
    (workdir / "data" / "train.csv").write_text("\n".join(train) + "\n", encoding="utf-8")
    (workdir / "data" / "test.csv").write_text("\n".join(test) + "\n", encoding="utf-8")
    (workdir / "task.yaml").write_text(
        "name: tiny\nkind: tabular\ndata:\n  train: data/train.csv\n  test: data/test.csv\ntarget: y\n"
        "id_column: id\nmetric: roc_auc\n", encoding="utf-8")
    return workdir / "task.yaml"
