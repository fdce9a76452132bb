"""The typed records every part of crew exchanges: messages, decisions, experiments, usage and scores."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EVERYONE", "Decision", "Experiment", "ExperimentStatus", "LLMUsage", "Message", "ScoreEntry", "code_hash"]

EVERYONE = "*"
"""`send_to` value meaning every role."""

ExperimentStatus = Literal["proposed", "rejected", "running", "done", "failed", "cached", "lost"]


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


def code_hash(code: str) -> str:
    """Content hash of experiment code: identical stage code is cached, not rerun."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()[:16]


class Decision(BaseModel):
    """Base of each role's typed decision; `rationale` is why, in a sentence a student can follow."""

    model_config = ConfigDict(extra="forbid")

    rationale: str = Field(default="", description="one or two sentences: why this decision")

    def summary(self) -> str:
        """One line for the transcript; roles override it to say what matters."""
        return self.rationale or type(self).__name__


class Message(BaseModel):
    """Who said what to whom, and because of what; stored in order on the blackboard."""

    id: str = Field(default_factory=_new_id)
    content: str
    sent_from: str
    send_to: list[str] = Field(default_factory=lambda: [EVERYONE])
    cause_by: str = Field(description="the action or decision kind that produced it, e.g. 'analyst.decide'")
    payload: dict[str, Any] = Field(default_factory=dict)
    payload_type: str | None = Field(default=None, description="class name of the payload's model, when typed")
    created_at: float = Field(default_factory=time.time)

    @classmethod
    def from_decision(cls, sender: str, decision: Decision, *, send_to: list[str] | None = None, cause_by: str | None = None) -> Message:
        return cls(content=decision.summary(), sent_from=sender, send_to=send_to or [EVERYONE],
                   cause_by=cause_by or f"{sender}.decide", payload=decision.model_dump(mode="json"),
                   payload_type=type(decision).__name__)

    def is_for(self, role: str) -> bool:
        return EVERYONE in self.send_to or role in self.send_to


class Experiment(BaseModel):
    """A node of the experiment tree: the code that ran, what the critic expected and what happened."""

    id: str = Field(default_factory=_new_id)
    parent: str | None = None
    stage: str = "model"
    insights: list[str] = Field(default_factory=list)
    code: str = ""
    code_hash: str = ""
    spec: dict[str, Any] = Field(default_factory=dict, description="the modeler's design (model, params, stages)")
    status: ExperimentStatus = "proposed"
    estimate: dict[str, Any] = Field(default_factory=dict, description="the critic's estimate: seconds, memory, gpus")
    metrics: dict[str, Any] = Field(default_factory=dict)
    score: float | None = None
    cv_folds: list[float] = Field(default_factory=list)
    wall_time: float | None = None
    peak_memory: int | None = None
    gpu: list[int] = Field(default_factory=list)
    artifacts: dict[str, str] = Field(default_factory=dict)
    error: str | None = None
    created_at: float = Field(default_factory=time.time)
    finished_at: float | None = None

    def model_post_init(self, context: Any) -> None:
        if self.code and not self.code_hash:
            self.code_hash = code_hash(self.code)


class LLMUsage(BaseModel):
    """One chat-model call: who asked, which model, tokens, cost (None when the price is unknown)."""

    role: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    estimated_tokens: bool = False
    ok: bool = True
    note: str = ""
    at: float = Field(default_factory=time.time)


class ScoreEntry(BaseModel):
    """A timestamped score: an experiment's CV result or a kernel scorer call."""

    source: str
    score: float | None
    valid: bool = True
    experiment_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    at: float = Field(default_factory=time.time)
