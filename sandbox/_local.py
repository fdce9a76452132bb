"""`LocalExecutor`: runs one experiment script in a fresh folder under hard limits and reports a `Result`."""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import select
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from crew.sandbox._cgroup import Cgroup, cgroup_support
from crew.sandbox._types import Launch, Limits, Reason, Result
from crew.sandbox._view import _reachable_by_others, _view

__all__ = ["Launch", "Limits", "LocalExecutor", "Result", "confinement", "disk_usage"]

_LAUNCHER = Path(__file__).with_name("_launch.py")
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "POLARS_MAX_THREADS", "RAYON_NUM_THREADS", "LOKY_MAX_CPU_COUNT")
_OWN_FILES = {"code.py", "stdout.txt", "stderr.txt"}
_AUDIT_DIR = Path(__file__).with_name("_audit")
_AUDIT_BYTES = 256 * 1024
_AUDIT_EVENTS = 200
_DISK_POLL = 0.25  # seconds between looks at an experiment's disk use

class LocalExecutor:
    """Runs experiments as local subprocesses with hard limits, each in a world of its own.

    Memory and process count go through a per-experiment cgroup where this machine lets us create one (v2, else
    v1), else through rlimits. Where the kernel grants namespaces (always as root; through a user namespace
    otherwise) the experiment gets its own pid, IPC, network and mount namespaces and an allow-list root: the
    system libraries, the Python runtime, its data files and the stage cache read-only, its work folder writable,
    nothing else; it runs as `user` (root) or as the invoking user without capabilities. Disk use of the work
    folder is capped by a watcher. Where no namespace can be had, `require_isolation=True` refuses to run at all;
    otherwise the experiment runs with what could be had, and `Result.isolation` (also `crew doctor`) says so.
    After every run the work folder holds only plain files and folders: links, pipes, sockets and devices the
    experiment left are removed before crew reads anything.
    """

    def __init__(self, *, root: str | os.PathLike[str], python: str | None = None, user: str = "nobody",
                 isolate_network: bool = True, require_isolation: bool = False):
        self.root = root
        self.python = python
        self.user = user
        self.isolate_network = isolate_network
        self.require_isolation = require_isolation

    # -- identity -------------------------------------------------------------------------------------------------

    def _identity(self) -> tuple[int, int, str, int | None]:
        """(uid, gid, name) the experiment runs as inside its own root, and the uid it may drop to without one."""
        if os.getuid() != 0:
            entry = _pwd_or_none(os.getuid())
            return os.getuid(), os.getgid(), entry or f"uid{os.getuid()}", None
        entry_ = pwd.getpwnam(self.user)
        python = Path(self.python or sys.executable)
        reachable = _reachable_by_others(python) and _reachable_by_others(Path(os.__file__).parent)
        return entry_.pw_uid, entry_.pw_gid, self.user, entry_.pw_uid if reachable else None

    # -- running --------------------------------------------------------------------------------------------------

    def run(self, launch: Launch) -> Result:
        """Run `launch` to completion or to its limit; never raises for anything the experiment does."""
        limits = launch.limits
        workdir = (Path(self.root) / launch.id).resolve()
        (workdir / "tmp").mkdir(parents=True, exist_ok=True)
        (workdir / "code.py").write_text(launch.code, encoding="utf-8")
        python = self.python or sys.executable
        uid, gid, name, fallback_uid = self._identity()
        shared = Path(launch.shared_dir).resolve() if launch.shared_dir else None
        if shared is not None:
            shared.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:
            for path in [workdir, *workdir.rglob("*")]:
                os.chown(path, uid, gid)
        support = cgroup_support()
        group = Cgroup(f"crew-{launch.id}-{os.getpid()}", memory=limits.memory, max_processes=limits.max_processes,
                       version=support) if support != "none" else None
        rlimits = {"RLIMIT_FSIZE": min(limits.output_bytes, limits.disk), "RLIMIT_CORE": 0}
        if group is None:
            rlimits["RLIMIT_AS"] = limits.memory
            if os.getuid() == 0:
                rlimits["RLIMIT_NPROC"] = limits.max_processes
        view = _view(launch, workdir, python, uid, gid, name)
        audit_path = workdir.parent / f".{launch.id}.audit"
        audit_fd = os.open(audit_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_NOFOLLOW
                           | os.O_CLOEXEC, 0o600)
        env = {**self._audit_env(launch, view, audit_fd), **self._env(launch, workdir)}
        status_r, status_w = os.pipe()
        ending_r, ending_w = os.pipe()
        config = {
            "cgroup_procs": group.procs_files if group else [], "isolate_network": self.isolate_network,
            "require_namespaces": self.require_isolation, "view": view,
            "rlimits": rlimits, "uid": uid, "gid": gid, "fallback_uid": fallback_uid, "cpus": launch.cpus,
            "cwd": str(workdir), "argv": [python, "code.py"], "env": env,
        }
        started = time.monotonic()
        with open(workdir / "stdout.txt", "wb") as out, open(workdir / "stderr.txt", "wb") as err:
            # every source above the target numbers first: a source that happens to be fd 3-5 here would be
            # overwritten by an earlier dup2 before its own
            sources = [_above_targets(fd) for fd in (out.fileno(), err.fileno(), status_w, ending_w, audit_fd)]
            try:
                pid = os.posix_spawn(sys.executable, [sys.executable, "-I", "-S", str(_LAUNCHER), json.dumps(config)],
                                     env, file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                                                        *[(os.POSIX_SPAWN_DUP2, fd, target)
                                                          for fd, target in zip(sources, range(1, 6), strict=True)]],
                                     setsid=True)
            finally:
                for fd in sources:
                    os.close(fd)
        os.close(audit_fd)
        os.close(status_w)
        os.close(ending_w)
        status = self._read_status(status_r, limits.wall_time)
        outcome: dict[str, object] = {}
        waiter = threading.Thread(target=lambda: outcome.update(zip(("pid", "status", "rusage"), os.wait4(pid, 0), strict=True)),
                                  daemon=True)
        waiter.start()
        over_disk = self._watch(waiter, workdir, limits, started)
        timed_out = waiter.is_alive() and not over_disk
        leftovers = self._kill_tree(pid, group, launch.id)
        waiter.join(5.0)
        ending = self._read_status(ending_r, 1.0)
        leftovers = max(leftovers, int(ending.get("left", 0) or 0))  # type: ignore[call-overload]
        wall = time.monotonic() - started
        removed = _sanitize(workdir)
        if over_disk:  # its files are useless and would spend the run's disk budget: keep only what explains it
            _clear(workdir, keep={workdir / "code.py", audit_path}, logs=("stdout.txt", "stderr.txt"),
                   tail=limits.tail_bytes)
        _restore(workdir / "code.py", launch.code)  # what crew launched, not what the experiment left in its place
        processes = f"cgroup {support}" if group else ("rlimit" if "RLIMIT_NPROC" in rlimits else "none")
        result = self._result(launch, workdir, group, status, outcome, timed_out, over_disk, leftovers, wall,
                              processes, removed)
        result.audit = _read_audit(audit_path)
        return result

    @staticmethod
    def _audit_env(launch: Launch, view: dict[str, Any], fd: int) -> dict[str, str]:
        """What the audit hook (sitecustomize on PYTHONPATH) needs: crew's file descriptor, the experiment's world,
        the runtime its native libraries may come from, and the hidden paths."""
        info = os.fstat(fd)
        world = [b["target"] for b in view["binds"]] + [t["target"] for t in view["tmpfs"]] + \
            list(view["symlinks"]) + ["/proc", "/sys", "/dev", "/etc"]
        runtime = [b["target"] for b in view["binds"] if not b.get("writable")]
        return {"PYTHONPATH": str(_AUDIT_DIR), "CREW_AUDIT_FD": "5", "CREW_AUDIT_ID": f"{info.st_dev}:{info.st_ino}",
                "CREW_AUDIT_ALLOW": os.pathsep.join(world), "CREW_AUDIT_RUNTIME": os.pathsep.join(runtime),
                "CREW_AUDIT_HIDDEN": os.pathsep.join(str(Path(h).resolve()) for h in launch.hide)}

    @staticmethod
    def _watch(waiter: threading.Thread, workdir: Path, limits: Limits, started: float) -> str:
        """Wait for the experiment, checking its work folder against the disk quota; '' or why it was over."""
        while waiter.is_alive():
            left = limits.wall_time - (time.monotonic() - started)
            if left <= 0:
                return ""
            waiter.join(min(left, _DISK_POLL))
            if waiter.is_alive():
                used, entries = disk_usage(workdir, limits.max_files + 1)
                if used > limits.disk:
                    return f"used {used / 1024**2:.0f} MiB of disk in its work folder, over its quota of " \
                           f"{limits.disk / 1024**2:.0f} MiB"
                if entries > limits.max_files:
                    return f"created more than {limits.max_files} files in its work folder"
        return ""

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
            while time.monotonic() < deadline and len(chunks) < 65536:
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
            value = json.loads(chunks) if chunks else {}
            return value if isinstance(value, dict) else {}
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
                outcome: dict[str, object], timed_out: bool, over_disk: str, leftovers: int, wall: float,
                processes: str, removed: list[str]) -> Result:
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
        if status.get("setup_error"):
            reason, detail = "error", f"the sandbox could not be set up, so the experiment did not run: " \
                                      f"{status['setup_error']}"
        elif over_disk:
            reason, detail = "disk", over_disk
        elif timed_out:
            reason, detail = "timeout", f"killed after its wall-time limit of {limits.wall_time:g}s"
        elif oom:
            reason, detail = "memory", f"killed at its memory limit of {limits.memory / 1024**2:.0f} MiB"
        elif sig == signal.SIGXFSZ or _hit_output_cap(workdir, min(limits.output_bytes, limits.disk)):
            reason, detail = "killed", f"wrote a file up to the output limit of {limits.output_bytes / 1024**2:.0f} MiB"
        elif exit_code == 0:
            reason = "ok"
        elif sig is not None:
            reason, detail = "killed", f"ended by signal {signal.Signals(sig).name}"
        else:
            reason, detail = "error", f"exit status {exit_code}"
        if leftovers and not timed_out and not over_disk:
            detail = (detail + "; " if detail else "") + f"killed {leftovers} process(es) it left running"
        if removed:
            detail = (detail + "; " if detail else "") + f"removed {len(removed)} link(s) or special file(s) it left " \
                                                         f"({', '.join(removed[:3])})"
        if group:
            group.remove()
        isolation = _isolation(status, self.isolate_network, group, processes, limits)
        if launch.hide:
            isolation["hidden"] = ", ".join(map(str, status.get("hidden", []) or [])) or "none"  # type: ignore[call-overload]
        files = {rel: size for rel, size in _plain_files(workdir).items()
                 if Path(rel).name not in _OWN_FILES and Path(rel).parts[:1] != ("tmp",)}
        return Result(id=launch.id, reason=reason, detail=detail, exit_code=exit_code if sig is None else None, signal=sig,
                      wall_time=round(wall, 4), cpu_time=round(cpu, 4), peak_memory=peak, stdout_tail=stdout,
                      stderr_tail=stderr, files=files, gpus=launch.gpus, isolation=isolation, workdir=str(workdir))


