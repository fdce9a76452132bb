"""`crew report`, `crew runs`, `crew export-mlflow` and `crew graph`: seeing what a run did, which runs exist, and how the team is wired."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from crew import CrewError
from crew.errors import exit_with as fail

__all__ = ["register"]


def _is_run(folder: Path) -> bool:
    return (folder / "blackboard.sqlite").is_file()


def runs_in(folder: Path) -> list[Path]:
    """Run folders at `folder` itself or up to three levels below it (`runs/<run>`, `bench/<task>/crew/run`)."""
    if _is_run(folder):
        return [folder]
    found = [p.parent for depth in range(1, 4) for p in folder.glob("*/" * depth + "blackboard.sqlite")]
    return sorted(set(found))


def register(app: typer.Typer) -> None:
    """Add `crew report`, `crew runs`, `crew export-mlflow` and `crew graph` (found through the `crew.commands` entry point)."""

    @app.command("report")
    def report_command(
        run_dir: Annotated[Path, typer.Argument(help="a run folder written by crew solve")],
        *,
        out: Annotated[Path | None, typer.Option(help="where to write the page (default RUN_DIR/report.html)")] = None,
    ) -> None:
        """Write one self-contained HTML page of a run: scores, experiment tree, leaderboard, roles, costs."""
        from crew.workflows.report import report

        if not _is_run(run_dir):
            if (run_dir / "targets").is_dir():
                columns = sorted(p.parent.name for p in (run_dir / "targets").glob("*/run")) or ["<column>"]
                fail(CrewError(f"{run_dir}: a run of several targets, one run per column ({', '.join(columns[:6])}); "
                               f"fix: report a column's run, e.g. crew report {run_dir / 'targets' / columns[0] / 'run'}"))
            fail(CrewError(f"{run_dir}: not a crew run folder (no blackboard.sqlite); fix: pass the folder "
                           "`crew solve` wrote, e.g. runs/<task>-<time>"))
        path = report(run_dir, out=out)
        Console(soft_wrap=True).print(f"report: {path}", highlight=False)

    @app.command("runs")
    def runs_command(
        folder: Annotated[Path, typer.Argument(help="where runs live (default ./runs)")] = Path("runs"),
    ) -> None:
        """List the runs in a folder: task, best score, status and duration."""
        from crew.workflows.report import run_summary

        if not folder.is_dir():
            fail(CrewError(f"{folder}: no such folder; fix: pass the folder holding your run folders "
                           "(crew solve writes them under ./runs by default)"))
        table = Table(title=f"runs in {folder}")
        for column in ("run", "task", "metric", "best", "status", "duration", "experiments"):
            table.add_column(column, justify="right" if column in ("best", "duration", "experiments") else "left")
        rows = 0
        for run in runs_in(folder):
            name = str(run.relative_to(folder)) if run != folder else run.name
            try:
                s = run_summary(run)
            except Exception as exc:  # a torn or foreign database: listed, not fatal
                table.add_row(name, "?", "", "", f"unreadable ({type(exc).__name__})", "", "")
                rows += 1
                continue
            best = "" if s["best"] is None else f"{s['best']:.5g}"
            table.add_row(name, s["task"],
                          str(s["metric"] or ("score" if s["kind"] == "kernel" else "")), best, s["status"],
                          f"{s['elapsed']:.0f}s", str(s["experiments"]))
            rows += 1
        console = Console(soft_wrap=True)
        if not rows:
            console.print(f"no runs in {folder}", highlight=False)
            return
        console.print(table)

    @app.command("export-mlflow")
    def export_mlflow_command(
        run_dir: Annotated[Path, typer.Argument(help="a run folder written by crew solve")],
        *,
        tracking_uri: Annotated[str | None, typer.Option(
            help="the MLflow store (default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)")] = None,
        experiment: Annotated[str | None, typer.Option(help="MLflow experiment name (default crew/<task>)")] = None,
    ) -> None:
        """Log a run to MLflow: the run as a parent, each experiment as a child with params, metrics and code."""
        from crew.workflows.mlflow_export import export_mlflow

        try:
            logged = export_mlflow(run_dir, tracking_uri=tracking_uri, experiment_name=experiment)
        except CrewError as exc:
            fail(exc)
        console = Console(soft_wrap=True)
        console.print(f"mlflow: {logged['logged']} experiments logged, {logged['skipped']} already there or unfinished; "
                      f"experiment {logged['experiment']!r}, run {logged['parent_run_id']}", highlight=False)
        console.print(f"view: mlflow ui --backend-store-uri {logged['tracking_uri']}", highlight=False)

    @app.command("graph")
    def graph_command(
        name: Annotated[str, typer.Argument(help="the workflow: solve or optimize")] = "solve",
        *,
        out: Annotated[Path | None, typer.Option(help="draw to an .svg or .png (needs Graphviz); default: print "
                                                      "Mermaid")] = None,
    ) -> None:
        """Print a workflow as Mermaid, or draw it to an SVG or PNG."""
        from crew.workflows import diagram

        if name not in diagram.GRAPHS:
            fail(CrewError(f"crew graph: unknown workflow {name!r}; fix: use one of {', '.join(diagram.GRAPHS)}"))
        if out is None:
            typer.echo(diagram.mermaid(name), nl=False)
            return
        try:
            path = diagram.render(name, out)
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            fail(CrewError(f"--out: {exc}"))
        Console(soft_wrap=True).print(f"graph: {path}", highlight=False)
