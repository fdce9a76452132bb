"""The `crew` command line: every command here works; errors are one line each and exit with status 2."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from crew._grading import grade as grade_submission
from crew._task import Task
from crew.errors import CrewError, exit_with

app = typer.Typer(
    name="crew",
    help="A team of AI roles that does data-science work end to end.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
_out = Console(soft_wrap=True)


@app.command()
def validate(
    task: Annotated[Path, typer.Argument(help="task.yaml, or the folder that holds it")],
) -> None:
    """Check a task (its YAML and its data) and print a summary of it."""
    try:
        loaded = Task.load(task)
    except CrewError as exc:
        exit_with(exc)
    table = Table(title=f"task {loaded.name}", show_header=False)
    for key, value in loaded.summary().items():
        table.add_row(key, str(value))
    _out.print(table)
    for warning in loaded.warnings:
        _out.print(f"[yellow]warning:[/] {warning}")


@app.command()
def grade(
    task: Annotated[Path, typer.Argument(help="task.yaml, or the folder that holds it")],
    submission: Annotated[Path, typer.Argument(help="the submission csv to grade")],
    *,
    answers: Annotated[Path, typer.Option("--answers", help="csv with the test ids and true targets")],
) -> None:
    """Score a submission and print TASK_FORMAT.md's JSON report (with medals when a leaderboard exists)."""
    try:
        report = grade_submission(Task.load(task), submission, answers)
    except CrewError as exc:
        exit_with(exc)
    print(report.to_json())


def _register_plugins() -> None:
    """Add the commands other crew packages declare under the `crew.commands` entry point."""
    for entry in entry_points(group="crew.commands"):
        entry.load()(app)


_register_plugins()


def main() -> None:
    """Entry point of the `crew` script."""
    app()
