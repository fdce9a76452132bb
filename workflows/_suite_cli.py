"""`crew bench` and `crew import-mlebench`: running a suite of tasks, and turning MLE-bench competitions into tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from crew import CrewError, parse_duration
from crew.errors import exit_with as fail

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `crew bench` and `crew import-mlebench` (found through the `crew.commands` entry point)."""

    @app.command("bench")
    def bench_command(
        suite: Annotated[Path, typer.Argument(help="a folder of <task>/task.yaml folders, answers in "
                                                   "<task>/grading/answers.csv")],
        *,
        runs: Annotated[int, typer.Option(help="runs per task, each with a fresh seed (pass@k needs k <= runs)")] = 1,
        out: Annotated[Path | None, typer.Option(help="bench folder (default bench-runs/<suite>); run again on it to "
                                                      "resume")] = None,
        workers: Annotated[int | None, typer.Option(help="experiments at once within a run")] = None,
        budget: Annotated[str | None, typer.Option(help="wall time per run, e.g. 2m (default: each task's)")] = None,
        llm: Annotated[list[str] | None, typer.Option(help="who thinks, as in crew solve --llm")] = None,
        seed: Annotated[int, typer.Option(help="run k uses seed SEED + k")] = 0,
        answers_root: Annotated[Path | None, typer.Option(help="answers at ROOT/<task>/answers.csv instead")] = None,
        baseline: Annotated[Path | None, typer.Option(help="CSV task,score[,dummy] or JSON {task: score}: adds the "
                                                           "normalized score")] = None,
        tasks: Annotated[str | None, typer.Option(help="only these tasks, comma-separated")] = None,
        parallel: Annotated[int | None, typer.Option(help="runs at once (default 1; with --executor ray, every task "
                                                          "at once)")] = None,
        executor: Annotated[str, typer.Option(help="where experiments run: local or ray (one cluster for all "
                                                   "runs)")] = "local",
        address: Annotated[str | None, typer.Option(help="with --executor ray: the cluster to join (default: a "
                                                         "local Ray instance for the bench)")] = None,
    ) -> None:
        """Solve every task of a suite K times, grade each run, and write summary.md and summary.json."""
        from crew.workflows.suite import RunRecord, bench, render

        console = Console(soft_wrap=True)

        def show(record: RunRecord, recorded: bool) -> None:
            what = "recorded" if recorded else f"{record.wall_s:.0f}s"
            score = "invalid" if record.score is None else f"{record.score:.5g}"
            extra = f" ({record.error[:160]})" if record.error and not record.valid else ""
            medal = f" {record.medal}" if record.medal else ""
            console.print(f"{record.task} run {record.run}: {record.status}, {score}{medal} [{what}]{extra}",
                          highlight=False, markup=False)

        try:
            wall = parse_duration(budget) if budget else None
        except ValueError as exc:
            fail(CrewError(f"--budget: {exc}; fix: write a positive duration like 90s, 2m or 1h"))
        folder = out or Path("bench-runs") / suite.resolve().name
        try:
            summary = bench(suite, out=folder, runs=runs, workers=workers, budget=wall, llm=llm or [], seed=seed,
                            answers_root=answers_root, baseline=baseline,
                            tasks=[t.strip() for t in tasks.split(",") if t.strip()] if tasks else (),
                            parallel=parallel, executor=executor, address=address, on_record=show)
        except CrewError as exc:
            fail(exc)
        console.print(render(summary), highlight=False, markup=False)
        console.print(f"summary: {folder / 'summary.md'}", highlight=False)

    @app.command("import-mlebench")
    def import_mlebench_command(
        public: Annotated[Path | None, typer.Argument(help="a prepared competition's public/ folder (description.md, "
                                                           "train, test, sample_submission)")] = None,
        *,
        out: Annotated[Path | None, typer.Option(help="the task folder to write")] = None,
        show_list: Annotated[bool, typer.Option("--list", help="list MLE-bench's 75 competitions with what crew "
                                                               "supports of each, and exit")] = False,
        lite: Annotated[bool, typer.Option("--lite", help="with --list: only the 22 of MLE-bench Lite")] = False,
        competition: Annotated[str | None, typer.Option(help="the competition's id, when the folder's path does not "
                                                             "end in <id>/prepared/public")] = None,
        metric: Annotated[str | None, typer.Option(help="the metric, when description.md does not say it plainly")] = None,
        name: Annotated[str | None, typer.Option(help="task name (default: the competition's)")] = None,
        private: Annotated[Path | None, typer.Option(help="the prepared private/ folder: writes grading/answers.csv")] = None,
        leaderboard: Annotated[Path | None, typer.Option(help="the competition's leaderboard.csv: medals in crew "
                                                              "grade and crew bench")] = None,
    ) -> None:
        """Turn a prepared MLE-bench competition into a task folder (tables, text, images, sound), or list what crew supports."""
        from crew.workflows.mlebench import import_mlebench, listing

        if show_list:
            from rich.table import Table

            rows = listing(lite_only=lite)
            table = Table("competition", "lite", "inputs", "predicts", "metric", "crew today", show_lines=False)
            for row in rows:
                table.add_row(row["competition"], "yes" if row["lite"] else "", row["modality"], row["output"],
                              row["metric"], row["status"])
            console = Console(soft_wrap=False, width=200)
            console.print(table)
            supported = sum(r["status"].startswith("imports") for r in rows)
            console.print(f"{supported} of {len(rows)} import and solve offline", highlight=False)
            return
        if public is None or out is None:
            fail(CrewError("import-mlebench: needs PUBLIC and --out (or --list); fix: crew import-mlebench "
                           "<competition>/prepared/public --out TASK_DIR"))
        try:
            path = import_mlebench(public, out=out, metric=metric, name=name, private_dir=private,
                                   leaderboard=leaderboard, competition=competition)
        except CrewError as exc:
            fail(exc)
        Console(soft_wrap=True).print(f"task: {path}", highlight=False)
