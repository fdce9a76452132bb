"""crew.sandbox: executors that run experiments under hard limits (time, memory, processes, network, output), GPU slots
and a pool that runs many experiments at once."""

from crew.sandbox._cgroup import cgroup_support
from crew.sandbox._gpu import NVML, GPUDevice, GPUSlots, GPUSource, SimulatedGPUs
from crew.sandbox._local import LocalExecutor, confinement, disk_usage
from crew.sandbox._pool import Executor, Pool, available_memory
from crew.sandbox._ray import RayExecutor, check_executor, require_ray
from crew.sandbox._types import Launch, Limits, Result

__all__ = ["NVML", "Executor", "GPUDevice", "GPUSlots", "GPUSource", "Launch", "Limits", "LocalExecutor", "Pool",
           "RayExecutor", "Result", "SimulatedGPUs", "available_memory", "cgroup_support", "check_executor",
           "confinement", "disk_usage", "require_ray"]
