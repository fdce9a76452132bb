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
from crew.sandbox import GPUDevice, GPUSlots, Launch, Limits, LocalExecutor, RayExecutor, require_ray
from crew.workflows.solve import solve
from tests.test_sandbox import _alive_with_marker

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(sys.platform != "linux", reason="the sandbox's limits are Linux mechanisms")]


@pytest.fixture(scope="module")
def cluster():
    # one GPU as Ray counts them (none is there: Ray only schedules the number and sets CUDA_VISIBLE_DEVICES)
    ray.init(num_cpus=2, num_gpus=1, object_store_memory=200 * 1024**2, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
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


GiB = 1024**3
_SLEEPER = ("import os, time\nstart = time.time()\ntime.sleep(2.5)\n"
            "print(repr(os.environ.get('CUDA_VISIBLE_DEVICES')), start, time.time())\n")


def _side_by_side(executor: RayExecutor, launches: list[Launch]) -> tuple[list[str], bool]:
    """Run `launches` at once; what each saw as CUDA_VISIBLE_DEVICES, and whether all ran at the same time."""
    results: list = [None] * len(launches)
    threads = [threading.Thread(target=lambda i=i, launch=launch: results.__setitem__(i, executor.run(launch)))
               for i, launch in enumerate(launches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.reason == "ok" for r in results), results
    seen = [r.stdout_tail.split() for r in results]
    spans = [(float(start), float(end)) for _, start, end in seen]
    return [visible for visible, _, _ in seen], max(s for s, _ in spans) < min(e for _, e in spans)


def test_gpu_experiments_share_a_cluster_device_by_declared_memory(cluster, tmp_path):
    def one_device() -> list[GPUDevice]:  # what NVML would say on the node; nested, so it travels by value
        return [GPUDevice(index=0, name="simulated", total_memory=16 * GiB, free_memory=16 * GiB)]

    executor = RayExecutor(root=tmp_path / "experiments", node_gpus=one_device)
    assert [(d.index, d.name, d.total_memory) for d in executor.devices()] == [(0, "simulated", 16 * GiB)]
    slots = GPUSlots(nvml=executor)  # crew places on the cluster's devices as on one machine's
    chosen = [slots.acquire(1, 6 * GiB), slots.acquire(1, 6 * GiB)]
    assert chosen == [[0], [0]] and slots.acquire(1, 6 * GiB) is None  # 12 of 16 GiB promised: no third

    small = [Launch(code=_SLEEPER, gpus=[0], estimate={"gpu_memory": 6 * GiB}) for _ in range(2)]
    assert executor.resources(small[0])["num_gpus"] == 0.38  # 6 / 16 of the device, rounded up
    visible, together = _side_by_side(executor, small)
    assert visible == ["'0'", "'0'"] and together  # both on the one device at once

    large = [Launch(code=_SLEEPER, gpus=[0], estimate={"gpu_memory": 12 * GiB}) for _ in range(2)]
    assert executor.resources(large[0])["num_gpus"] == 0.75
    visible, together = _side_by_side(executor, large)
    assert visible == ["'0'", "'0'"] and not together  # Ray's count keeps two 3/4 shares apart

    unplaced = executor.run(Launch(code=_SLEEPER, estimate={"gpus": 1}))  # no device chosen: Ray's assignment
    assert unplaced.reason == "ok" and unplaced.stdout_tail.split()[0] == "'0'", unplaced
    cpu_only = executor.run(Launch(code=_SLEEPER))
    assert cpu_only.stdout_tail.split()[0] == "''", cpu_only  # no GPU asked for: none visible


def test_ray_asked_for_but_missing_says_which_extra(monkeypatch, cli, tmp_path):
    result = cli("solve", tmp_path / "task.yaml", "--address", "auto")
    assert result.exit_code != 0 and "--address joins a Ray cluster" in result.output
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(CrewError, match=r"pip install 'crew\[ray\]'"):
        require_ray()
    result = cli("solve", tmp_path / "task.yaml", "--executor", "ray")
    assert result.exit_code != 0 and "crew[ray]" in result.output
    assert LocalExecutor(root=tmp_path).run(Launch(code="print(1)")).reason == "ok"  # the local path needs no Ray

