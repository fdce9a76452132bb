"""The in-sandbox launcher: joins the cgroups, isolates network and /tmp, drops root, applies rlimits, then execs.

Run as `python -I _launch.py CONFIG_JSON`. It imports only the standard
library, so it starts in milliseconds, and it does in a fresh process what
would be unsafe in a `preexec_fn` of a threaded parent. Each step that the
machine refuses is reported on fd 3 (the status pipe) as JSON, so the Result
can say which isolation the experiment really had.
"""

import ctypes
import json
import os
import resource
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_RDONLY = 1
MS_BIND = 0x1000
MS_REMOUNT = 0x20
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1
SIGKILL = 9


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _unshare(libc, flags):
    if libc.unshare(flags) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def _mount(libc, source, target, fstype, flags, data):
    if libc.mount(source, target, fstype, flags, data) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}: {os.strerror(ctypes.get_errno())}")


def main():
    config = json.loads(sys.argv[1])
    status = {"network": "none", "tmp": "shared", "user": "same", "hidden": []}
    for procs_file in config.get("cgroup_procs", []):
        with open(procs_file, "w") as handle:
            handle.write(str(os.getpid()))
    libc = _libc()
    if config.get("isolate_network", True):
        try:
            _unshare(libc, CLONE_NEWNET)
            status["network"] = "namespace"
        except OSError as exc:
            status["network_error"] = str(exc)
    if config.get("private_tmp", True) or config.get("hide"):
        try:
            _unshare(libc, CLONE_NEWNS)
            _mount(libc, None, b"/", None, MS_REC | MS_PRIVATE, None)
            keep = [path for path in config.get("keep", []) if os.path.isdir(path)]
            handles = {path: os.open(path, os.O_RDONLY | os.O_DIRECTORY) for path in keep}
            if config.get("read_only_root"):
                mounts = [line.split()[4] for line in open("/proc/self/mountinfo")]
                for point in mounts:  # every existing mount read-only; the work folder comes back writable below
                    try:
                        _mount(libc, None, point.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_REC, None)
                    except OSError:
                        pass
                status["filesystem"] = "read-only outside the work folder"
            for target in config.get("private_tmp_dirs", []):
                if os.path.isdir(target):
                    _mount(libc, b"tmpfs", target.encode(), b"tmpfs", 0, b"size=64m,mode=1777")
            for path, fd in handles.items():  # kept folders come back writable, as bind mounts of themselves
                if not os.path.isdir(path):
                    os.makedirs(path)
                _mount(libc, f"/proc/self/fd/{fd}".encode(), path.encode(), None, MS_BIND, None)
                read_only = MS_RDONLY if path not in config.get("writable", []) else 0
                _mount(libc, None, path.encode(), None, MS_REMOUNT | MS_BIND | read_only, None)
                os.close(fd)
            status["tmp"] = "private"
            for target in config.get("hide", []):  # covered by an empty mount, or already gone under a tmpfs
                if os.path.isdir(target):
                    _mount(libc, b"tmpfs", target.encode(), b"tmpfs", MS_RDONLY, b"mode=000")
                elif os.path.exists(target):
                    _mount(libc, b"/dev/null", target.encode(), None, MS_BIND, None)
                status["hidden"].append(target)
        except OSError as exc:
            status["tmp_error"] = str(exc)
    limits = config.get("rlimits", {})
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))
    uid, gid = config.get("uid"), config.get("gid")
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        status["user"] = f"uid {uid}"
    if os.getuid() == 0 and config.get("drop_capabilities"):
        for cap in range(64):  # an empty bounding set: root keeps its uid but execs with no capabilities
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:
                break
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        status["user"] = "root without capabilities"
    cpus = config.get("cpus")
    if cpus:
        os.sched_setaffinity(0, cpus)
    os.chdir(config["cwd"])
    # the experiment dies with whatever launched it (a killed crew, a lost Ray worker) instead of running on
    # unwatched past its limits; set last, because a change of user clears it
    parent = os.getppid()
    libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the launching process died before the signal was armed
        os._exit(137)
    try:
        os.write(3, json.dumps(status).encode())
        os.close(3)  # the parent reads until EOF: closing here means "about to exec"
    except OSError:
        pass
    os.execve(config["argv"][0], config["argv"], config["env"])


if __name__ == "__main__":
    main()
