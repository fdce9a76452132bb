"""The example task is what its generator writes, and its answers live outside the task folder."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_ANSWERS, EXAMPLE_TASK, REPO

pytestmark = pytest.mark.e2e  # whole solves, suites or clusters: not in the fast tier


def test_example_task_regenerates_exactly(tmp_path):
    module = runpy.run_path(str(REPO / "examples" / "make_breast_cancer_task.py"))
    module["write"](tmp_path)
    for rel in ("task.yaml", "data/train.csv", "data/test.csv", "data/sample_submission.csv"):
        assert (tmp_path / "tasks" / "breast-cancer" / rel).read_bytes() == (EXAMPLE_TASK / rel).read_bytes(), rel
    assert (tmp_path / "answers" / "breast-cancer" / "answers.csv").read_bytes() == EXAMPLE_ANSWERS.read_bytes()


def test_answers_are_not_beside_the_task():
    assert not EXAMPLE_ANSWERS.is_relative_to(EXAMPLE_TASK)
    assert "malignant" not in (EXAMPLE_TASK / "data" / "test.csv").read_text().splitlines()[0]
    assert not list(EXAMPLE_TASK.rglob("answers*"))


PREFIX_SUM = REPO / "examples" / "tasks" / "prefix-sum"


def _score(candidate, *args: str) -> dict:
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(PREFIX_SUM / "score.py"), str(candidate), *args],
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_prefix_sum_task_is_a_valid_kernel_task_and_its_start_scores():
    from crew import Task

    task = Task.load(PREFIX_SUM)
    assert task.kind == "kernel" and task.path(task.starting_solution).is_file()
    result = _score(PREFIX_SUM / "solution.py", "--n", "20000", "--repeats", "2")
    assert result["valid"] and result["score"] == -result["log_ms"] and result["time_s"] > 0


def test_the_prefix_sum_scorer_gives_a_wrong_or_broken_candidate_nothing(tmp_path):
    off_by_one = tmp_path / "wrong.py"  # counts the positives up to and including x_j: fast and wrong
    off_by_one.write_text("import numpy as np\n\ndef prefix_sum(x):\n    v = x.astype(np.int64)\n"
                          "    return np.cumsum(v * (np.cumsum(v > 0) % 2))\n")
    broken = tmp_path / "broken.py"
    broken.write_text("def prefix_sum(x):\n    raise RuntimeError('boom')\n")
    for candidate, error in ((off_by_one, "wrong output"), (broken, "boom")):
        result = _score(candidate, "--n", "20000")
        assert result["valid"] is False and result["score"] is None and error in result["error"]


def _example(name: str) -> dict:
    return runpy.run_path(str(REPO / "examples" / f"{name}.py"), run_name=f"example_{name}")


def test_embed_roles_reviews_the_users_own_model(tmp_path, capsys):
    final = _example("embed_roles")["main"]([str(EXAMPLE_TASK / "task.yaml"), "--out", str(tmp_path)])
    review = final["review"]
    assert review["accepted"] is True and 0.9 < review["score"] <= 1.0
    assert review["checks"]["cv_recomputed"].startswith("pass") and review["checks"]["rules"].startswith("pass")
    assert (tmp_path / "data_report.md").is_file()
    assert "reviewer: accepted" in capsys.readouterr().out


def test_the_solve_team_runs_as_one_node_of_a_bigger_graph(tmp_path):
    final = _example("team_as_subgraph")["main"]([str(EXAMPLE_TASK / "task.yaml"), "--budget", "40",
                                                  "--max-experiments", "3", "--out", str(tmp_path)])
    assert final["checked"].startswith("breast-cancer") and final["final"]["kind"] in ("single", "ensemble", "stack")
    assert "passed review" in final["summary"] and (tmp_path / "submission.csv").is_file()


def test_human_in_the_loop_pauses_before_every_launch(tmp_path, capsys):
    from crew import Blackboard

    answers = _example("human_in_the_loop")["main"]([str(EXAMPLE_TASK / "task.yaml"), "--experiments", "3",
                                                     "--auto", "alternate", "--out", str(tmp_path)])
    assert [a for _, a in answers] == [True, False, True]
    status = {e.id: e.status for e in Blackboard(tmp_path / "blackboard.sqlite").experiments()}
    assert [status[exp_id] for exp_id, _ in answers] == ["done", "rejected", "done"]
    assert capsys.readouterr().out.count("the critic says") == 3


def test_the_teaching_demo_prints_the_conversation_and_explains_it(tmp_path, capsys):
    printed = _example("teaching_demo")["main"]([str(EXAMPLE_TASK / "task.yaml"), "--explain", "--budget", "40",
                                                "--max-experiments", "3", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert len(printed) >= 8 and out.count("] ") >= len(printed)
    for role in ("analyst", "planner", "modeler", "critic", "reviewer"):
        assert f"== {role} joins:" in out
    assert "^ The verdict: only accepted experiments" in out


# examples/predict_later.py needs a finished run: tests/test_predict.py runs it on the run its module solves
# (test_the_predict_later_example_runs_on_a_finished_run), rather than solving the example task again here.
# examples/sklearn_estimator.py is tests/test_estimators.py's test_a_classifier_in_a_pipeline_keeps_the_labels_of_y.


def test_every_example_script_is_documented_in_the_readme_and_run_here():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    source = Path(__file__).read_text(encoding="utf-8")
    for script in sorted((REPO / "examples").glob("*.py")):
        assert f"`{script.name}" in readme or script.name in readme, script.name
        assert f'"{script.stem}"' in source or script.name in source, f"no test runs examples/{script.name}"
