"""The experiment pool: admission by workers, memory and GPUs, disjoint cores, release on exit, streamed results."""

from __future__ import annotations

import random
import sys
import threading
import time

import pytest

from crew.sandbox import GPUDevice, GPUSlots, Launch, Limits, LocalExecutor, Pool, Result, SimulatedGPUs

GiB = 1024**3


class Gate:
    """A fake executor: each run records itself, then blocks until the test lets that launch finish.

    Tests decide the order things end in, so nothing depends on timing.
    """

    def __init__(self, *, fail: set[str] = frozenset()) -> None:
        self.cond = threading.Condition()
        self.running: dict[str, Launch] = {}
        self.started: list[str] = []
        self.launches: dict[str, Launch] = {}
        self.allowed: set[str] = set()
        self.fail = fail

    def run(self, launch: Launch) -> Result:
        with self.cond:
            self.running[launch.id] = launch
            self.started.append(launch.id)
            self.launches[launch.id] = launch
            self.cond.notify_all()
            assert self.cond.wait_for(lambda: launch.id in self.allowed, timeout=20)
            del self.running[launch.id]
        if launch.id in self.fail:
            raise ConnectionError("the cluster went away")
        return Result(id=launch.id, reason="ok", wall_time=0.0, cpu_time=0.0, peak_memory=None, gpus=launch.gpus,
                      workdir="")

    def finish(self, *ids: str) -> None:
        with self.cond:
            self.allowed.update(ids)
            self.cond.notify_all()

    def wait_running(self, *ids: str) -> dict[str, Launch]:
        with self.cond:
            assert self.cond.wait_for(lambda: set(ids) <= set(self.running), timeout=10), (ids, self.running)
            return dict(self.running)

    def settled(self) -> dict[str, Launch]:
        """What runs once the pool had a moment to (wrongly) start more."""
        time.sleep(0.2)
        with self.cond:
            return dict(self.running)


def _launch(name: str, memory_gib: float = 1, threads: int = 1) -> Launch:
    return Launch(id=name, code="pass", limits=Limits(memory=int(memory_gib * GiB), threads=threads))


def _sim(*free_gib: float, total_gib: float = 16) -> SimulatedGPUs:
    return SimulatedGPUs([GPUDevice(index=i, total_memory=int(total_gib * GiB), free_memory=int(free * GiB))
                          for i, free in enumerate(free_gib)])


def test_size_is_the_tightest_of_cores_memory_and_gpus():
    assert Pool.size(cores=16, memory_available=64 * GiB, per_experiment_memory=4 * GiB) == 16
    assert Pool.size(cores=16, memory_available=64 * GiB, per_experiment_memory=4 * GiB, threads_per_experiment=4) == 4
    assert Pool.size(cores=16, memory_available=10 * GiB, per_experiment_memory=4 * GiB) == 2
    assert Pool.size(cores=16, memory_available=64 * GiB, per_experiment_memory=1 * GiB, gpu_count=4,
                     gpus_per_experiment=2) == 2
    assert Pool.size(cores=2, memory_available=1 * GiB, per_experiment_memory=8 * GiB, threads_per_experiment=4,
                     gpu_count=0, gpus_per_experiment=1) == 1


def test_constructor_only_stores_its_parameters():
    pool = Pool(Gate(), workers=None, memory=None)
    assert (pool.workers, pool.memory, pool.gpus, pool.cpus) == (None, None, None, None)
    pool.shutdown()


def test_memory_is_never_overcommitted_and_the_head_is_not_starved():
    gate = Gate()
    with Pool(gate, workers=4, memory=10 * GiB, cpus=[]) as pool:
        futures = [pool.submit(_launch(name, gib)) for name, gib in [("a", 6), ("b", 6), ("c", 2), ("d", 2)]]
        gate.wait_running("a")
        assert set(gate.settled()) == {"a"}  # b (6) does not fit beside a (6); c and d queue behind b
        gate.finish("a")
        gate.wait_running("b", "c", "d")
        gate.finish("b", "c", "d")
        assert [f.result().reason for f in futures] == ["ok"] * 4
    assert gate.started == ["a", "b", "c", "d"]


