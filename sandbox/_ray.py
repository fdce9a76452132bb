"""`RayExecutor`: each experiment a Ray task sized by the critic's estimate, sandboxed on the worker as locally.

Why Ray: when one machine is not enough, Ray already schedules CPUs,
memory and GPUs across a cluster, notices dead workers and moves data; crew
only has to say what each experiment needs. The worker runs the very same
`LocalExecutor` (time, memory, process, network and output limits), so an
experiment is contained the same way on a cluster as on a laptop.

What travels:
- the task's data go once per run into Ray's object store as a tar of the
  data folder *without* the launch's hidden paths (the answers), and are
  unpacked once per node under a content hash; a worker never sees a path
  of the driver's machine;
- the stage cache is per node (a cache: a miss costs time, never a result);
- the experiment's work folder (code, metrics, out-of-fold and test
  predictions, logs) comes back as a tar with the `Result` and is unpacked
  where a local run would have left it, so the driver, which alone writes
  the blackboard, reads it as if it ran here.

GPUs: the executor is itself a `GPUSource`. `devices()` asks each node that
Ray says has GPUs for its devices (NVML on that node), numbered across the
cluster, so crew's `GPUSlots` place experiments on the cluster's GPUs by
declared memory exactly as on one machine. A launch on such a GPU asks Ray
for that node and the share of the device its declared memory is
(`num_gpus` = GPU memory / device memory, so several experiments share a
large GPU while Ray's own count stays true), and the worker's sandbox sets
`CUDA_VISIBLE_DEVICES` to the device crew chose. A launch that asks for GPUs
without a device chosen gets what Ray assigns.

A worker or node that dies mid-experiment makes the task fail with a Ray
system error; the experiment is then marked lost (`Result.lost`) and run
once more with Ray's SPREAD placement, so it lands elsewhere when the
cluster has elsewhere. A second loss ends it as `killed`.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import math
import os
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crew.errors import CrewError
from crew.sandbox._gpu import NVML, GPUDevice
from crew.sandbox._local import LocalExecutor, _restore, _sanitize
from crew.sandbox._types import Launch, Result

__all__ = ["RayExecutor", "check_executor", "require_ray"]

_NODE_ROOT = Path(tempfile.gettempdir()) / "crew-ray"
_SKIP = {"tmp"}  # the experiment's scratch folder stays on the worker


def require_ray() -> Any:
    """The ray module, or a CrewError naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise CrewError("--executor ray needs Ray; fix: pip install 'crew[ray]' (or pick --executor local)") from exc
    return ray


def check_executor(executor: str, address: str | None) -> None:
    """The `--executor`/`--address` pair as `crew solve` and `crew bench` take it; a missing Ray is said before
    anything runs, not after."""
    if executor not in ("local", "ray"):
        raise CrewError(f"--executor: unknown executor {executor!r}; fix: use local or ray")
    if address is not None and executor != "ray":
        raise CrewError("--address joins a Ray cluster; fix: add --executor ray, or drop --address")
    if executor == "ray":
        require_ray()


def _pack(folder: Path, *, exclude: tuple[Path, ...] = (), skip_top: set[str] | None = None) -> bytes:
    buffer = io.BytesIO()
    excluded = tuple(p.resolve() for p in exclude)
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=3) as tar:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if skip_top and rel.parts[0] in skip_top:
                continue
            real = path.resolve()
            if any(real == e or e in real.parents for e in excluded):
                continue  # the answers: never packed, so never on a worker
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=str(rel), recursive=False)
    return buffer.getvalue()


