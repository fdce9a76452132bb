"""`crew bench`: a suite solved K times, graded, summarised; pass@k's estimator; a killed bench resumes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

import pytest

from crew import CrewError
from crew.testing import tiny_task
from crew.workflows import suite
from crew.workflows.suite import RunRecord, bench, discover, normalized_score, pass_at_k, read_baseline

pytestmark = pytest.mark.e2e  # whole solves, suites or clusters: not in the fast tier


def _suite(root: Path, names=("alpha", "beta"), *, leaderboard: str | None = "beta") -> Path:
    for name in names:
        task = tiny_task(root / name)
        task.write_text(task.read_text().replace("name: tiny", f"name: {name}")
                        + "budget:\n  wall_time: 30s\n  max_experiments: 2\n")
        (root / name / "grading").mkdir()
        (root / name / "grading" / "answers.csv").write_text(
            "id,y\n" + "".join(f"{i},{int(i % 7 > 3)}\n" for i in range(40, 50)))
    if leaderboard:
        (root / leaderboard / "leaderboard.csv").write_text("score\n" + "".join(f"{1 - i / 20}\n" for i in range(20)))
    return root


@pytest.mark.parametrize(("n", "c"), [(1, 0), (1, 1), (3, 1), (5, 2), (6, 3), (4, 4)])
def test_pass_at_k_is_the_exact_chance_that_a_drawn_subset_holds_a_pass(n, c):
    outcomes = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):
        subsets = list(combinations(outcomes, k))
        exact = sum(any(s) for s in subsets) / len(subsets)
        assert pass_at_k(n, c, k) == pytest.approx(exact)
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4) and pass_at_k(5, 2, 4) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(2, 3, 1)


def test_normalized_score_is_direction_free_and_counts_invalid_as_the_dummy():
    assert normalized_score(0.9, 0.8, 0.5) == pytest.approx(4 / 3)  # higher is better, beats the baseline
    assert normalized_score(2.0, 3.0, 7.0) == pytest.approx(1.25)  # rmse: lower is better, beats the baseline
    assert normalized_score(None, 0.8, 0.5) == 0.0
    assert normalized_score(0.9, 0.5, 0.5) is None


def test_discover_needs_answers_and_names_the_fix(tmp_path):
    root = _suite(tmp_path / "suite", leaderboard=None)
    assert [t.name for t in discover(root)] == ["alpha", "beta"]
    (root / "beta" / "grading" / "answers.csv").unlink()
    with pytest.raises(CrewError, match=r"beta: no answers at .*fix: .*--answers-root"):
        discover(root)
    elsewhere = tmp_path / "answers" / "beta"
    elsewhere.mkdir(parents=True)
    (elsewhere / "answers.csv").write_text("id,y\n40,1\n")
    (root / "alpha" / "grading" / "answers.csv").rename(tmp_path / "answers" / "alpha.csv")
    (tmp_path / "answers" / "alpha").mkdir()
    (tmp_path / "answers" / "alpha.csv").rename(tmp_path / "answers" / "alpha" / "answers.csv")
    assert [t.answers.parent.name for t in discover(root, answers_root=tmp_path / "answers")] == ["alpha", "beta"]
    with pytest.raises(CrewError, match="--tasks: gamma not in"):
        discover(root, answers_root=tmp_path / "answers", only=["alpha", "gamma"])


def test_read_baseline_takes_csv_and_json_and_explains_a_bad_file(tmp_path):
    (tmp_path / "b.csv").write_text("task,score,dummy\nalpha,0.8,0.5\n")
    (tmp_path / "b.json").write_text(json.dumps({"alpha": 0.8, "beta": {"score": 2.0, "dummy": 7.0}}))
    assert read_baseline(tmp_path / "b.csv") == {"alpha": {"score": 0.8, "dummy": 0.5}}
    assert read_baseline(tmp_path / "b.json") == {"alpha": {"score": 0.8}, "beta": {"score": 2.0, "dummy": 7.0}}
    (tmp_path / "bad.csv").write_text("name,value\nalpha,1\n")
    with pytest.raises(CrewError, match=r"bad.csv: --baseline: .*fix: write a CSV with columns task,score"):
        read_baseline(tmp_path / "bad.csv")


def test_crashed_and_timed_out_runs_count_invalid_and_never_vanish(tmp_path, monkeypatch):
    root = _suite(tmp_path / "suite", leaderboard="beta")
    outcomes = {("alpha", 0): ("crashed", "exit status -9: Killed"), ("beta", 0): ("timeout", "killed after 97s")}
    calls = []

    def fake_solve(item, run_dir, seed, budget, *, workers, llm, address=None):
        calls.append((item.name, seed))
        run_dir.mkdir(parents=True)
        status, error = outcomes[(item.name, seed)]
        (run_dir / "submission.csv").write_text("id,y\n" + "".join(f"{i},0.5\n" for i in range(40, 50)))
        return status, budget * 1.3, error

    monkeypatch.setattr(suite, "_solve", fake_solve)
    summary = bench(root, out=tmp_path / "out", runs=1)
    rows = {r["task"]: r for r in summary["tasks"]}
    assert calls == [("alpha", 0), ("beta", 0)]
    assert rows["alpha"]["scores"] == [None] and rows["alpha"]["valid_rate"] == 0.0
    assert rows["alpha"]["statuses"] == ["crashed"] and "Killed" in rows["alpha"]["errors"][0]
    assert rows["beta"]["medals"] == [None] and rows["beta"]["pass_at_k"] == {"1": 0.0}
    assert summary["overall"]["crashed_or_timed_out"] == 2 and summary["overall"]["runs"] == 2
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "| alpha | roc_auc ↑ | invalid |" in md and "crashed or timed out: 2 of 2" in md
    # the same folder with other settings is refused rather than mixed
    with pytest.raises(CrewError, match=r"other settings \(seed: 0 there\).*fix"):
        bench(root, out=tmp_path / "out", runs=1, seed=5)


def test_bench_solves_grades_and_summarises_every_run_with_medals_pass_at_k_and_ns(tmp_path, cli):
    root = _suite(tmp_path / "suite")
    (tmp_path / "baseline.csv").write_text("task,score\nalpha,0.7\nbeta,0.7\n")
    out = tmp_path / "out"
    result = cli("bench", root, "--runs", "2", "--out", out, "--baseline", tmp_path / "baseline.csv", "--workers", "1")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["task"]: r for r in summary["tasks"]}
    records = [RunRecord.model_validate_json(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted((r.task, r.run, r.seed) for r in records) == [("alpha", 0, 0), ("alpha", 1, 1), ("beta", 0, 0),
                                                                ("beta", 1, 1)]
    assert all(r.status == "ok" and r.valid and r.wall_s <= r.budget_s * 1.25 for r in records)
    assert rows["alpha"]["pass_criterion"] == "at least the baseline" and "medals" not in rows["alpha"]
    assert rows["beta"]["pass_criterion"] == "any medal" and len(rows["beta"]["medals"]) == 2
    for row in rows.values():
        assert set(row["pass_at_k"]) == {"1", "2"} and 0.0 <= row["pass_at_k"]["1"] <= row["pass_at_k"]["2"] <= 1.0
        assert row["dummy"] == pytest.approx(0.5) and len(row["ns"]) == 2  # the prior's AUC, graded here
        assert row["ns"][0] == pytest.approx((row["scores"][0] - 0.5) / (0.7 - 0.5))
    assert summary["overall"]["valid_rate"]["mean"] == 1.0 and len(summary["overall"]["ns"]["per_run"]) == 2
    assert "| beta | roc_auc ↑ |" in result.stdout and "pass@2" in result.stdout
    # started again, a finished bench reruns nothing and says so
    again = cli("bench", root, "--runs", "2", "--out", out, "--baseline", tmp_path / "baseline.csv", "--workers", "1")
    assert again.exit_code == 0 and again.stdout.count("[recorded]") == 4
    assert len((out / "results.jsonl").read_text().splitlines()) == 4


def test_a_bench_killed_with_sigkill_resumes_without_rerunning_finished_runs(tmp_path):
    root = _suite(tmp_path / "suite", names=("alpha",), leaderboard=None)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "crew", "bench", str(root), "--runs", "3", "--out", str(out), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (results.exists() and results.read_text().count("\n") >= 1
                                               and (out / "alpha" / "run-1" / "run.json").exists()):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-way through run 1: run 0 is recorded, run 1 is not
    proc.wait()
    first = results.read_text().splitlines()
    assert len(first) == 1, first
    time.sleep(1.0)  # the solver dies with the bench (PDEATHSIG); nothing may still write run 1's folder
    solver_alive = subprocess.run(["pgrep", "-f", f"--out {out}/alpha/run-1"], capture_output=True).returncode == 0
    assert not solver_alive
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = results.read_text().splitlines()
    assert lines[0] == first[0]  # run 0 was not rerun
    records = [RunRecord.model_validate_json(line) for line in lines]
    assert [r.run for r in records] == [0, 1, 2] and all(r.valid for r in records)
    # run 1 was resumed in its folder (solve --resume), not started over elsewhere
    assert "--resume" not in (out / "alpha" / "run-0" / "solve.log").read_text()
    assert (out / "alpha" / "run-1" / "solve.log").stat().st_size > 0 and records[1].run_dir.endswith("run-1")
    assert math.isclose(json.loads((out / "summary.json").read_text())["tasks"][0]["valid_rate"], 1.0)


def test_bench_runs_tasks_in_parallel_on_one_ray_instance(tmp_path, cli):
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()  # the module's instance is down: the bench starts (and stops) its own
    root = _suite(tmp_path / "suite", leaderboard=None)
    out = tmp_path / "out"
    result = cli("bench", root, "--out", out, "--executor", "ray", "--workers", "1")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert [r["valid_rate"] for r in summary["tasks"]] == [1.0, 1.0]
    logs = [(out / name / "run-0" / "solve.log").read_text() for name in ("alpha", "beta")]
    assert all("final" in log for log in logs)
    assert not ray.is_initialized()
