"""`crew solve`: run the team on a task from the command line, with a live view of the run (or plain logs)."""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from crew import Blackboard, CrewError, Task, better, parse_duration, team_brains
from crew.errors import exit_with as fail
from crew.sandbox import RayExecutor, check_executor
from crew.workflows.optimize import describe_log
from crew.workflows.solve import default_run_dir, solve
from crew.workflows.strategies import STRATEGIES

__all__ = ["register"]

_ROLE_OF = {"analyst": "analyst", "planner": "planner", "modeler": "modeler", "critic": "critic", "run": "sandbox",
            "review": "reviewer", "finalize": "final selection", "setup": "setup", "optimizer": "kernel optimizer",
            "confirm": "scorer (confirming the fastest)"}


class _View:
    """What the live display shows: elapsed / budget, experiments by status, best score, the role acting."""

    def __init__(self, board_path: Path, wall_time: float, metric: str, higher: bool, quiet: bool, console: Console):
        self.board_path = board_path
        self.wall_time = wall_time
        self.metric = metric
        self.higher = higher
        self.quiet = quiet
        self.console = console
        self.started = time.monotonic()
        self.acting = "setup"
        self.live: Live | None = None
        self._board: Blackboard | None = None

    def board(self) -> Blackboard | None:
        if self._board is None and self.board_path.exists():
            self._board = Blackboard(self.board_path)
        return self._board

    def table(self) -> Table:
        table = Table(show_header=False, title="crew solve", expand=False)
        board = self.board()
        counts: dict[str, int] = {}
        best = None
        if board is not None:
            for exp in board.experiments():
                counts[exp.status] = counts.get(exp.status, 0) + 1
                if exp.status == "done" and exp.score is not None and better(exp.score, best, self.higher):
                    best = exp.score
        table.add_row("elapsed", f"{time.monotonic() - self.started:.0f}s of {self.wall_time:.0f}s")
        table.add_row("experiments", f"{counts.get('done', 0) + counts.get('cached', 0)} done, "
                                     f"{counts.get('running', 0)} running, {counts.get('rejected', 0)} rejected, "
                                     f"{counts.get('failed', 0)} failed")
        table.add_row("best score" if self.metric == "score" else f"best cv {self.metric}",
                      "-" if best is None else f"{best:.5f}")
        table.add_row("acting", self.acting)
        return table

    def __call__(self, node: str, update: dict[str, Any]) -> None:
        self.acting = _ROLE_OF.get(node, self.acting)
        if self.quiet:
            line = self._log_line(node, update)
            if line:
                self.console.print(f"[{time.monotonic() - self.started:6.1f}s] {line}", highlight=False)
        elif self.live is not None:
            self.live.update(self.table())

    @staticmethod
    def _log_line(node: str, update: dict[str, Any]) -> str | None:
        if node == "review" and "review" in update:
            review = update["review"]
            verdict = "accepted" if review.get("accepted") else "rejected"
            score = review.get("score")
            return f"reviewer: {review.get('experiment', '')} {verdict}" + (f", cv {score:.5f}" if score is not None else "")
        if node == "critic" and "verdict" in update:
            verdict = update["verdict"]
            return f"critic: {verdict['verdict']} (est. {verdict['estimate']['seconds']:.1f}s)" + (
                f": {verdict['reason']}" if verdict.get("reason") else "")
        if node == "finalize" and "final" in update:
            return f"final selection: {update['final'].get('rationale', '')}"
        if node in ("analyst", "planner"):
            return f"{node}: done"
        if node == "optimizer" and "proposal" in update:
            proposal = update["proposal"]
            return "optimizer: no untried move left" if proposal.get("stop") else \
                f"optimizer: {proposal.get('transform')} -> {proposal.get('id')}"
        return None


