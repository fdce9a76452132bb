"""GPU slots on simulated devices: placement by declared memory, release, thread safety, and what the sandbox sees."""

from __future__ import annotations

import random
import sys
import threading

import pytest

from crew.sandbox import NVML, GPUDevice, GPUSlots, GPUSource, Launch, LocalExecutor, SimulatedGPUs, _doctor

GiB = 1024**3


def _gpus(*free_gib: float, total_gib: float = 16) -> SimulatedGPUs:
    return SimulatedGPUs([GPUDevice(index=i, name=f"sim{i}", total_memory=int(total_gib * GiB),
                                    free_memory=int(free * GiB)) for i, free in enumerate(free_gib)])


def test_real_nvml_reports_devices_or_why_not():
    nvml = NVML()
    found = nvml.devices()
    assert isinstance(nvml, GPUSource)
    if found:
        assert nvml.error is None and all(0 <= d.free_memory <= d.total_memory for d in found)
    else:
        assert nvml.error


def test_count_zero_needs_no_gpu_at_all():
    assert GPUSlots(nvml=SimulatedGPUs([])).acquire(0, 10 * GiB) == []


def test_never_placed_on_a_gpu_without_the_memory_it_declared():
    sim = _gpus(8, 2)
    slots = GPUSlots(nvml=sim)
    assert slots.acquire(1, 4 * GiB) == [0]
    assert slots.acquire(1, 4 * GiB) == [0]  # 8 free - 4 reserved still covers 4
    assert slots.acquire(1, 4 * GiB) is None  # device 0 is promised out, device 1 has only 2 free
    assert slots.acquire(1, 2 * GiB) == [1]
    sim.set_free(1, 16 * GiB)  # another process freed memory on device 1
    assert slots.acquire(1, 4 * GiB) == [1]
    sim.set_free(0, 1 * GiB)  # ... and took almost all of device 0: its reservations now exceed what is free
    assert slots.available()[0] < 0 and slots.acquire(1, 0) == [1]


def test_random_workload_never_overcommits_a_device():
    rng = random.Random(7)
    sim = _gpus(*(rng.uniform(2, 16) for _ in range(3)))
    slots = GPUSlots(nvml=sim)
    held: list[tuple[list[int], int]] = []
    for _ in range(500):
        action = rng.random()
        if action < 0.5:
            count, memory = rng.randint(0, 3), rng.randint(0, 8) * GiB
            before = slots.available()
            got = slots.acquire(count, memory)
            if got is None:
                assert sum(left >= memory for left in before.values()) < count
            else:
                assert len(set(got)) == count and all(before[i] >= memory for i in got)
                held.append((got, memory))
        elif action < 0.8 and held:
            slots.release(*held.pop(rng.randrange(len(held))))
        else:
            sim.set_free(rng.randrange(3), rng.randint(0, 16) * GiB)
    for indices, memory in held:
        slots.release(indices, memory)
    assert slots.available() == {d.index: d.free_memory for d in sim.devices()}


def test_multi_gpu_requests_take_distinct_devices_with_the_most_to_spare():
    slots = GPUSlots(nvml=_gpus(4, 12, 8))
    assert slots.acquire(2, 3 * GiB) == [1, 2]
    assert slots.acquire(4, 1) is None  # only three devices exist
    assert slots.could_fit(3, 16 * GiB) and not slots.could_fit(4, 1) and not slots.could_fit(1, 17 * GiB)


def test_release_gives_memory_back_and_refuses_to_give_back_more():
    slots = GPUSlots(nvml=_gpus(8))
    with slots.hold(1, 6 * GiB) as held:
        assert held == [0] and slots.acquire(1, 6 * GiB) is None
    assert slots.acquire(1, 6 * GiB) == [0]
    slots.release([0], 6 * GiB)
    with pytest.raises(ValueError):
        slots.release([0], 1)
    with pytest.raises(RuntimeError), slots.hold(1, 8 * GiB):
        raise RuntimeError("the experiment crashed")
    assert slots.available() == {0: 8 * GiB}


def test_concurrent_acquires_never_exceed_free_memory():
    slots = GPUSlots(nvml=_gpus(10, 10))
    held: list[list[int]] = []
    barrier = threading.Barrier(8)

    def grab() -> None:
        barrier.wait()
        for _ in range(50):
            got = slots.acquire(1, 3 * GiB)
            if got is not None:
                held.append(got)

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(i for got in held for i in got) == [0, 0, 0, 1, 1, 1]  # 3 x 3 GiB fit in 10 GiB, per device


@pytest.mark.skipif(sys.platform != "linux", reason="the sandbox is Linux-only")
def test_the_sandbox_sees_exactly_the_assigned_gpus(tmp_path):
    slots = GPUSlots(nvml=_gpus(1, 8, 8))
    with slots.hold(2, 4 * GiB) as assigned:
        code = "import os\nprint(os.environ['CUDA_VISIBLE_DEVICES'], os.environ['CUDA_DEVICE_ORDER'])"
        result = LocalExecutor(root=tmp_path).run(Launch(code=code, gpus=assigned))
    assert assigned == [1, 2] and result.reason == "ok", result
    assert result.stdout_tail.split() == ["1,2", "PCI_BUS_ID"] and result.gpus == [1, 2]


def test_doctor_lists_gpus_through_the_nvml_layer(monkeypatch):
    monkeypatch.setattr(_doctor, "NVML", lambda: _gpus(12, total_gib=80))
    assert _doctor._gpus() == ["0: sim0, 12.0 of 80.0 GiB free"]
