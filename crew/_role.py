"""`Role` and `Action`: a role decides (through its brain), an action has effects; a Role is a LangGraph node."""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic_core import to_jsonable_python

from crew._blackboard import Blackboard
from crew._brain import Brain, ExpertBrain, brain_for
from crew.errors import CrewError
from crew.types import Decision, Message

__all__ = ["Action", "MissingStateKeys", "NoExpertPolicy", "Role", "RoleContractError"]


class MissingStateKeys(CrewError):
    """A graph's state lacks keys a role reads; names them so the user can add them to the schema."""

    def __init__(self, role: str, missing: list[str]):
        self.role = role
        self.missing = missing
        super().__init__(f"role {role!r} needs state key(s) {missing} that the graph state lacks; "
                         f"add them to your state schema and set them before this node runs")


class NoExpertPolicy(CrewError):
    """The role has no offline policy: it can only decide with a chat model (a clear refusal, not a guess)."""

    def __init__(self, role: str):
        self.role = role
        super().__init__(f"role {role!r} has no offline expert policy; give it a ChatBrain")


class RoleContractError(CrewError):
    """A role broke its own declared contract (wrote an undeclared key, returned the wrong decision type)."""


class Action:
    """One thing with an effect (run an experiment, write a file); roles decide, actions do.

    Subclasses set `name` and implement `run`; calling an action records what it
    did on the blackboard, so that every effect is part of the run's transcript.
    """

    name: ClassVar[str] = "action"

    def run(self, **kwargs: Any) -> Any:
        raise CrewError(f"action {self.name!r} does not implement run()")

    def __call__(self, *, actor: str, blackboard: Blackboard | None = None, **kwargs: Any) -> Any:
        result = self.run(**kwargs)
        if blackboard is not None:
            blackboard.post(Message(content=self.describe(result), sent_from=actor, cause_by=self.name,
                                    payload={"result": _jsonable(result)}))
        return result

    def describe(self, result: Any) -> str:
        return f"{self.name} done"


class Role:
    """A member of the team: a profile, a goal, and one typed decision.

    State contract: a role reads the state keys in `reads` (required) and in
    `optional` (used when present) and returns an update holding only keys in
    `writes`. It also needs a blackboard: the one given to the constructor,
    else the graph's runtime context's `blackboard` (LangGraph's
    `context_schema`), else the state's `blackboard` key (a Blackboard or a
    path). Its brain, likewise: the constructor's, else the context's `brain`
    (one Brain, or role name -> Brain), else the offline expert. `check_role`
    fails a role that reads any other key.
    Each decision is posted to the blackboard as a Message before it is acted on.
    """

    profile: ClassVar[str] = "role"
    goal: ClassVar[str] = ""
    decision: ClassVar[type[Decision]] = Decision
    reads: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[tuple[str, ...]] = ()
    """State keys read when present, never required (a missing one changes what the role knows, not whether it runs)."""
    writes: ClassVar[tuple[str, ...]] = ()
    prompt: ClassVar[str] = "{context}"
    """LLM prompt template; `{name}` fields are filled from the context (compact JSON, trimmed)."""
    prompt_limits: ClassVar[Mapping[str, int]] = {}
    """Characters a context field may take in the prompt, where it differs from `render_prompt`'s `limit`."""

    def __init__(self, *, brain: Brain | None = None, blackboard: Blackboard | None = None):
        self.brain = brain
        self.blackboard = blackboard

    def get_params(self) -> dict[str, Any]:
        """The constructor's keyword parameters, read back (constructors only store them, as in scikit-learn)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def clone(self, **overrides: Any) -> Role:
        """A new role of the same class and parameters, with `overrides` applied."""
        return type(self)(**{**self.get_params(), **overrides})

    # -- the LangGraph node ----------------------------------------------------------------

    def __call__(self, state: Mapping[str, Any], runtime: Any = None) -> dict[str, Any]:
        """Run as a LangGraph node; `runtime` is LangGraph's (its `context` may supply the board and brains)."""
        bound = self.bind(getattr(runtime, "context", None))
        if bound is not self:
            return bound(state)
        board = self.board(state)
        context = self.context(state)
        decision = self.decide(context, blackboard=board)
        if not isinstance(decision, self.decision):
            raise RoleContractError(f"role {self.profile!r} decided a {type(decision).__name__}, "
                                    f"not its declared {self.decision.__name__}")
        board.post(Message.from_decision(self.profile, decision, send_to=self.recipients(decision)))
        update = self.act(decision, context, board)
        undeclared = sorted(set(update) - set(self.writes))
        if undeclared:
            raise RoleContractError(f"role {self.profile!r} wrote undeclared state key(s) {undeclared}; "
                                    f"it declares writes={list(self.writes)}")
        return update

    def bind(self, context: Any) -> Role:
        """This role with what a run's context supplies (`blackboard`, `brain`) where its constructor left None:
        graphs compile once, without a run, and get the run's objects at invoke time."""
        if context is None:
            return self
        brain = self.brain if self.brain is not None else brain_for(getattr(context, "brain", None), self.profile)
        board = self.blackboard if self.blackboard is not None else getattr(context, "blackboard", None)
        if brain is self.brain and board is self.blackboard:
            return self
        return self.clone(brain=brain, blackboard=board)

    # -- the parts a role overrides --------------------------------------------------------

    def context(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """What the decision may look at: the declared state keys (and nothing else)."""
        missing = [key for key in self.reads if key not in state]
        if missing:
            raise MissingStateKeys(self.profile, missing)
        return {key: state[key] for key in self.reads}

    def decide(self, context: Mapping[str, Any], *, blackboard: Blackboard | None = None) -> Decision:
        return (self.brain or ExpertBrain()).decide(self, context, blackboard=blackboard)

    def expert(self, context: Mapping[str, Any]) -> Decision:
        """The offline policy; roles without one refuse clearly."""
        raise NoExpertPolicy(self.profile)

    def act(self, decision: Decision, context: Mapping[str, Any], blackboard: Blackboard) -> dict[str, Any]:
        """Turn the decision into effects (through Actions) and a state update."""
        return {}

    def recipients(self, decision: Decision) -> list[str]:
        return ["*"]

    def render_prompt(self, context: Mapping[str, Any], *, limit: int = 6000) -> str:
        """The user prompt for a chat model: the template filled with a lean, trimmed context."""
        fields = {key: _brief(value, self.prompt_limits.get(key, limit)) for key, value in context.items()}
        fields["context"] = _brief(dict(context), limit)
        fields.setdefault("goal", self.goal)
        try:
            return self.prompt.format(**fields)
        except KeyError as exc:
            raise RoleContractError(f"role {self.profile!r}: prompt template uses {{{exc.args[0]}}}, "
                                    f"which is not in its context {sorted(context)}") from None

    def board(self, state: Mapping[str, Any]) -> Blackboard:
        if self.blackboard is not None:
            return self.blackboard
        value = state.get("blackboard")
        if value is None:
            raise MissingStateKeys(self.profile, ["blackboard"])
        return value if isinstance(value, Blackboard) else Blackboard(Path(value))

    def __repr__(self) -> str:
        brain = type(self.brain).__name__ if self.brain else "ExpertBrain"
        return f"{type(self).__name__}(profile={self.profile!r}, brain={brain})"


def _jsonable(value: Any) -> Any:
    return to_jsonable_python(value, fallback=repr)


def _brief(value: Any, limit: int) -> str:
    """Compact text for a prompt: lean context is what kept AIDE cheap."""
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(_jsonable(value), separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 20] + f"...[{len(text) - limit + 20} chars cut]"