def register(app: typer.Typer) -> None:
    """Add `crew solve` to the command line (found through the `crew.commands` entry point)."""

    @app.command("solve")
    def solve_command(
        task: Annotated[Path | None, typer.Argument(help="the task.yaml to solve (omit with --resume)")] = None,
        *,
        out: Annotated[Path | None, typer.Option(help="run folder (default runs/<task>-<time>)")] = None,
        llm: Annotated[list[str] | None, typer.Option(
            help="who thinks: offline (default), a chat model for every role (openai:gpt-4o, anthropic:MODEL, "
                 "ollama:MODEL, http://host:port/v1#MODEL), or ROLE=MODEL for one role; repeat it for a mixed team, "
                 "e.g. --llm openai:gpt-4o --llm reviewer=offline")] = None,
        llm_budget: Annotated[float | None, typer.Option(
            help="US dollars the chat models may cost (default: the task's budget.llm_spend, else no cap); "
                 "then the offline expert decides")] = None,
        strategy: Annotated[str, typer.Option(help=f"search strategy: {', '.join(STRATEGIES)}")] = "greedy",
        workers: Annotated[int | None, typer.Option(help="experiments at once (default: from cores and memory)")] = None,
        budget: Annotated[str | None, typer.Option(help="wall time for the whole run, e.g. 10m (default: the task's)")] = None,
        seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same run offline")] = 0,
        resume: Annotated[Path | None, typer.Option(help="continue a killed run from its folder")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", help="log lines instead of the live display")] = False,
        executor: Annotated[str, typer.Option(help="where experiments run: local (this machine's sandbox) or ray "
                                                   "(a Ray cluster; needs crew[ray])")] = "local",
        address: Annotated[str | None, typer.Option(help="with --executor ray: auto or ray://host:port to join a "
                                                         "cluster (default: start a local Ray instance)")] = None,
        allow_unconfined: Annotated[bool, typer.Option(
            "--allow-unconfined", help="run a chat model's code even where `crew doctor` says experiments are not "
            "confined (they could read and reach what crew can)")] = False,
        mlflow: Annotated[bool, typer.Option(
            "--mlflow", help="when done, log every experiment to MLflow ($MLFLOW_TRACKING_URI, else "
                             "./mlflow.db); needs crew[mlflow]")] = False,
    ) -> None:
        """Solve a task with the team: analyse, plan, search under the critic's eye, ensemble, submit."""
        try:
            _solve_command(task, out, llm or [], llm_budget, strategy, workers, budget, seed, resume, quiet, mlflow,
                           executor, address, allow_unconfined)
        except CrewError as exc:
            fail(exc)


def _solve_command(task: Path | None, out: Path | None, llm: list[str], llm_budget: float | None, strategy: str,
                   workers: int | None, budget: str | None, seed: int, resume: Path | None, quiet: bool,
                   mlflow: bool, executor: str = "local", address: str | None = None,
                   allow_unconfined: bool = False) -> None:
    console = Console(soft_wrap=True)
    check_executor(executor, address)
    if mlflow:
        from crew.workflows.mlflow_export import require_mlflow

        require_mlflow()  # a missing extra is said before the run, not after it
    if strategy not in STRATEGIES:
        raise CrewError(f"--strategy: unknown strategy {strategy!r}; fix: use one of {', '.join(STRATEGIES)}")
    if task is None and resume is None:
        raise CrewError("crew solve needs a TASK (task.yaml) or --resume RUN_DIR; fix: pass one of them")
    if resume is not None and not (resume / "run.json").exists():
        raise CrewError(f"{resume}: --resume: not a crew run folder (no run.json); fix: pass the folder a "
                        "previous `crew solve` wrote")
    team_brains(*llm)  # checks every --llm spec before anything runs; solve builds the brains with the run's budget
    if llm_budget is not None and llm_budget < 0:
        raise CrewError(f"--llm-budget: {llm_budget} is negative; fix: give US dollars, e.g. --llm-budget 2.5")
    try:
        wall = parse_duration(budget) if budget else None
    except ValueError as exc:
        raise CrewError(f"--budget: {exc}; fix: write a positive duration like 90s, 10m or 1h") from None
    loaded = Task.load(task) if task is not None else None
    run_dir = resume or out
    shown = loaded or Task.load(json.loads((resume / "run.json").read_text(encoding="utf-8"))["task"])  # type: ignore[operator]
    kernel = shown.kind == "kernel"
    view = _View((run_dir or Path("runs")) / "blackboard.sqlite", wall or shown.budget.wall_time,
                 "score" if kernel else shown.metric or "", kernel or shown.metric_info.higher_is_better, quiet, console)
    if quiet:
        summary = _run(task, out, llm, llm_budget, strategy, workers, wall, seed, resume, view, loaded, executor, address,
                       allow_unconfined)
    else:
        with Live(view.table(), console=console, refresh_per_second=4, transient=False) as live:
            view.live = live
            summary = _run(task, out, llm, llm_budget, strategy, workers, wall, seed, resume, view, loaded, executor,
                           address, allow_unconfined)
            live.update(view.table())
    _print_outcome(console, summary, kernel)
    if mlflow:
        from crew.workflows.mlflow_export import export_mlflow

        logged = export_mlflow(summary["run_dir"])
        console.print(f"mlflow: {logged['logged']} experiments logged to {logged['tracking_uri']} (experiment "
                      f"{logged['experiment']!r}, run {logged['parent_run_id']})", highlight=False)


def _print_outcome(console: Console, summary: dict[str, Any], kernel: bool) -> None:
    final = summary["final"]
    if kernel:
        console.print(describe_log(summary["score_log"]), highlight=False, markup=False)
        console.print(f"solution: {summary['submission']}", highlight=False)
        console.print(f"final: {final.get('rationale', '')}", highlight=False)
        console.print(f"run folder: {summary['run_dir']} ({summary['experiments']} candidates in "
                      f"{summary['elapsed']:.0f}s)", highlight=False)
        return
    console.print(f"submission: {summary['submission']}", highlight=False)
    cv = final.get("cv")
    console.print(f"final: {final.get('kind', '?')}, cv {'-' if cv is None else f'{cv:.5f}'}; "
                  f"{final.get('rationale', '')}", highlight=False)
    console.print(f"run folder: {summary['run_dir']} ({summary['experiments']} experiments in "
                  f"{summary['elapsed']:.0f}s)", highlight=False)


def _run(task: Path | None, out: Path | None, llm: list[str], llm_budget: float | None, strategy: str,
         workers: int | None, wall: float | None, seed: int, resume: Path | None, view: _View,
         loaded: Task | None, executor: str = "local", address: str | None = None,
         allow_unconfined: bool = False) -> dict[str, Any]:
    if out is None and resume is None and loaded is not None:
        out = default_run_dir(loaded)
        view.board_path = out / "blackboard.sqlite"
    run_dir = resume or out
    assert run_dir is not None
    # None under a null context: solve's own local sandbox
    place = RayExecutor(root=run_dir / "experiments", address=address) if executor == "ray" else nullcontext()
    with place as cluster:
        return solve(task or Path("."), out=out, llm=llm, llm_spend=llm_budget, strategy=strategy, workers=workers,
                     wall_time=wall, seed=seed, resume=resume, on_event=view, executor=cluster,
                     allow_unconfined=allow_unconfined)
