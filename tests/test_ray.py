"""`RayExecutor` on a local Ray instance (2 CPUs): a development task end to end, a lost worker retried, the
answers never shipped, and clear errors when Ray is asked for but missing."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from crew import Blackboard, CrewError
from crew.sandbox import Launch, Limits, LocalExecutor, RayExecutor, require_ray
from crew.workflows.solve import solve
from tests.test_sandbox import _alive_with_marker

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(sys.platform != "linux", reason="the sandbox's limits are Linux mechanisms")]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


def _structure(board: Blackboard) -> list[tuple[str, tuple[str, ...], str]]:
    return [(e.stage, tuple(e.insights), e.status) for e in sorted(board.experiments(), key=lambda e: e.created_at)]


def test_a_development_task_runs_end_to_end_on_ray_like_a_local_run(cluster, shared_tasks, tmp_path):
    task = shared_tasks / "cars-mpg" / "task.yaml"
    local = solve(task, out=tmp_path / "local", wall_time=90, workers=1, max_experiments=3, seed=0)
    with RayExecutor(root=tmp_path / "ray" / "experiments") as executor:
        on_ray = solve(task, out=tmp_path / "ray", wall_time=90, workers=1, max_experiments=3, seed=0,
                       executor=executor)
    assert ray.is_initialized()  # the executor joined the test's instance and left it running
    local_board, ray_board = Blackboard(tmp_path / "local" / "blackboard.sqlite"), Blackboard(tmp_path / "ray" / "blackboard.sqlite")
    assert _structure(ray_board) == _structure(local_board)  # same proposals, in order, with the same outcomes
    done = ray_board.experiments(status="done")
    assert done and on_ray["final"]["kind"] == local["final"]["kind"]
    for exp in done:  # the work folder came home to where a local run leaves it
        folder = tmp_path / "ray" / "experiments" / exp.id
        assert {"code.py", "metrics.json", "oof.csv", "predictions.csv"} <= {p.name for p in folder.iterdir()}
        twin = next(e for e in local_board.experiments(status="done") if e.insights == exp.insights)
        assert exp.score == pytest.approx(twin.score, rel=1e-9)
    assert (tmp_path / "ray" / "submission.csv").read_text() == (tmp_path / "local" / "submission.csv").read_text()


def test_the_answers_never_reach_a_worker_and_limits_still_hold(cluster, tmp_path):
    task = tmp_path / "task"
    (task / "data").mkdir(parents=True)
    (task / "data" / "train.csv").write_text("x,y\n1,2\n")
    (task / "grading").mkdir()
    (task / "grading" / "answers.csv").write_text("secret\n")
    code = ("import os\nroot = os.environ['CREW_DATA']\nprint(sorted(os.listdir(root)), root)\n"
            "open('metrics.json', 'w').write('{}')\n")
    with RayExecutor(root=tmp_path / "experiments") as executor:
        result = executor.run(Launch(code=code, data_dir=str(task), hide=[str(task / "grading")]))
        assert result.reason == "ok", result
        listed, where = result.stdout_tail.rsplit("] ", 1)
        assert listed + "]" == "['data']" and str(task) not in where  # node-local copy, without grading/
        assert Path(result.workdir) == (tmp_path / "experiments" / result.id).resolve()
        assert (Path(result.workdir) / "metrics.json").exists()
        hog = executor.run(Launch(code="x = bytearray(600 * 1024**2)\nprint(len(x))",
                                  limits=Limits(wall_time=30, memory=300 * 1024**2)))
        assert hog.reason == "memory" or (hog.reason == "error" and "MemoryError" in hog.stderr_tail), hog
        slow = executor.run(Launch(code="import time\ntime.sleep(60)", limits=Limits(wall_time=2)))
        assert slow.reason == "timeout" and slow.wall_time < 10


def test_a_worker_killed_mid_experiment_is_marked_lost_and_retried_once(cluster, tmp_path):
    # the first attempt leaves a mark in its node-local work folder and waits; the retry finds it and finishes
    code = ("import os, time\nmark = 'first-attempt'\n"
            "if not os.path.exists(mark):\n    open(mark, 'w').close()\n    time.sleep(60)\n"
            "open('metrics.json', 'w').write('{}')\nprint('second attempt finished')\n")
    launch = Launch(code=code, limits=Limits(wall_time=90))
    killed: list[int] = []

    def kill_the_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for pid in _alive_with_marker(launch.id):
                worker = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                os.kill(worker, signal.SIGKILL)  # the Ray worker running the sandbox, not the experiment
                killed.append(worker)
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_the_worker)
    killer.start()
    with RayExecutor(root=tmp_path / "experiments") as executor:
        result = executor.run(launch)
    killer.join()
    assert killed, "the experiment never started"
    assert result.reason == "ok" and "second attempt finished" in result.stdout_tail, result
    assert len(result.lost) == 1 and "attempt 1" in result.lost[0] and "retried elsewhere" in result.detail
    time.sleep(0.5)
    assert _alive_with_marker(launch.id) == []  # the first attempt's experiment died with its worker


def test_resources_come_from_the_critics_estimate_within_the_hard_limit(tmp_path):
    executor = RayExecutor(root=tmp_path)
    asked = executor.resources(Launch(code="", limits=Limits(threads=2, memory=4 * 1024**3),
                                      estimate={"seconds": 10, "memory": 400 * 1024**2}))
    assert asked == {"num_cpus": 2, "memory": 500 * 1024**2, "num_gpus": 0}
    capped = executor.resources(Launch(code="", limits=Limits(memory=1024**3), estimate={"memory": 2 * 1024**3}))
    assert capped["memory"] == 1024**3 and capped["num_cpus"] == 1
    assert executor.resources(Launch(code="", limits=Limits(memory=1024**3)))["memory"] == 1024**3


def test_ray_asked_for_but_missing_says_which_extra(monkeypatch, cli, tmp_path):
    result = cli("solve", tmp_path / "task.yaml", "--address", "auto")
    assert result.exit_code != 0 and "--address joins a Ray cluster" in result.output
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(CrewError, match=r"pip install 'crew\[ray\]'"):
        require_ray()
    result = cli("solve", tmp_path / "task.yaml", "--executor", "ray")
    assert result.exit_code != 0 and "crew[ray]" in result.output
    assert LocalExecutor(root=tmp_path).run(Launch(code="print(1)")).reason == "ok"  # the local path needs no Ray

