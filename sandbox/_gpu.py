"""GPU slots: the devices NVML reports (real or simulated) and the GPU memory crew promised to running experiments."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field

__all__ = ["NVML", "GPUDevice", "GPUSlots", "GPUSource", "SimulatedGPUs"]


class GPUDevice(BaseModel, frozen=True):
    """One GPU as its driver sees it now; `index` is what CUDA_VISIBLE_DEVICES names (in PCI bus order)."""

    index: int = Field(ge=0)
    name: str = "GPU"
    total_memory: int = Field(ge=0)
    free_memory: int = Field(ge=0)


@runtime_checkable
class GPUSource(Protocol):
    """Where devices come from: `NVML()` on a real machine, `SimulatedGPUs` in tests and demos."""

    def devices(self) -> list[GPUDevice]: ...


class NVML:
    """The real devices through nvidia-ml-py. Each call initialises and shuts NVML down again, so it is safe across
    threads and forks; with no driver or library it returns [] and `error` says why (what `crew doctor` prints)."""

    def __init__(self) -> None:
        self.error: str | None = None

    def devices(self) -> list[GPUDevice]:
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as exc:  # no library, no driver, no device: all mean "no GPU for experiments"
            self.error = f"NVML unavailable: {type(exc).__name__}: {exc}"
            return []
        try:
            found = []
            for index in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
                name = pynvml.nvmlDeviceGetName(handle)
                found.append(GPUDevice(index=index, name=name.decode() if isinstance(name, bytes) else name,
                                       total_memory=memory.total, free_memory=memory.free))
            self.error = None
            return found
        except pynvml.NVMLError as exc:
            self.error = f"NVML failed: {type(exc).__name__}: {exc}"
            return []
        finally:
            pynvml.nvmlShutdown()


class SimulatedGPUs:
    """Devices that exist only in memory: the public seam for running GPU placement without a GPU.

    `set_free` stands in for other processes (or the experiments themselves) taking and giving back GPU memory.
    """

    def __init__(self, devices: list[GPUDevice]) -> None:
        self._devices = {d.index: d for d in devices}
        self._lock = threading.Lock()

    def devices(self) -> list[GPUDevice]:
        with self._lock:
            return sorted(self._devices.values(), key=lambda d: d.index)

    def set_free(self, index: int, free_memory: int) -> None:
        """Report `free_memory` bytes free on device `index` from now on."""
        with self._lock:
            self._devices[index] = self._devices[index].model_copy(update={"free_memory": free_memory})


class GPUSlots:
    """Hands out GPUs by declared memory: a device takes an experiment only when the memory NVML reports free there,
    minus what crew has already reserved on it, covers what the experiment declared.

    The rule is deliberately conservative: memory a running experiment already allocated is counted both in NVML's
    figure and in the reservation, so crew may under-fill a GPU but never over-commits one. Thread-safe.
    """

    def __init__(self, *, nvml: GPUSource | None = None) -> None:
        self.nvml = nvml
        self._reserved: dict[int, int] = {}
        self._lock = threading.Lock()

    @property
    def source(self) -> GPUSource:
        """The device source, created on first use (real NVML unless one was injected)."""
        if self.nvml is None:
            self.nvml = NVML()
        return self.nvml

    def devices(self) -> list[GPUDevice]:
        """The devices as the source reports them now."""
        return self.source.devices()

    def available(self) -> dict[int, int]:
        """Bytes each device can still promise: free per NVML minus crew's reservations (may be negative)."""
        with self._lock:
            return self._available(self.source.devices())

    def _available(self, devices: list[GPUDevice]) -> dict[int, int]:
        return {d.index: d.free_memory - self._reserved.get(d.index, 0) for d in devices}

    def could_fit(self, count: int, memory: int) -> bool:
        """Whether the request could ever be placed: `count` devices whose total memory covers `memory`.

        A request that fails this waits forever, so callers fail it instead of queueing it.
        """
        return count == 0 or sum(d.total_memory >= memory for d in self.source.devices()) >= count

    def acquire(self, count: int, memory: int) -> list[int] | None:
        """Reserve `memory` bytes on each of `count` distinct devices; their indices, or None when they do not fit now.

        Never blocks. The devices with the most memory to spare are chosen, which spreads experiments across GPUs.
        """
        if count < 0 or memory < 0:
            raise ValueError(f"count and memory must be 0 or more, got {count} and {memory}")
        if count == 0:
            return []
        with self._lock:
            spare = self._available(self.source.devices())
            fitting = sorted((i for i, left in spare.items() if left >= memory), key=lambda i: (-spare[i], i))
            if len(fitting) < count:
                return None
            chosen = sorted(fitting[:count])
            for index in chosen:
                self._reserved[index] = self._reserved.get(index, 0) + memory
            return chosen

    def release(self, indices: list[int], memory: int) -> None:
        """Give back what `acquire(len(indices), memory)` reserved."""
        with self._lock:
            if any(self._reserved.get(i, 0) < memory for i in indices):
                raise ValueError(f"releasing {memory} bytes on {indices}, more than reserved there: {self._reserved}")
            for index in indices:
                self._reserved[index] = self._reserved.get(index, 0) - memory
                if not self._reserved[index]:
                    del self._reserved[index]

    @contextmanager
    def hold(self, count: int, memory: int) -> Iterator[list[int] | None]:
        """`acquire` for the length of a `with` block, released however the block ends; None when it did not fit."""
        indices = self.acquire(count, memory)
        try:
            yield indices
        finally:
            if indices:
                self.release(indices, memory)