_CONFINEMENT: dict[str, dict[str, str]] = {}
_CONFINEMENT_LOCK = threading.Lock()


_CONFINEMENT_PROBE = """import socket
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    try:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed; the audit hook must see the attempt
    except OSError:
        pass
"""


def confinement(python: str | None = None) -> dict[str, str]:
    """The isolation an experiment really gets on this machine, observed by running an empty one (once per process
    and interpreter); `["confined"]` is "yes" or says what is missing."""
    key = python or sys.executable
    with _CONFINEMENT_LOCK:
        cached = _CONFINEMENT.get(key)
    if cached is None:
        with tempfile.TemporaryDirectory(prefix="crew-probe-") as tmp:
            result = LocalExecutor(root=tmp, python=python).run(Launch(code=_CONFINEMENT_PROBE,
                                                                       limits=Limits(wall_time=30)))
        seen = [e for e in result.audit if e.get("event") == "socket"]
        audit = ("hook in the experiment's interpreter (saw the check's socket use): spawns, sockets, native "
                 "libraries, opens outside its world" if seen else "NO: the audit hook did not report the check")
        cached = {**result.isolation, "audit": audit, "launch": f"{result.reason} in {result.wall_time * 1000:.0f} ms"}
        with _CONFINEMENT_LOCK:
            _CONFINEMENT[key] = cached
    return dict(cached)