def test_random_load_stays_within_the_pool_memory():
    rng = random.Random(3)
    peak, lock, live = [0], threading.Lock(), {}

    class Sleepy:
        def run(self, launch: Launch) -> Result:
            with lock:
                live[launch.id] = launch.limits.memory
                peak[0] = max(peak[0], sum(live.values()))
            time.sleep(rng.uniform(0, 0.01))
            with lock:
                del live[launch.id]
            return Result(id=launch.id, reason="ok", wall_time=0, cpu_time=0, peak_memory=None, workdir="")

    with Pool(Sleepy(), workers=6, memory=8 * GiB, cpus=[]) as pool:
        for i in range(120):
            pool.submit(_launch(f"x{i}", rng.choice([0.5, 1, 2, 3, 5, 8])))
        names = sorted(result.id for result in pool.as_completed())
    assert names == sorted(f"x{i}" for i in range(120)) and peak[0] <= 8 * GiB


def test_gpu_requests_wait_until_their_declared_memory_is_free():
    gate, slots = Gate(), GPUSlots(nvml=_sim(10, 3))
    with Pool(gate, workers=4, memory=64 * GiB, gpus=slots, cpus=[]) as pool:
        x = pool.submit(_launch("x"), gpus=1, gpu_memory=6 * GiB)
        y = pool.submit(_launch("y"), gpus=1, gpu_memory=6 * GiB)
        assert gate.wait_running("x")["x"].gpus == [0]
        assert set(gate.settled()) == {"x"}  # device 0 has 4 GiB left to promise, device 1 only 3
        gate.finish("x")
        assert gate.wait_running("y")["y"].gpus == [0]
        gate.finish("y")
        assert x.result().gpus == y.result().gpus == [0]
    assert slots.available() == {0: 10 * GiB, 1: 3 * GiB}


def test_requests_that_can_never_fit_fail_fast_without_blocking_the_queue():
    gate = Gate()
    gate.finish("ok")
    with Pool(gate, workers=2, memory=8 * GiB, gpus=GPUSlots(nvml=_sim(16, 16)), cpus=[]) as pool:
        too_big = pool.submit(_launch("big", 9))
        too_many = pool.submit(_launch("many"), gpus=3, gpu_memory=1)
        too_large = pool.submit(_launch("large"), gpus=1, gpu_memory=17 * GiB)
        fine = pool.submit(_launch("ok"), gpus=2, gpu_memory=16 * GiB)
        for future in (too_big, too_many, too_large):
            assert future.done() and future.result().reason == "error"
            assert future.result().detail.startswith("not run:")
        assert "more than the pool's 8.0 GiB" in too_big.result().detail
        assert fine.result().reason == "ok" and fine.result().gpus == [0, 1]
    with Pool(gate, memory=8 * GiB, gpus=GPUSlots(nvml=_sim())) as pool:  # no GPU on the machine
        assert "GPUs seen: none" in pool.submit(_launch("gpu"), gpus=1).result().detail


def test_gpu_memory_held_outside_crew_is_waited_for_then_failed():
    gate, sim = Gate(), _sim(2)
    gate.finish("later")
    with Pool(gate, memory=8 * GiB, gpus=GPUSlots(nvml=sim), cpus=[], gpu_wait=0.3) as pool:
        result = pool.submit(_launch("held"), gpus=1, gpu_memory=4 * GiB).result(timeout=10)
        assert result.reason == "error" and "0: 2.0 GiB" in result.detail
    with Pool(gate, memory=8 * GiB, gpus=GPUSlots(nvml=sim), cpus=[], gpu_wait=20) as pool:
        future = pool.submit(_launch("later"), gpus=1, gpu_memory=4 * GiB)
        time.sleep(0.3)
        assert not future.done()
        sim.set_free(0, 16 * GiB)  # the other process let go
        assert future.result(timeout=10).reason == "ok"


def test_an_executor_that_raises_gives_everything_back():
    gate, slots = Gate(fail={"boom"}), GPUSlots(nvml=_sim(8))
    with Pool(gate, workers=1, memory=4 * GiB, gpus=slots, cpus=[0, 1]) as pool:
        boom = pool.submit(_launch("boom", 4, threads=2), gpus=1, gpu_memory=8 * GiB)
        after = pool.submit(_launch("after", 4, threads=2), gpus=1, gpu_memory=8 * GiB)
        gate.finish("boom", "after")
        failed = boom.result()
        assert failed.reason == "error" and "ConnectionError: the cluster went away" in failed.detail
        assert "Traceback" in failed.stderr_tail and failed.gpus == [0]
        assert after.result().reason == "ok" and after.result().gpus == [0]
    assert gate.started == ["boom", "after"] and gate.launches["after"].cpus == [0, 1]
    assert slots.available() == {0: 8 * GiB}


