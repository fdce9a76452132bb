"""The errors crew raises on purpose: each names the file, the field and the fix."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import NoReturn

import typer

__all__ = ["CrewError", "Problem", "SubmissionError", "TaskError", "exit_with"]


class CrewError(Exception):
    """Base of every error crew raises deliberately; the CLI turns it into exit status 2."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, phrased so a user can fix it without reading code.

    A frozen record rather than a string so that tools (the CLI, tests, an LLM
    debugging loop) can filter by file or field instead of parsing prose.
    """

    file: str
    field: str
    message: str
    fix: str

    def __str__(self) -> str:
        field = f" {self.field}:" if self.field else ""
        return f"{self.file}:{field} {self.message}; fix: {self.fix}"


class TaskError(CrewError):
    """A task.yaml (or the data it names) that cannot be run, with every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SubmissionError(CrewError):
    """A file passed to grading that cannot be read at all (not merely an invalid submission)."""

    def __init__(self, problem: Problem):
        self.problem = problem
        super().__init__(str(problem))


def exit_with(error: CrewError) -> NoReturn:
    """End a command on `error`: one line per problem on stderr, exit status 2. Users fix inputs; they do not read
    tracebacks. Every `crew` command, in the core or registered from another folder, ends this way."""
    if isinstance(error, TaskError):
        lines = [str(p) for p in error.problems]
    elif isinstance(error, SubmissionError):
        lines = [str(error.problem)]
    else:
        lines = [str(error)]
    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    raise typer.Exit(code=2)