def _pwd_or_none(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _isolation(status: dict[str, object], isolate_network: bool, group: Cgroup | None, processes: str,
               limits: Limits) -> dict[str, str]:
    """What each limit really had, from the launcher's own report; `confined` is the one-word verdict."""
    confined = status.get("filesystem") == "allow-list root" and status.get("pid") == "namespace" \
        and str(status.get("user", "")).startswith("uid") and not status.get("setup_error")
    return {
        "memory": f"cgroup {group.version}" if group else "rlimit (address space)",
        "processes": processes,
        "network": str(status.get("network", "none")) if isolate_network else "allowed",
        "tmp": str(status.get("tmp", "shared")),
        "user": str(status.get("user", "unknown")),
        "pid": str(status.get("pid", "unknown")),
        "filesystem": str(status.get("filesystem", "unknown")),
        "proc": str(status.get("proc", "unknown")),
        "sockets": "host sockets out of reach (own root and network namespace)" if confined
                   and status.get("network") == "namespace" else "host sockets reachable",
        "disk": f"{limits.disk / 1024**2:.0f} MiB quota, {limits.max_files} files (watched)",
        "output": "rlimit",
        "confined": "yes" if confined else "NO: " + str(status.get("namespace_error") or status.get("setup_error")
                                                         or "the experiment sees the host"),
    }


def disk_usage(folder: str | os.PathLike[str], limit: int | None = None) -> tuple[int, int]:
    """Bytes on disk and entries under `folder`, links not followed; stops counting past `limit` entries."""
    used, entries = 0, 0
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            entries += 1
            try:
                used += os.lstat(os.path.join(top, name)).st_blocks * 512
            except OSError:
                continue
        if limit is not None and entries > limit:
            break
    return used, entries


def _sanitize(workdir: Path) -> list[str]:
    """Leave only plain files and folders, owned by crew and not writable by others: everything crew reads from the
    work folder afterwards is data the experiment wrote, never a link to somewhere else or a pipe that blocks."""
    removed = []
    me, my_group = os.getuid(), os.getgid()
    for top, dirs, files in os.walk(workdir):
        for name in dirs + files:
            path = os.path.join(top, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode):
                if info.st_uid != me or info.st_mode & (stat.S_ISUID | stat.S_ISGID | stat.S_IWOTH):
                    os.lchown(path, me, my_group)
                    os.chmod(path, info.st_mode & 0o755 | (0o700 if stat.S_ISDIR(info.st_mode) else 0o600))
                continue
            os.unlink(path)
            removed.append(str(Path(path).relative_to(workdir)))
        dirs[:] = [d for d in dirs if os.path.isdir(os.path.join(top, d)) and not os.path.islink(os.path.join(top, d))]
    return removed


def _clear(workdir: Path, keep: set[Path], logs: tuple[str, ...], tail: int) -> None:
    """Remove everything an experiment wrote but `keep`, and shorten its logs to their last `tail` bytes."""
    for name in logs:
        path = workdir / name
        if path.is_file() and not path.is_symlink() and path.stat().st_size > tail:
            with path.open("rb") as handle:
                handle.seek(-tail, os.SEEK_END)
                end = handle.read()
            path.write_bytes(end)
    for child in workdir.iterdir():
        if child in keep or child.name in logs:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _above_targets(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)


def _read_audit(path: Path) -> list[dict[str, str]]:
    """The audit hook's events, read as untrusted data: bounded, one JSON object a line, unknown shapes dropped."""
    events: list[dict[str, str]] = []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return events
    with os.fdopen(fd, "rb") as handle:
        text = handle.read(_AUDIT_BYTES).decode("utf-8", errors="replace")
    path.unlink(missing_ok=True)
    for line in text.splitlines()[:_AUDIT_EVENTS]:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("level") in ("fail", "warn", "note"):
            events.append({k: str(event.get(k, ""))[:300] for k in ("level", "event", "detail")})
    return events


def _restore(path: Path, text: str) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    path.write_text(text, encoding="utf-8")


def _plain_files(workdir: Path) -> dict[str, int]:
    out = {}
    for top, _dirs, files in os.walk(workdir):
        for name in files:
            info = os.lstat(os.path.join(top, name))
            if stat.S_ISREG(info.st_mode):
                out[str(Path(top, name).relative_to(workdir))] = info.st_size
    return dict(sorted(out.items()))


def _hit_output_cap(workdir: Path, cap: int) -> bool:
    """Python ignores SIGXFSZ, so a capped write shows up as a file exactly at the cap (and EFBIG)."""
    return any(size >= cap for size in _plain_files(workdir).values())


def _tail(path: Path, size: int) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return ""
        handle.seek(max(0, info.st_size - size))
        return handle.read(size).decode("utf-8", errors="replace")