def _unpack(blob: bytes, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        tar.extractall(target, filter="data")


def _node_data(blob: bytes, digest: str) -> Path:
    """The task data unpacked on this node, once, whoever asks first (a file lock orders concurrent tasks)."""
    target = _NODE_ROOT / "data" / digest
    done = target.parent / f"{digest}.complete"  # beside, not inside: the experiment sees the task folder as is
    if done.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            _unpack(blob, target)
            done.write_text("", encoding="utf-8")
    return target


def _assigned_gpus() -> list[int]:
    """The GPUs Ray gave this task (CUDA_VISIBLE_DEVICES ids, as integers where they are)."""
    import ray

    return [int(g) for g in ray.get_gpu_ids() if str(g).isdigit()]


def _nvml_devices() -> list[GPUDevice]:
    return NVML().devices()


def _node_devices(probe: Callable[[], list[GPUDevice]]) -> list[dict[str, Any]]:
    """Runs on one node: its GPUs as `probe` sees them (NVML there by default)."""
    return [d.model_dump() for d in probe()]


def _on_worker(launch_json: str, data: bytes | None, digest: str | None, run_key: str,
               ray_gpus: bool = False) -> tuple[str, bytes]:
    """Runs inside the Ray task: the same LocalExecutor as a local run, on node-local paths; returns the Result
    and the packed work folder. `ray_gpus`: the experiment gets the GPUs Ray assigned this task (no device was
    chosen by crew); otherwise it keeps the launch's own `gpus` (this node's indices, or none)."""
    launch = Launch.model_validate_json(launch_json)
    node = _NODE_ROOT / "runs" / run_key
    updates: dict[str, Any] = {"hide": [], "shared_dir": str(node / "stage_cache")}
    if ray_gpus:
        updates["gpus"] = _assigned_gpus()
    if data is not None and digest is not None:
        updates["data_dir"] = str(_node_data(data, digest))
    local = launch.model_copy(update=updates)
    result = LocalExecutor(root=node / "experiments").run(local)
    workdir = Path(result.workdir)
    return result.model_dump_json(), _pack(workdir, skip_top=_SKIP)


class RayExecutor:
    """Runs launches as Ray tasks: `num_cpus` = the launch's threads, `memory` = the critic's estimate (with
    headroom, at most the hard limit), `num_gpus` = the GPUs it asks for, as the share of a device its declared
    GPU memory is when it asks for one.

    `address`: None starts a local Ray instance (`num_cpus` CPUs, default all; `object_store_memory` bytes,
    default Ray's) that `close()` stops, unless this process already runs one, which is then used as is;
    "auto", "host:port" or "ray://host:port" joins a running cluster. `root`: where work folders land on the
    driver. `node_gpus`: what `devices()` runs on each GPU node to list its devices (default: NVML there); a
    function returning simulated `GPUDevice`s places GPU work on a cluster without GPUs, as `SimulatedGPUs`
    does on one machine.
    """

    def __init__(self, *, root: str | os.PathLike[str], address: str | None = None, num_cpus: int | None = None,
                 object_store_memory: int | None = None, retries: int = 1, memory_headroom: float = 1.25,
                 node_gpus: Callable[[], list[GPUDevice]] | None = None) -> None:
        self.root = root
        self.address = address
        self.num_cpus = num_cpus
        self.object_store_memory = object_store_memory
        self.retries = retries
        self.memory_headroom = memory_headroom
        self.node_gpus = node_gpus
        self._lock = threading.Lock()
        self._started = False
        self._remote: Any = None
        self._probe: Any = None
        self._data: dict[str, tuple[Any, str]] = {}  # data_dir -> (object ref, digest)
        self._gpu_map: dict[int, tuple[str, GPUDevice]] = {}  # cluster index -> (node id, the node's device)

    # -- the cluster ------------------------------------------------------------------------------

    def _ray(self) -> Any:
        ray = require_ray()
        with self._lock:
            if self._remote is None:
                if not ray.is_initialized():
                    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                              "configure_logging": False}
                    if self.address:
                        ray.init(address=self.address, **kwargs)
                    else:
                        ray.init(num_cpus=self.num_cpus, object_store_memory=self.object_store_memory, **kwargs)
                        self._started = True
                # max_retries=0: a lost worker is crew's to count and retry, so the blackboard can say so
                self._remote = ray.remote(max_retries=0)(_on_worker)
                self._probe = ray.remote(num_cpus=0, max_retries=0)(_node_devices)
        return ray

    # -- the cluster's GPUs -----------------------------------------------------------------------

    def devices(self) -> list[GPUDevice]:
        """The cluster's GPUs now, numbered 0.. across nodes (in node id order, then the node's own order): what
        `GPUSlots(nvml=executor)` places experiments on. A node that does not answer within 30 s is left out."""
        ray = self._ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("GPU"))
        probe = self.node_gpus or _nvml_devices
        refs = [self._probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(probe)
                for node in nodes]
        found: list[GPUDevice] = []
        placed: dict[int, tuple[str, GPUDevice]] = {}
        for node, ref in zip(nodes, refs, strict=True):
            try:
                listed = ray.get(ref, timeout=30)
            except Exception:  # a node that cannot say what it has offers nothing this time
                ray.cancel(ref, force=True)
                continue
            for raw in listed:
                local = GPUDevice.model_validate(raw)
                placed[len(found)] = (node, local)
                found.append(local.model_copy(update={"index": len(found)}))
        with self._lock:
            self._gpu_map = placed
        return found

    def _placement(self, launch: Launch) -> tuple[str, list[int], float] | None:
        """Where crew's chosen GPUs are: (node id, the node's device indices, Ray's `num_gpus`), or None when the
        launch names no GPU this executor listed."""
        with self._lock:
            chosen = [self._gpu_map.get(i) for i in launch.gpus]
        if not launch.gpus or any(c is None for c in chosen):
            return None
        nodes = {c[0] for c in chosen if c is not None}
        if len(nodes) != 1:
            raise CrewError(f"GPUs {launch.gpus} are on {len(nodes)} nodes; fix: ask for GPUs of one node")
        devices = [c[1] for c in chosen if c is not None]
        return nodes.pop(), [d.index for d in devices], self._gpu_share(launch, devices)

    def _gpu_share(self, launch: Launch, devices: list[GPUDevice]) -> float:
        """Ray's `num_gpus` for a launch on `devices`: whole devices for several, else the share of the device
        its declared GPU memory is (rounded up to a hundredth), a whole one when it declares none."""
        memory = float(launch.estimate.get("gpu_memory") or 0)
        if len(devices) != 1 or not memory or not devices[0].total_memory:
            return float(len(devices))
        return min(1.0, max(0.01, math.ceil(100 * memory / devices[0].total_memory) / 100))

    def close(self) -> None:
        """Stop the local Ray instance this executor started (a joined cluster is left running)."""
        ray = require_ray()
        with self._lock:
            if self._started and ray.is_initialized():
                ray.shutdown()
            self._started = False
            self._remote = None
            self._data.clear()

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _data_ref(self, ray: Any, launch: Launch) -> tuple[Any, str | None]:
        if not launch.data_dir:
            return None, None
        key = str(Path(launch.data_dir).resolve()) + "|" + "|".join(sorted(launch.hide))
        with self._lock:
            if key not in self._data:
                blob = _pack(Path(launch.data_dir), exclude=tuple(Path(h) for h in launch.hide))
                self._data[key] = (ray.put(blob), hashlib.sha256(blob).hexdigest()[:20])
            return self._data[key]

    # -- running ----------------------------------------------------------------------------------

    def resources(self, launch: Launch) -> dict[str, Any]:
        """What the Ray task asks the scheduler for, from the critic's estimate and the launch's limits: on GPUs
        crew chose from `devices()`, the share of the device its declared GPU memory is."""
        return self._resources(launch, self._placement(launch))

    def _resources(self, launch: Launch, placed: tuple[str, list[int], float] | None) -> dict[str, Any]:
        estimate = launch.estimate or {}
        memory = int(min(launch.limits.memory, max(64 * 1024**2, float(estimate.get("memory") or 0)
                                                   * self.memory_headroom))) if estimate.get("memory") \
            else int(launch.limits.memory)
        gpus: float = placed[2] if placed else int(estimate.get("gpus") or len(launch.gpus) or 0)
        return {"num_cpus": max(1, launch.limits.threads), "memory": memory, "num_gpus": gpus}

    def run(self, launch: Launch) -> Result:
        """Run `launch` on the cluster and bring its work folder home; never raises for what the experiment does."""
        ray = self._ray()
        from ray.exceptions import NodeDiedError, OwnerDiedError, RayTaskError, WorkerCrashedError
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        data, digest = self._data_ref(ray, launch)
        run_key = hashlib.sha256(str(Path(self.root).resolve()).encode()).hexdigest()[:16]
        started = time.monotonic()
        try:
            placed = self._placement(launch)
        except CrewError as exc:
            return self._failed(launch, "error", f"not run: {exc}", started, [])
        options = self._resources(launch, placed)
        lost: list[str] = []
        for attempt in range(self.retries + 1):
            if placed and not attempt:  # crew chose the device: its node, and that device's index there
                node, local, _ = placed
                placement: dict[str, Any] = {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}
                body, ray_gpus = launch.model_copy(update={"gpus": local}).model_dump_json(), False
            else:  # Ray places it (a retry goes elsewhere when it can) and the worker takes the GPUs Ray gave
                placement = {"scheduling_strategy": "SPREAD"} if attempt else {}
                body, ray_gpus = launch.model_copy(update={"gpus": []}).model_dump_json(), bool(options["num_gpus"])
            ref = self._remote.options(**options, **placement).remote(body, data, digest, run_key, ray_gpus)
            try:
                result_json, files = ray.get(ref, timeout=launch.limits.wall_time + 300)
            except (WorkerCrashedError, NodeDiedError, OwnerDiedError) as exc:
                lost.append(f"attempt {attempt + 1}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                continue
            except RayTaskError as exc:  # crew's own code failed on the worker: not the experiment's doing
                return self._failed(launch, "error", f"the Ray task failed: {str(exc).splitlines()[0][:300]}",
                                    started, lost)
            except ray.exceptions.GetTimeoutError:
                ray.cancel(ref, force=True)
                return self._failed(launch, "timeout", f"no answer from the cluster {launch.limits.wall_time + 300:.0f}s "
                                    "after launch", started, lost)
            result = Result.model_validate_json(result_json)
            workdir = Path(self.root).resolve() / launch.id
            _unpack(files, workdir)
            _sanitize(workdir)  # the worker sanitized its copy; the driver trusts no archive that crossed the wire
            _restore(workdir / "code.py", launch.code)
            detail = result.detail
            if lost:
                detail = (detail + "; " if detail else "") + f"lost {len(lost)} worker(s), retried elsewhere"
            gpus = launch.gpus if placed and not lost else result.gpus  # the cluster's numbering where crew chose
            return result.model_copy(update={"workdir": str(workdir), "lost": lost, "detail": detail, "gpus": gpus})
        return self._failed(launch, "killed", f"lost {len(lost)} times: " + "; ".join(lost), started, lost)

    def _failed(self, launch: Launch, reason: str, detail: str, started: float, lost: list[str]) -> Result:
        workdir = Path(self.root).resolve() / launch.id
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "code.py").write_text(launch.code, encoding="utf-8")
        return Result(id=launch.id, reason=reason, detail=detail, wall_time=time.monotonic() - started, cpu_time=0.0,
                      peak_memory=None, workdir=str(workdir), lost=lost, isolation={"executor": "ray"})
