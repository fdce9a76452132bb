"""The `optimize` workflow: a kernel task solved end to end, and wrong, crashing or cheating candidates never chosen."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crew import Blackboard, ChatBrain, Task
from crew.roles.kernel_optimizer import KernelOptimizer, tiny_kernel_task
from crew.testing import ScriptedChatModel, check_role
from crew.workflows.optimize import describe_log, hidden_paths, score_log
from crew.workflows.solve import solve

pytestmark = pytest.mark.e2e  # whole solves, suites or clusters: not in the fast tier

GOOD = "import numpy as np\n\n\ndef running_sum(x):\n    return np.cumsum(x, dtype=np.int64)\n"
PLANTED = {  # each fast, each wrong or against the rules
    "all_zeros": "import numpy as np\n\n\ndef running_sum(x):\n    return np.zeros(len(x), dtype=np.int64)\n",
    "off_by_one": "import numpy as np\n\n\ndef running_sum(x):\n    return np.cumsum(x, dtype=np.int64) - x\n",
    "crash": "def running_sum(x):\n    raise MemoryError('planted')\n",
    "memo": ("import numpy as np\n\n_SEEN = {}\n\n\ndef running_sum(x):\n    key = x.tobytes()\n    if key not in _SEEN:\n"
             "        _SEEN[key] = np.cumsum(x, dtype=np.int64)\n    return _SEEN[key]\n"),
}


def candidate(name: str, code: str | None = None, *, stop: bool = False) -> str:
    return json.dumps({"rationale": f"scripted {name}", "transform": name, "code": code, "stop": stop})


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory) -> dict:
    """A run whose optimizer (a scripted chat model) proposes the planted candidates, then a good one, then stops."""
    root = tmp_path_factory.mktemp("planted")
    task = tiny_kernel_task(root / "task")
    answers = [candidate(name, code) for name, code in PLANTED.items()]
    answers += [candidate("cumsum", GOOD), candidate("", stop=True)]
    chat = ScriptedChatModel(answers=answers)
    summary = solve(task, out=root / "run", wall_time=120,
                    brain={"optimizer": ChatBrain(chat, prices={"scripted": (0.0, 0.0)})})
    return {"summary": summary, "board": Blackboard(root / "run" / "blackboard.sqlite"), "chat": chat, "root": root}


def test_the_optimizer_passes_check_role():
    check_role(KernelOptimizer())


def test_fast_but_wrong_candidates_are_never_chosen(planted_run):
    summary, board = planted_run["summary"], planted_run["board"]
    by_transform = {e.insights[-1]: e for e in board.experiments()}
    assert Path(summary["submission"]).read_text(encoding="utf-8") == GOOD
    assert summary["final"]["winner"] == by_transform["cumsum"].id and summary["final"]["speedup"] > 1
    for name in ("all_zeros", "off_by_one", "crash"):
        exp = by_transform[name]
        assert exp.status == "failed" and exp.score is None, name
        logged = [s for s in board.scores() if s.experiment_id == exp.id]
        assert logged and all(not s.valid and s.score is None for s in logged), name
    assert "wrong output" in (by_transform["all_zeros"].error or "")
    assert "MemoryError" in (by_transform["crash"].error or "")


def test_a_memoising_candidate_is_refused_before_it_runs(planted_run):
    board = planted_run["board"]
    memo = next(e for e in board.experiments() if e.insights[-1] == "memo")
    assert memo.status == "rejected" and "memo" in (memo.error or "")
    assert not [s for s in board.scores() if s.experiment_id == memo.id]


def test_the_score_log_records_every_scorer_call_in_order(planted_run):
    rows = score_log(planted_run["board"])
    assert rows[0]["move"] == "start" and rows[0]["valid"]
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)
    assert {r["move"] for r in rows} >= {"start", "all_zeros", "off_by_one", "crash", "cumsum", "confirm"}
    assert planted_run["summary"]["score_log"] == rows
    table = describe_log(rows)
    assert table.splitlines()[0].split()[:3] == ["at", "s", "candidate"] and len(table.splitlines()) == len(rows) + 1


def test_the_optimizers_prompt_carries_the_log_and_the_best_code(planted_run):
    prompts = [str(call[-1].content) for call in planted_run["chat"].calls]
    assert "def running_sum" in prompts[0] and "numba_jit" in prompts[0]
    assert "off_by_one" in prompts[2] or "all_zeros" in prompts[2]  # earlier failures come back in the log


def test_offline_the_expert_makes_the_start_faster(tmp_path):
    task = tiny_kernel_task(tmp_path / "task")
    summary = solve(task, out=tmp_path / "run", wall_time=120)
    final = summary["final"]
    board = Blackboard(tmp_path / "run" / "blackboard.sqlite")
    winner = board.experiment(final["winner"])
    assert winner.insights[0] == "start" and len(winner.insights) > 1 and final["speedup"] > 5
    assert (tmp_path / "run" / "solution.py").read_text(encoding="utf-8") == winner.code
    assert summary["elapsed"] <= 120 * 1.05
    assert all(e.estimate.get("verdict") == "approve" for e in board.experiments() if e.status in ("done", "failed"))


def test_candidates_cannot_see_the_hand_written_kernels(tmp_path):
    task = tiny_kernel_task(tmp_path / "task")
    hidden = hidden_paths(Task.load(task))
    assert any(p.endswith("/bench") for p in hidden)


def test_crew_solve_prints_the_score_log_for_a_kernel_task(tmp_path):
    task = tiny_kernel_task(tmp_path / "task")
    done = subprocess.run([sys.executable, "-m", "crew", "solve", str(task), "--out", str(tmp_path / "run"),
                           "--budget", "90s", "--quiet"], capture_output=True, text=True, check=True, timeout=300)
    assert "   at s  candidate" in done.stdout and "numba_jit" in done.stdout
    assert f"solution: {tmp_path / 'run' / 'solution.py'}" in done.stdout
    assert "x the start" in done.stdout
