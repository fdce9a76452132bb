"""What the workflows share: the budget left as the roles see it, their flattened events, a submission written
atomically, and the constants of a standalone experiment script filled in."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from crew import Budget

__all__ = ["events", "fill_constants", "remaining", "write_atomically"]


def remaining(budget: Budget, reserve: float) -> dict[str, Any]:
    """The budget left, less the wall time kept back for finishing the run (what the critic vets against)."""
    left = budget.remaining()
    return {"wall_time": max(0.0, left.wall_time - reserve), "experiment_time": left.experiment_time,
            "memory": left.memory, "gpus": left.gpus, "experiments": left.experiments}


def write_atomically(frame: pl.DataFrame, path: Path) -> None:
    """Write `frame` as csv to `path` through a temporary file, so a kill never leaves half a submission."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.write_csv(tmp)
    tmp.replace(path)


def fill_constants(source: str, constants: Mapping[str, Any]) -> str:
    """A standalone experiment script (`crew.tools.normalizer`, `crew.tools.multioutput`) with each of its
    `NAME: dict = {...}` constants replaced by the value given for it."""
    for name, value in constants.items():
        found = re.search(rf"^{name}: dict = \{{.*?\}}\n", source, flags=re.S | re.M)
        assert found is not None, name  # the script defines every constant it is given
        source = source[:found.start()] + f"{name}: dict = {value!r}\n" + source[found.end():]
    return source


def events(stream: Iterator[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Flatten LangGraph's (namespace, {node: update}) stream (`subgraphs=True`) into (node, update) pairs."""
    for _namespace, update in stream:
        if isinstance(update, dict):
            for node, payload in update.items():
                yield node, payload if isinstance(payload, dict) else {}
