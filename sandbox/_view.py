"""What an experiment sees: its whole filesystem as an allow-list (system folders, the interpreter's runtime, the
task's data files, its own work folder, the shared stage cache), bound read-only at their own paths, with the
task's hidden paths and stray sockets covered. The launcher (`_launch.py`) assembles it in a new mount namespace."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from crew.sandbox._types import Launch

_SYSTEM = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
_ETC = ["/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/timezone",
        "/etc/alternatives", "/etc/mime.types"]
_DEVICES = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"]
_STAGING = "/tmp"  # where the launcher assembles the new root, inside its own mount namespace
_RUNTIMES: dict[str, list[str]] = {}
_RUNTIME_LOCK = threading.Lock()


def _runtime_paths(python: str) -> list[str]:
    """The folders the experiment's interpreter imports from: its prefixes, its sys.path (site-packages and what
    .pth files add) and crew's own packages. Asked of the interpreter itself, once per process."""
    with _RUNTIME_LOCK:
        if python not in _RUNTIMES:
            probe = subprocess.run([python, "-I", "-c", "import json, sys; print(json.dumps([sys.prefix, "
                                    "sys.base_prefix, sys.exec_prefix, *sys.path]))"],
                                   capture_output=True, text=True, timeout=60, env={"PATH": os.defpath})
            found = json.loads(probe.stdout) if probe.returncode == 0 else [sys.prefix, sys.base_prefix, *sys.path]
            found.append(str(Path(python).resolve().parent))
            for name in ("crew", "crew.roles", "crew.tools", "crew.workflows", "crew.sandbox"):
                spec = importlib.util.find_spec(name)
                found.extend((spec.submodule_search_locations or []) if spec else [])
            _RUNTIMES[python] = _outermost(str(Path(p).resolve()) for p in found if p and Path(p).is_dir())
        return list(_RUNTIMES[python])


def _outermost(paths: Any) -> list[str]:
    unique = sorted(set(paths), key=len)
    return [p for p in unique if not any(p != q and _inside(p, q) for q in unique)]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _sockets(folder: Path, limit: int = 20_000) -> list[str]:
    """Unix sockets inside a folder bound into the sandbox (a socket on a read-only mount still connects)."""
    found, seen = [], 0
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            seen += 1
            try:
                if stat.S_ISSOCK(os.lstat(os.path.join(top, name)).st_mode):
                    found.append(os.path.join(top, name))
            except OSError:
                continue
        if seen > limit:
            break
    return found


def _view(launch: Launch, workdir: Path, python: str, uid: int, gid: int, user: str) -> dict[str, Any]:
    """The experiment's whole filesystem, as an allow-list: each entry is bound at its own path, read-only unless
    it is the work folder. Runtime folders that would expose the run or its data whole are left out."""
    binds: list[dict[str, Any]] = []
    symlinks: dict[str, str] = {}
    for path in _SYSTEM:
        if os.path.islink(path):
            symlinks[path] = os.readlink(path)
        elif os.path.isdir(path):
            binds.append({"source": path, "target": path})
    binds += [{"source": p, "target": p} for p in _ETC if os.path.exists(p)]
    guarded = [str(workdir.parent.resolve())] + ([str(Path(launch.data_dir).resolve())] if launch.data_dir else [])
    binds += [{"source": p, "target": p, "required": True} for p in _runtime_paths(python)
              if not any(_inside(g, p) for g in guarded) and p != "/"]
    binds += [{"source": p, "target": p, "device": True} for p in _DEVICES if os.path.exists(p)]
    if launch.gpus:
        binds += [{"source": str(p), "target": str(p), "device": True} for p in sorted(Path("/dev").glob("nvidia*"))]
        binds.append({"source": "/sys", "target": "/sys"})
    elif os.path.isdir("/sys/devices/system/cpu"):  # core counts for OpenMP, BLAS and joblib
        binds.append({"source": "/sys/devices/system/cpu", "target": "/sys/devices/system/cpu"})
    cover: list[str] = []
    if launch.data_dir:
        data = Path(launch.data_dir).resolve()
        if launch.data_files is not None:
            binds += [{"source": launch.data_sources.get(f, str(data / f)), "target": str(data / f), "required": True}
                      for f in launch.data_files]
        else:
            binds.append({"source": str(data), "target": str(data), "required": True})
            cover += _sockets(data)
    binds.append({"source": str(workdir), "target": str(workdir), "writable": True, "required": True})
    if launch.shared_dir:
        shared = str(Path(launch.shared_dir).resolve())
        binds.append({"source": shared, "target": shared, "required": True})
    cover += [str(Path(h).resolve()) for h in launch.hide]
    tmpfs = [{"target": "/tmp", "size": "64m"}, {"target": "/var/tmp", "size": "64m"},
             {"target": "/dev", "size": "1m", "mode": "0755"},
             {"target": "/dev/shm", "size": str(launch.limits.memory)}]
    symlinks.update({"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
                     "/dev/stderr": "/proc/self/fd/2"})
    home = str(workdir)
    files = {"/etc/passwd": f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
                            f"{user}:x:{uid}:{gid}:crew experiment:{home}:/usr/sbin/nologin\n",
             "/etc/group": f"root:x:0:\n{user}:x:{gid}:\n"}
    return {"staging": _STAGING, "binds": binds, "tmpfs": tmpfs, "symlinks": symlinks, "files": files, "cover": cover}


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
