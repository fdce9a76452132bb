"""Per-experiment cgroups (v2, else v1 memory + pids): the hard memory and process limits, peak memory, tree kill."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

__all__ = ["Cgroup", "cgroup_support"]

_V2_ROOT = Path("/sys/fs/cgroup")
_V1_ROOT = Path("/sys/fs/cgroup")


def _own_path(controller: str) -> str | None:
    """This process's cgroup path for a v1 controller ('' key = the v2 unified path)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (controller == "" and controllers == ""):
            return path
    return None


def _writable_dir(path: Path) -> bool:
    # unique per call: concurrent launches from threads of one process must not trip over each other's probe
    probe = path / f"crew-probe-{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
        probe.rmdir()
        return True
    except OSError:
        return False


def _v2_base() -> Path | None:
    if not (_V2_ROOT / "cgroup.controllers").exists():
        return None
    own = _own_path("")
    base = _V2_ROOT / (own or "/").lstrip("/")
    controllers = (base / "cgroup.controllers").read_text().split() if (base / "cgroup.controllers").exists() else []
    if {"memory", "pids"} <= set(controllers) and _writable_dir(base):
        try:  # children may only use controllers that the parent delegates
            (base / "cgroup.subtree_control").write_text("+memory +pids")
        except OSError:
            pass
        return base
    return None


def _v1_bases() -> dict[str, Path] | None:
    bases = {}
    for controller in ("memory", "pids"):
        own = _own_path(controller)
        base = _V1_ROOT / controller / (own or "/").lstrip("/")
        if own is None or not base.is_dir() or not _writable_dir(base):
            return None
        bases[controller] = base
    return bases


def cgroup_support() -> str:
    """'v2', 'v1' or 'none': which cgroups this process may create children in."""
    if _v2_base() is not None:
        return "v2"
    if _v1_bases() is not None:
        return "v1"
    return "none"


class Cgroup:
    """One experiment's cgroup(s): created with limits, joined by the launcher, killed and removed after."""

    def __init__(self, name: str, *, memory: int, max_processes: int, version: str | None = None):
        self.name = name
        self.memory = memory
        self.max_processes = max_processes
        self.version = version or cgroup_support()
        self.dirs: dict[str, Path] = {}
        if self.version == "v2":
            base = _v2_base()
            assert base is not None
            group = base / name
            group.mkdir(exist_ok=True)
            (group / "memory.max").write_text(str(memory))
            (group / "memory.swap.max").write_text("0") if (group / "memory.swap.max").exists() else None
            (group / "pids.max").write_text(str(max_processes))
            self.dirs = {"memory": group, "pids": group}
        elif self.version == "v1":
            bases = _v1_bases()
            assert bases is not None
            for controller, base in bases.items():
                group = base / name
                group.mkdir(exist_ok=True)
                self.dirs[controller] = group
            memory_dir = self.dirs["memory"]
            (memory_dir / "memory.limit_in_bytes").write_text(str(memory))
            memsw = memory_dir / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                try:
                    memsw.write_text(str(memory))
                except OSError:
                    pass
            (self.dirs["pids"] / "pids.max").write_text(str(max_processes))

    @property
    def procs_files(self) -> list[str]:
        return sorted({str(d / "cgroup.procs") for d in self.dirs.values()})

    def pids(self) -> list[int]:
        found: set[int] = set()
        for directory in self.dirs.values():
            try:
                found |= {int(p) for p in (directory / "cgroup.procs").read_text().split()}
            except OSError:
                pass
        return sorted(found)

    def peak_memory(self) -> int | None:
        memory_dir = self.dirs.get("memory")
        if memory_dir is None:
            return None
        name = "memory.peak" if self.version == "v2" else "memory.max_usage_in_bytes"
        try:
            return int((memory_dir / name).read_text().strip())
        except (OSError, ValueError):
            return None

    def oom_killed(self) -> bool:
        memory_dir = self.dirs.get("memory")
        if memory_dir is None:
            return False
        try:
            if self.version == "v2":
                events = dict(line.split() for line in (memory_dir / "memory.events").read_text().splitlines())
                return int(events.get("oom_kill", 0)) > 0
            control = dict(line.split() for line in (memory_dir / "memory.oom_control").read_text().splitlines())
            if "oom_kill" in control:
                return int(control["oom_kill"]) > 0
            return int((memory_dir / "memory.failcnt").read_text()) > 0
        except (OSError, ValueError):
            return False

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every process in the group until none is left (a fork bomb cannot outrun pids.max)."""
        group = self.dirs.get("pids")
        if self.version == "v2" and group is not None and (group / "cgroup.kill").exists():
            try:
                (group / "cgroup.kill").write_text("1")
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def remove(self) -> None:
        self.kill_all()
        for directory in self.dirs.values():
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
