"""The example task is what its generator writes, and its answers live outside the task folder."""

from __future__ import annotations

import runpy

from tests.conftest import EXAMPLE_ANSWERS, EXAMPLE_TASK, REPO


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