def test_concurrent_launches_get_disjoint_cores_or_none():
    gate = Gate()
    with Pool(gate, workers=3, memory=8 * GiB, cpus=[0, 1, 2, 3]) as pool:
        for name, threads in [("a", 2), ("b", 2), ("c", 1)]:
            pool.submit(_launch(name, threads=threads))
        running = gate.wait_running("a", "b", "c")
        assert [running[n].cpus for n in "abc"] == [[0, 1], [2, 3], []]  # no core left for c: it runs unpinned
        gate.finish("a")
        pool.submit(_launch("d", threads=2))
        assert gate.wait_running("d")["d"].cpus == [0, 1]  # a's cores came back
        gate.finish("b")
        pool.submit(_launch("e", threads=8))
        assert gate.wait_running("e")["e"].cpus == []  # wants all 4 cores, only b's 2 are free: unpinned
        gate.finish("c", "d", "e")


def test_results_stream_in_finish_order_and_cancelled_ones_are_skipped():
    gate = Gate()
    with Pool(gate, workers=2, memory=8 * GiB, cpus=[]) as pool:
        for name in "abc":
            pool.submit(_launch(name))
        cancelled = pool.submit(_launch("never"))
        assert cancelled.cancel()
        gate.wait_running("a", "b")
        gate.finish("b")
        stream = pool.as_completed()
        assert next(stream).id == "b"
        gate.finish("c")
        assert next(stream).id == "c"
        gate.finish("a")
        assert next(stream).id == "a"
        pool.submit(_launch("late"))  # submitted while iterating: still streamed
        gate.finish("late")
        assert [r.id for r in stream] == ["late"]
    assert "never" not in gate.started


def test_submit_refuses_preset_gpus_and_a_closed_pool():
    pool = Pool(Gate(), memory=GiB)
    with pytest.raises(ValueError, match="submit\\(gpus="):
        pool.submit(Launch(code="pass", gpus=[0]))
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(_launch("x"))


def test_shutdown_can_cancel_what_has_not_started():
    gate = Gate()
    pool = Pool(gate, workers=1, memory=8 * GiB, cpus=[])
    first, second = pool.submit(_launch("first")), pool.submit(_launch("second"))
    gate.wait_running("first")
    pool.shutdown(wait=False, cancel_futures=True)
    gate.finish("first")
    assert first.result(timeout=10).reason == "ok" and second.cancelled()


@pytest.mark.skipif(sys.platform != "linux", reason="the sandbox is Linux-only")
def test_real_sandbox_streams_a_fast_experiment_before_a_slow_one(tmp_path):
    limits = Limits(memory=512 * 1024**2, wall_time=30)
    with Pool(LocalExecutor(root=tmp_path), workers=2, memory=2 * GiB) as pool:
        pool.submit(Launch(id="slow", code="import time\ntime.sleep(2)\nprint('slow')", limits=limits))
        pool.submit(Launch(id="fast", code="print('fast')", limits=limits))
        results = list(pool.as_completed())
    assert [r.id for r in results] == ["fast", "slow"]
    assert [r.stdout_tail for r in results] == ["fast\n", "slow\n"] and all(r.reason == "ok" for r in results)


@pytest.mark.skipif(sys.platform != "linux", reason="the sandbox is Linux-only")
def test_real_sandbox_sees_the_gpus_the_pool_assigned(tmp_path):
    slots = GPUSlots(nvml=_sim(6, 6, 6))
    code = "import os\nprint(os.environ['CUDA_VISIBLE_DEVICES'])"
    with Pool(LocalExecutor(root=tmp_path), workers=2, memory=2 * GiB, gpus=slots) as pool:
        futures = [pool.submit(Launch(id=f"g{i}", code=code, limits=Limits(memory=GiB)), gpus=2, gpu_memory=4 * GiB)
                   for i in range(3)]
        results = [f.result() for f in futures]
    for result in results:
        assert result.reason == "ok" and len(result.gpus) == 2, result
        assert result.stdout_tail.strip() == ",".join(map(str, result.gpus))
    assert slots.available() == {i: 6 * GiB for i in range(3)}
