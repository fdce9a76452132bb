"""What the solve and optimize workflows share: the budget left as the roles see it, and their flattened events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crew import Budget

__all__ = ["events", "remaining"]


def remaining(budget: Budget, reserve: float) -> dict[str, Any]:
    """The budget left, less the wall time kept back for finishing the run (what the critic vets against)."""
    left = budget.remaining()
    return {"wall_time": max(0.0, left.wall_time - reserve), "experiment_time": left.experiment_time,
            "memory": left.memory, "gpus": left.gpus, "experiments": left.experiments}


def events(stream: Iterator[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Flatten LangGraph's (namespace, {node: update}) stream (`subgraphs=True`) into (node, update) pairs."""
    for _namespace, update in stream:
        if isinstance(update, dict):
            for node, payload in update.items():
                yield node, payload if isinstance(payload, dict) else {}
