"""`crew solve` end to end: a valid submission within budget, resume after SIGKILL, determinism, a safety net."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crew import Blackboard, Task, grade
from crew.sandbox import Result
from crew.workflows.solve import solve
from tests.conftest import EXAMPLE_ANSWERS, EXAMPLE_TASK

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(sys.platform != "linux", reason="the sandbox's limits are Linux mechanisms")]


def _task(shared_tasks, name):
    return shared_tasks / name / "task.yaml"


def test_solve_a_development_task_within_budget(shared_tasks, tmp_path):
    started = time.monotonic()
    summary = solve(_task(shared_tasks, "penguins-species"), out=tmp_path / "run", wall_time=45, workers=2)
    elapsed = time.monotonic() - started
    assert elapsed <= 45 * 1.05 + 5, elapsed  # + interpreter and import time outside the budget's clock
    run = tmp_path / "run"
    task = Task.load(_task(shared_tasks, "penguins-species"))
    report = grade(task, run / "submission.csv", shared_tasks / "penguins-species" / "grading" / "answers.csv")
    assert report.valid_submission and report.score >= 0.9, report
    for name in ("blackboard.sqlite", "checkpoints.sqlite", "data_report.md", "run.json"):
        assert (run / name).exists(), name
    board = Blackboard(run / "blackboard.sqlite")
    done = board.experiments(status="done")
    assert len(done) >= 3
    folder = Path(done[0].artifacts["predictions.csv"]).parent
    assert {"code.py", "metrics.json", "oof.csv", "predictions.csv", "stdout.txt"} <= {p.name for p in folder.iterdir()}
    speakers = {m.sent_from for m in board.messages()}
    assert {"analyst", "planner", "modeler", "critic", "sandbox", "reviewer", "workflow"} <= speakers
    assert all(e.estimate.get("seconds") for e in done), "every launched experiment carries the critic's estimate"
    assert summary["final"]["kind"] in ("single", "ensemble", "stack")


class _Failing:
    """An executor whose every experiment crashes: the run must still end with a valid submission."""

    def run(self, launch):
        return Result(id=launch.id, reason="error", detail="exit status 1", exit_code=1, wall_time=0.1, cpu_time=0.1,
                      peak_memory=None, stderr_tail="Traceback: boom", workdir=str(Path(launch.data_dir or ".")))


def test_every_experiment_failing_still_leaves_a_valid_submission(tmp_path):
    summary = solve(EXAMPLE_TASK / "task.yaml", out=tmp_path / "run", wall_time=30, workers=1, max_experiments=6,
                    executor=_Failing())
    report = grade(Task.load(EXAMPLE_TASK), tmp_path / "run" / "submission.csv", EXAMPLE_ANSWERS)
    assert report.valid_submission, report
    assert summary["final"]["kind"] == "constant"
    board = Blackboard(tmp_path / "run" / "blackboard.sqlite")
    assert board.experiments(status="done") == [] and len(board.experiments(status="failed")) >= 1


def test_the_same_seed_gives_the_same_experiments_and_submission(shared_tasks, tmp_path):
    runs = []
    for name in ("a", "b"):
        solve(_task(shared_tasks, "wine-cultivar"), out=tmp_path / name, wall_time=400, workers=1, max_experiments=3,
              seed=3)
        board = Blackboard(tmp_path / name / "blackboard.sqlite")
        runs.append(([e.insights for e in board.experiments()], [e.code_hash for e in board.experiments()],
                     (tmp_path / name / "submission.csv").read_text()))
    assert runs[0] == runs[1]


def _done_count(board_path: Path) -> int:
    if not board_path.exists():
        return 0
    try:
        return len(Blackboard(board_path).experiments(status="done"))
    except Exception:
        return 0


def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_start(tmp_path):
    # killed between writing run.json and LangGraph's first checkpoint: --resume once failed with EmptyInputError
    from crew.testing import tiny_task

    task = tiny_task(tmp_path / "task")
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"task": str(task), "strategy": "greedy", "seed": 0, "workers": 1,
                                              "wall_time": 40, "max_experiments": 2, "llm": [], "llm_spend": None}))
    out = solve(None, resume=run)  # type: ignore[arg-type]
    assert out["experiments"] >= 1 and (run / "submission.csv").exists()
    assert Blackboard(run / "blackboard.sqlite").task()["name"] == "tiny"


def test_a_killed_run_resumes_without_rerunning_finished_experiments(shared_tasks, tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "crew", "solve", str(_task(shared_tasks, "cars-mpg")), "--out", str(run),
               "--budget", "60s", "--workers", "1", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 90
    while _done_count(run / "blackboard.sqlite") < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.3)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    board = Blackboard(run / "blackboard.sqlite")
    before = {e.id: e.code_hash for e in board.experiments(status="done")}
    assert len(before) >= 2
    resumed = subprocess.run([sys.executable, "-m", "crew", "solve", "--resume", str(run), "--quiet"],
                             capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = Blackboard(run / "blackboard.sqlite").experiments(status="done")
    hashes = [e.code_hash for e in after]
    assert all(hashes.count(h) == 1 for h in before.values()), "a finished experiment ran again"
    assert set(before) <= {e.id for e in after}
    task = Task.load(_task(shared_tasks, "cars-mpg"))
    report = grade(task, run / "submission.csv", shared_tasks / "cars-mpg" / "grading" / "answers.csv")
    assert report.valid_submission
    assert json.loads((run / "run.json").read_text())["wall_time"] == 60


def test_bad_solve_arguments_are_one_line_errors(cli, tmp_path):
    result = cli("solve", EXAMPLE_TASK / "task.yaml", "--strategy", "random-walk")
    assert result.exit_code == 2 and "--strategy: unknown strategy 'random-walk'" in result.stderr
    result = cli("solve", "--resume", tmp_path)
    assert result.exit_code == 2 and "not a crew run folder" in result.stderr
    result = cli("solve", tmp_path / "missing.yaml")
    assert result.exit_code == 2 and "error:" in result.stderr
    result = cli("solve", EXAMPLE_TASK / "task.yaml", "--budget", "soon")
    assert result.exit_code == 2 and "--budget:" in result.stderr
    result = cli("solve", EXAMPLE_TASK / "task.yaml", "--llm", "modeller=openai:gpt-4o")
    assert result.exit_code == 2 and "unknown role 'modeller'" in result.stderr and "fix:" in result.stderr
    result = cli("solve", EXAMPLE_TASK / "task.yaml", "--llm", "gpt-4o")
    assert result.exit_code == 2 and "provider:model" in result.stderr
    result = cli("solve", EXAMPLE_TASK / "task.yaml", "--llm-budget", "-1")
    assert result.exit_code == 2 and "--llm-budget:" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_search_stops_once_the_last_proposals_were_all_refused_for_time(tmp_path):
    from crew import Experiment
    from crew.workflows.solve import _out_of_time_streak

    board = Blackboard(tmp_path / "board.sqlite")
    board.add_experiment(Experiment(id="a", code="a", status="done", score=1.0))
    for i, seconds in enumerate((30.0, 40.0)):
        board.add_experiment(Experiment(id=f"r{i}", code=f"r{i}", status="rejected", estimate={"seconds": seconds}))
    assert _out_of_time_streak(board, 2, seconds_left=20.0)
    assert not _out_of_time_streak(board, 2, seconds_left=35.0)  # the 30 s one would fit now
    assert not _out_of_time_streak(board, 3, seconds_left=20.0)  # a finished experiment breaks the streak
    board.add_experiment(Experiment(id="p", code="p", status="running"))
    assert _out_of_time_streak(board, 2, seconds_left=20.0)  # a running one neither breaks nor counts


def test_a_refusal_for_the_critics_wall_margin_counts_towards_the_streak(tmp_path):
    from crew import Experiment
    from crew.workflows.solve import _out_of_time_streak

    board = Blackboard(tmp_path / "board.sqlite")
    for i in range(2):  # 8.5 s would fit in the 17 s left, but not in the 5.6 s the critic could allow with its margin
        board.add_experiment(Experiment(id=f"r{i}", code=f"r{i}", status="rejected",
                                        estimate={"seconds": 8.5, "wall_allowed": 5.6}))
    assert _out_of_time_streak(board, 2, seconds_left=17.0)
    board.add_experiment(Experiment(id="big", code="big", status="rejected",  # too big for experiment_time, not wall
                                    estimate={"seconds": 90.0, "wall_allowed": 400.0}))
    assert not _out_of_time_streak(board, 2, seconds_left=500.0)


def test_final_selection_weighs_the_best_of_every_family_not_only_the_top():
    from crew import Experiment
    from crew.workflows.final import TOP_K as _TOP_K
    from crew.workflows.final import candidates as _candidates

    ranked = [Experiment(id=f"lgb{i}", insights=["lightgbm"], code="x", spec={"model": "lightgbm"})
              for i in range(_TOP_K + 3)]
    ranked += [Experiment(id=f"lin{i}", insights=["linear"], code="x", spec={"model": "linear"}) for i in range(2)]
    chosen = [e.id for e in _candidates(ranked)]
    assert chosen == [f"lgb{i}" for i in range(_TOP_K)] + ["lin0"]
