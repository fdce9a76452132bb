"""`Pool`: runs many experiments at once on one machine, starting each when its memory, GPUs and a worker are free."""

from __future__ import annotations

import os
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, Self, runtime_checkable

from crew.sandbox._gpu import GPUSlots
from crew.sandbox._types import Launch, Result

__all__ = ["Executor", "Pool", "available_memory"]

_GPU_POLL = 0.25  # seconds between NVML looks while the head of the queue waits for GPU memory
GiB = 1024**3


@runtime_checkable
class Executor(Protocol):
    """Anything that runs one launch to its end: `LocalExecutor`, a Ray executor, a fake in tests."""

    def run(self, launch: Launch) -> Result: ...


def available_memory() -> int:
    """Bytes this machine can give experiments now (MemAvailable; total RAM where /proc/meminfo is missing)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass
class _Job:
    launch: Launch
    gpus: int
    gpu_memory: int
    future: Future[Result]
    gpu_ids: list[int] | None = None
    cpus: list[int] | None = None  # cores the pool pinned it to (and must give back)


class Pool:
    """Runs up to `workers` experiments at once through `executor`; results stream back as they finish.

    A launch starts, in submission order, only when a worker is free, its `limits.memory` fits in the pool's
    `memory` not yet reserved by running launches, and `gpus` can place its GPU request. A launch waiting for
    any of these holds back the ones behind it, so a large experiment is never starved by small ones. Each
    running launch gets `limits.threads` cores of its own (`Launch.cpus`, unless it brings its own) when that
    many are free, else it runs unpinned. GPUs are asked for with `submit(gpus=, gpu_memory=)`, never preset.
    Everything is given back when the launch ends, also when the executor raises.

    Every future resolves to a `Result`, never to an exception: a launch that could never start (more memory
    than the pool has, more GPUs or GPU memory than the machine has, GPU memory held outside crew for longer
    than `gpu_wait` seconds while none of crew's experiments run) and one whose executor raised end with
    `reason="error"` and a `detail` that says why, so a search loop records it like any failed experiment.

    Defaults, settled on first submit: `cpus` = the cores this process may use (`[]` turns pinning off),
    `workers` = the number of those cores, `memory` = the memory available now, `gpus` = `GPUSlots()` on real
    NVML (touched only by GPU requests).
    """

    def __init__(self, executor: Executor, *, workers: int | None = None, memory: int | None = None,
                 gpus: GPUSlots | None = None, cpus: list[int] | None = None, gpu_wait: float = 30.0) -> None:
        self.executor = executor
        self.workers = workers
        self.memory = memory
        self.gpus = gpus
        self.cpus = cpus
        self.gpu_wait = gpu_wait
        self._cond = threading.Condition()
        self._pending: deque[_Job] = deque()
        self._finished: queue.SimpleQueue[Future[Result]] = queue.SimpleQueue()
        self._outstanding = 0  # submitted futures `as_completed` has not yielded yet
        self._running = 0
        self._reserved = 0  # bytes of `memory` promised to running launches
        self._workers = self._memory = 0  # the settled `workers` and `memory`
        self._cpus: list[int] = []
        self._free_cpus: set[int] = set()
        self._gpu_slots: GPUSlots | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._dispatcher: threading.Thread | None = None
        self._closed = False

    @staticmethod
    def size(*, cores: int, memory_available: int, per_experiment_memory: int, threads_per_experiment: int = 1,
             gpu_count: int = 0, gpus_per_experiment: int = 0) -> int:
        """How many experiments of one shape fit side by side: the tightest of cores, memory and GPUs, at least 1."""
        fits = [cores // max(1, threads_per_experiment), memory_available // max(1, per_experiment_memory)]
        if gpus_per_experiment:
            fits.append(gpu_count // gpus_per_experiment)
        return max(1, min(fits))

    # -- submitting -------------------------------------------------------------------------

    def submit(self, launch: Launch, *, gpus: int = 0, gpu_memory: int = 0) -> Future[Result]:
        """Queue `launch`, asking for `gpus` GPUs with `gpu_memory` bytes free on each; the future gives its Result."""
        if gpus < 0 or gpu_memory < 0:
            raise ValueError(f"gpus and gpu_memory must be 0 or more, got {gpus} and {gpu_memory}")
        if launch.gpus:
            raise ValueError("leave Launch.gpus empty and ask with submit(gpus=..., gpu_memory=...), "
                             "so that the pool can reserve the memory on the GPUs it picks")
        future: Future[Result] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("cannot submit to a pool that was shut down")
            self._start()
            why = self._never_fits(launch, gpus, gpu_memory)
            self._outstanding += 1
            future.add_done_callback(self._finished.put)
            if why:
                _resolve(future, _failed(launch, f"not run: {why}"))
            else:
                self._pending.append(_Job(launch, gpus, gpu_memory, future))
                self._cond.notify_all()
        return future

    def as_completed(self) -> Iterator[Result]:
        """Yield each submitted experiment's `Result` once, in the order they finish, until none is outstanding.

        Experiments submitted while iterating are included; cancelled ones are skipped.
        """
        while True:
            with self._cond:
                if not self._outstanding:
                    return
                self._outstanding -= 1
            future = self._finished.get()
            if not future.cancelled():
                yield future.result()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Accept no more launches; queued ones still run unless `cancel_futures`; `wait` blocks until all ended."""
        with self._cond:
            self._closed = True
            if cancel_futures:
                for job in self._pending:
                    job.future.cancel()
                self._pending.clear()
            self._cond.notify_all()
            dispatcher, threads = self._dispatcher, self._threads
        if wait and dispatcher is not None and threads is not None:
            dispatcher.join()
            threads.shutdown(wait=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(wait=True)

    # -- admission --------------------------------------------------------------------------

    def _start(self) -> None:
        """Settle the defaults and start the dispatcher, once (caller holds the lock)."""
        if self._dispatcher is not None:
            return
        self._cpus = sorted(self.cpus if self.cpus is not None else os.sched_getaffinity(0))
        self._free_cpus = set(self._cpus)
        self._workers = self.workers or max(1, len(self._cpus))
        self._memory = self.memory or available_memory()
        self._threads = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="crew-pool")
        self._dispatcher = threading.Thread(target=self._dispatch, name="crew-pool-dispatcher", daemon=True)
        self._dispatcher.start()

    def _slots(self) -> GPUSlots:
        if self._gpu_slots is None:
            self._gpu_slots = self.gpus or GPUSlots()
        return self._gpu_slots

    def _never_fits(self, launch: Launch, gpus: int, gpu_memory: int) -> str:
        if launch.limits.memory > self._memory:
            return (f"its memory limit of {launch.limits.memory / GiB:.1f} GiB is more than the pool's "
                    f"{self._memory / GiB:.1f} GiB")
        if gpus and not self._slots().could_fit(gpus, gpu_memory):
            source = self._slots().source
            seen = ", ".join(f"{d.index}: {d.name} {d.total_memory / GiB:.1f} GiB" for d in source.devices()) or "none"
            why = getattr(source, "error", None)
            return (f"it asks for {gpus} GPU(s) with {gpu_memory / GiB:.1f} GiB each; GPUs seen: {seen}"
                    + (f" ({why})" if why else ""))
        return ""

    def _dispatch(self) -> None:
        """Start queued launches in order as resources free up; runs on its own thread until shut down and drained."""
        gpu_blocked_since: float | None = None
        with self._cond:
            while self._pending or not self._closed:
                if not self._pending:
                    self._cond.wait()
                    continue
                job = self._pending[0]
                try:
                    verdict = self._admit(job)
                except Exception as exc:  # a broken GPU source must not stall the queue behind it
                    self._pending.popleft()
                    _resolve(job.future, _failed(job.launch, f"not run: placing it raised {type(exc).__name__}: {exc}",
                                                 traceback.format_exc()))
                    continue
                if verdict in ("started", "cancelled"):
                    self._pending.popleft()
                    gpu_blocked_since = None
                    continue
                if verdict == "gpu" and not self._running:  # only memory held outside crew can free it now
                    gpu_blocked_since = gpu_blocked_since or time.monotonic()
                    if time.monotonic() - gpu_blocked_since >= self.gpu_wait:
                        self._pending.popleft()
                        gpu_blocked_since = None
                        _resolve(job.future, _failed(job.launch, f"not run: {self._gpu_shortage(job)}"))
                        continue
                else:
                    gpu_blocked_since = None
                self._cond.wait(_GPU_POLL if verdict == "gpu" else None)
        assert self._threads is not None
        self._threads.shutdown(wait=False)

    def _admit(self, job: _Job) -> str:
        """Start `job` if everything it needs is free: 'started', 'cancelled', 'wait' (worker/memory) or 'gpu'."""
        assert self._threads is not None
        if job.future.cancelled():
            return "cancelled"
        if self._running >= self._workers or self._reserved + job.launch.limits.memory > self._memory:
            return "wait"
        job.gpu_ids = self._slots().acquire(job.gpus, job.gpu_memory) if job.gpus else []
        if job.gpu_ids is None:
            return "gpu"
        if not job.future.set_running_or_notify_cancel():
            self._give_back(job)
            return "cancelled"
        update: dict[str, list[int]] = {"gpus": job.gpu_ids}
        wanted = min(job.launch.limits.threads, len(self._cpus))
        if not job.launch.cpus and 0 < wanted <= len(self._free_cpus):
            job.cpus = sorted(self._free_cpus)[:wanted]
            self._free_cpus -= set(job.cpus)
            update["cpus"] = job.cpus
        self._running += 1
        self._reserved += job.launch.limits.memory
        self._threads.submit(self._work, job, job.launch.model_copy(update=update))
        return "started"

    def _work(self, job: _Job, launch: Launch) -> None:
        try:
            result = self.executor.run(launch)
        except Exception as exc:
            result = _failed(launch, f"the executor raised {type(exc).__name__}: {exc}", traceback.format_exc())
        finally:
            with self._cond:
                self._give_back(job)
                self._running -= 1
                self._reserved -= job.launch.limits.memory
                self._cond.notify_all()
        job.future.set_result(result)

    def _give_back(self, job: _Job) -> None:
        if job.gpu_ids:
            self._slots().release(job.gpu_ids, job.gpu_memory)
        if job.cpus:
            self._free_cpus |= set(job.cpus)
        job.gpu_ids, job.cpus = None, None

    def _gpu_shortage(self, job: _Job) -> str:
        spare = ", ".join(f"{i}: {left / GiB:.1f} GiB" for i, left in self._slots().available().items()) or "none"
        return (f"it asks for {job.gpus} GPU(s) with {job.gpu_memory / GiB:.1f} GiB free each, and for "
                f"{self.gpu_wait:g}s with none of crew's experiments running the GPUs had only this to spare: {spare}")


def _failed(launch: Launch, detail: str, trace: str = "") -> Result:
    """The `Result` of a launch that never ran or whose executor failed: recorded like any failed experiment."""
    return Result(id=launch.id, reason="error", detail=detail, wall_time=0.0, cpu_time=0.0, peak_memory=None,
                  stderr_tail=trace, gpus=launch.gpus, workdir="")


def _resolve(future: Future[Result], result: Result) -> None:
    if future.running() or future.set_running_or_notify_cancel():  # a cancelled future keeps its cancellation
        future.set_result(result)
