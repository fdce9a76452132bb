"""`LocalExecutor`: runs one experiment script in a fresh folder under hard limits and reports a `Result`."""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import select
import signal
import stat
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from crew.sandbox._cgroup import Cgroup, cgroup_support

__all__ = ["Launch", "Limits", "LocalExecutor", "Result"]

_LAUNCHER = Path(__file__).with_name("_launch.py")
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "POLARS_MAX_THREADS", "RAYON_NUM_THREADS")
_PRIVATE_DIRS = ["/tmp", "/var/tmp", "/dev/shm"]
_OWN_FILES = {"code.py", "stdout.txt", "stderr.txt"}

Reason = Literal["ok", "error", "timeout", "memory", "killed"]


class Limits(BaseModel):
    """What one experiment may use; the sandbox enforces each while it runs."""

    wall_time: float = Field(default=120.0, gt=0)
    memory: int = Field(default=4 * 1024**3, gt=0)
    threads: int = Field(default=1, ge=1)
    max_processes: int = Field(default=256, ge=1)
    output_bytes: int = Field(default=512 * 1024**2, gt=0, description="largest file it may write, stdout included")
    tail_bytes: int = Field(default=8192, gt=0)


class Launch(BaseModel):
    """One experiment to run: its script, limits, where its data is, and paths it must not see."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    code: str
    limits: Limits = Field(default_factory=Limits)
    data_dir: str | None = None
    hide: list[str] = Field(default_factory=list, description="paths made unreadable inside the sandbox (answers)")
    env: dict[str, str] = Field(default_factory=dict)
    gpus: list[int] = Field(default_factory=list)
    cpus: list[int] = Field(default_factory=list)
    shared_dir: str | None = Field(default=None, description="a folder the experiments of one run share (the stage "
                                   "cache), writable, given as $CREW_SHARED")
    estimate: dict[str, Any] = Field(default_factory=dict, description="the critic's approved estimate (seconds, "
                                     "memory): what a cluster executor reserves for it")


class Result(BaseModel):
    """What happened: the reason it ended, exit status or signal, time, memory, output and the isolation it had."""

    id: str
    reason: Reason
    detail: str = ""
    exit_code: int | None = None
    signal: int | None = None
    wall_time: float
    cpu_time: float
    peak_memory: int | None
    stdout_tail: str = ""
    stderr_tail: str = ""
    files: dict[str, int] = Field(default_factory=dict)
    gpus: list[int] = Field(default_factory=list)
    isolation: dict[str, str] = Field(default_factory=dict)
    workdir: str
    lost: list[str] = Field(default_factory=list, description="workers lost under it before it ended (cluster "
                            "executors retry elsewhere)")


def _kept_paths(workdir: Path, data_dir: str | None, shared_dir: str | None = None) -> list[str]:
    """Folders under the private tmp dirs that the experiment still needs: the interpreter, its packages,
    crew's own folders, the data (all bound back read-only) and its work folder (bound back writable).

    Parents come before children so that each bind lands on top of the one it lives in.
    """
    needed = {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parent), *filter(None, sys.path)}
    for name in ("crew", "crew.roles", "crew.tools", "crew.workflows", "crew.sandbox"):
        spec = importlib.util.find_spec(name)
        needed |= set(spec.submodule_search_locations or []) if spec else set()
    if data_dir:
        needed.add(data_dir)
    resolved = sorted({str(Path(p).resolve()) for p in needed if Path(p).is_dir()}, key=len)
    private = [d.rstrip("/") + "/" for d in _PRIVATE_DIRS]
    under = [p for p in resolved if any(p.startswith(d) for d in private)]
    outermost = [p for p in under if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in under)]
    return outermost + [str(workdir.resolve())] + ([str(Path(shared_dir).resolve())] if shared_dir else [])


def _reachable_by_others(path: Path) -> bool:
    """Whether an unprivileged user can traverse to `path` (every parent o+x)."""
    path = path.resolve()
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
        except OSError:
            return False
        if parent != path and not mode & stat.S_IXOTH:
            return False
    return True


class LocalExecutor:
    """Runs experiments as local subprocesses with hard limits.

    Memory and process count go through a per-experiment cgroup where this
    machine lets us create one (v2, else v1), else through rlimits; network
    and /tmp through new namespaces where permitted; root drops to `user`
    when the interpreter is reachable by that user. `Result.isolation` says
    which mechanism each limit really had.
    """

    def __init__(self, *, root: str | os.PathLike[str], python: str | None = None, user: str = "nobody",
                 isolate_network: bool = True):
        self.root = root
        self.python = python
        self.user = user
        self.isolate_network = isolate_network

    # -- isolation facts --------------------------------------------------------------------

    def _identity(self) -> tuple[int | None, int | None, str]:
        if os.getuid() != 0:
            return None, None, f"uid {os.getuid()} (not root)"
        python = Path(self.python or sys.executable)
        stdlib = Path(os.__file__).parent
        if not (_reachable_by_others(python) and _reachable_by_others(stdlib)):
            return None, None, f"root: the interpreter ({python.resolve().parent}) is not reachable by {self.user!r}"
        entry = pwd.getpwnam(self.user)
        return entry.pw_uid, entry.pw_gid, f"uid {entry.pw_uid} ({self.user})"

    # -- running ----------------------------------------------------------------------------

    def run(self, launch: Launch) -> Result:
        """Run `launch` to completion or to its limit; never raises for anything the experiment does."""
        limits = launch.limits
        # absolute: the launcher chdirs after mounting a private /tmp, and a relative path would then resolve
        # from the old cwd, under the covered (read-only) tree instead of the writable bind of the work folder
        workdir = (Path(self.root) / launch.id).resolve()
        (workdir / "tmp").mkdir(parents=True, exist_ok=True)
        (workdir / "code.py").write_text(launch.code, encoding="utf-8")
        uid, gid, user_note = self._identity()
        shared = Path(launch.shared_dir).resolve() if launch.shared_dir else None
        if shared is not None:
            shared.mkdir(parents=True, exist_ok=True)
        if uid is not None:
            for path in [workdir, *workdir.rglob("*"), *([shared] if shared is not None else [])]:
                os.chown(path, uid, gid)
        support = cgroup_support()
        group = Cgroup(f"crew-{launch.id}-{os.getpid()}", memory=limits.memory, max_processes=limits.max_processes,
                       version=support) \
            if support != "none" else None
        rlimits = {"RLIMIT_FSIZE": limits.output_bytes, "RLIMIT_CORE": 0}
        if group is None:
            rlimits["RLIMIT_AS"] = limits.memory
            if uid is not None:
                rlimits["RLIMIT_NPROC"] = limits.max_processes
        env = self._env(launch, workdir)
        status_r, status_w = os.pipe()
        config = {
            "cgroup_procs": group.procs_files if group else [], "isolate_network": self.isolate_network,
            "private_tmp": True, "private_tmp_dirs": _PRIVATE_DIRS, "hide": [str(Path(h).resolve()) for h in launch.hide],
            "read_only_root": uid is None and os.getuid() == 0, "drop_capabilities": uid is None,
            "writable": [str(workdir.resolve())] + ([str(shared)] if shared is not None else []),
            "keep": _kept_paths(workdir, launch.data_dir, launch.shared_dir), "rlimits": rlimits,
            "uid": uid, "gid": gid, "cpus": launch.cpus, "cwd": str(workdir), "status_fd": status_w,
            "argv": [self.python or sys.executable, "code.py"], "env": env,
        }
        started = time.monotonic()
        with open(workdir / "stdout.txt", "wb") as out, open(workdir / "stderr.txt", "wb") as err:
            pid = os.posix_spawn(sys.executable, [sys.executable, "-I", "-S", str(_LAUNCHER), json.dumps(config)], env,
                                 file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                                               (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                                               (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
                                               (os.POSIX_SPAWN_DUP2, status_w, 3)],
                                 setsid=True)
        os.close(status_w)
        status = self._read_status(status_r, limits.wall_time)
        outcome: dict[str, object] = {}
        waiter = threading.Thread(target=lambda: outcome.update(zip(("pid", "status", "rusage"), os.wait4(pid, 0), strict=True)),
                                  daemon=True)
        waiter.start()
        waiter.join(max(0.0, limits.wall_time - (time.monotonic() - started)))
        timed_out = waiter.is_alive()
        leftovers = self._kill_tree(pid, group, launch.id)
        waiter.join(5.0)
        wall = time.monotonic() - started
        processes = f"cgroup {support}" if group else ("rlimit" if "RLIMIT_NPROC" in rlimits else "none")
        return self._result(launch, workdir, group, status, outcome, timed_out, leftovers, wall, user_note, processes)

    def _env(self, launch: Launch, workdir: Path) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "TMPDIR": str(workdir / "tmp"),
               "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
               "CREW_EXPERIMENT_ID": launch.id, "CUDA_VISIBLE_DEVICES": ",".join(map(str, launch.gpus)),
               "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "MPLBACKEND": "Agg"}  # PCI order: CUDA numbers GPUs as NVML does
        env.update({var: str(launch.limits.threads) for var in _THREAD_VARS})
        # OpenMP threads that spin while waiting turn any CPU contention (crew's own process, a second worker,
        # Ray's daemons, the user's editor) into 3-8x slower LightGBM fits; sleeping waiters cost ~1.5x only on
        # tiny data (bench: the same 40-row LightGBM fit, 4.2s idle / 27-78s loaded spinning, 6.5s / 9-11s sleeping)
        env["OMP_WAIT_POLICY"] = "PASSIVE"
        if launch.data_dir:
            env["CREW_DATA"] = str(Path(launch.data_dir).resolve())
        if launch.shared_dir:
            env["CREW_SHARED"] = str(Path(launch.shared_dir).resolve())
        env.update(launch.env)
        return env

    @staticmethod
    def _read_status(fd: int, timeout: float) -> dict[str, object]:
        chunks = b""
        deadline = time.monotonic() + min(timeout, 30.0)
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    break
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks += chunk
        finally:
            os.close(fd)
        try:
            return json.loads(chunks) if chunks else {}
        except json.JSONDecodeError:
            return {}

    @staticmethod
    def _kill_tree(pid: int, group: Cgroup | None, launch_id: str) -> int:
        """Kill the experiment and everything it started; returns how many processes were left to kill."""
        if group is not None:
            left = len(group.pids())
            group.kill_all()
            return left
        left = 0
        try:
            os.killpg(pid, signal.SIGKILL)
            left += 1
        except (ProcessLookupError, PermissionError):
            pass
        marker = f"CREW_EXPERIMENT_ID={launch_id}".encode()
        for proc in Path("/proc").iterdir():  # children that called setsid() left the process group
            if proc.name.isdigit():
                try:
                    if marker in (proc / "environ").read_bytes().split(b"\0"):
                        os.kill(int(proc.name), signal.SIGKILL)
                        left += 1
                except (OSError, ProcessLookupError):
                    continue
        return left

    def _result(self, launch: Launch, workdir: Path, group: Cgroup | None, status: dict[str, object],
                outcome: dict[str, object], timed_out: bool, leftovers: int, wall: float, user_note: str,
                processes: str) -> Result:
        limits = launch.limits
        raw = outcome.get("status")
        rusage = outcome.get("rusage")
        exit_code = os.waitstatus_to_exitcode(raw) if isinstance(raw, int) else None
        sig = -exit_code if exit_code is not None and exit_code < 0 else None
        stdout, stderr = _tail(workdir / "stdout.txt", limits.tail_bytes), _tail(workdir / "stderr.txt", limits.tail_bytes)
        peak = group.peak_memory() if group else (int(rusage.ru_maxrss) * 1024 if rusage is not None else None)  # type: ignore[attr-defined]
        cpu = float(rusage.ru_utime + rusage.ru_stime) if rusage is not None else 0.0  # type: ignore[attr-defined]
        oom = group.oom_killed() if group else "MemoryError" in stderr
        reason: Reason
        detail = ""
        if timed_out:
            reason, detail = "timeout", f"killed after its wall-time limit of {limits.wall_time:g}s"
        elif oom:
            reason, detail = "memory", f"killed at its memory limit of {limits.memory / 1024**2:.0f} MiB"
        elif sig == signal.SIGXFSZ or _hit_output_cap(workdir, limits.output_bytes):
            reason, detail = "killed", f"wrote a file up to the output limit of {limits.output_bytes / 1024**2:.0f} MiB"
        elif exit_code == 0:
            reason = "ok"
        elif sig is not None:
            reason, detail = "killed", f"ended by signal {signal.Signals(sig).name}"
        else:
            reason, detail = "error", f"exit status {exit_code}"
        if leftovers and not timed_out:
            detail = (detail + "; " if detail else "") + f"killed {leftovers} process(es) it left running"
        if group:
            group.remove()
        isolation = {
            "memory": f"cgroup {group.version}" if group else "rlimit (address space)",
            "processes": processes,
            "network": str(status.get("network", "none")) if self.isolate_network else "allowed",
            "tmp": str(status.get("tmp", "shared")),
            "user": str(status.get("user")) if status.get("user") not in (None, "same") else user_note,
            "filesystem": str(status.get("filesystem", "unix permissions")),
            "output": "rlimit",
        }
        if launch.hide:
            isolation["hidden"] = ", ".join(map(str, status.get("hidden", []))) or "none"
        files = {str(p.relative_to(workdir)): p.stat().st_size for p in sorted(workdir.rglob("*"))
                 if p.is_file() and p.name not in _OWN_FILES and "tmp" not in p.relative_to(workdir).parts[:1]}
        return Result(id=launch.id, reason=reason, detail=detail, exit_code=exit_code if sig is None else None, signal=sig,
                      wall_time=round(wall, 4), cpu_time=round(cpu, 4), peak_memory=peak, stdout_tail=stdout,
                      stderr_tail=stderr, files=files, gpus=launch.gpus, isolation=isolation, workdir=str(workdir))


def _hit_output_cap(workdir: Path, cap: int) -> bool:
    """Python ignores SIGXFSZ, so a capped write shows up as a file exactly at the cap (and EFBIG)."""
    return any(p.is_file() and p.stat().st_size >= cap for p in workdir.rglob("*"))


def _tail(path: Path, size: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - size))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
