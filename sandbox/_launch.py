"""The in-sandbox launcher: joins the cgroups, builds the experiment's own world (namespaces, an allow-list root), drops
to an unprivileged user, applies rlimits, then execs the experiment.

Run as `python -I -S _launch.py CONFIG_JSON`. It imports only the standard library, so it starts in milliseconds, and
it does in a fresh process what would be unsafe in a `preexec_fn` of a threaded parent.

The world it builds, where the kernel allows it (as root directly, otherwise inside a new user namespace):
- new mount, pid, IPC and network namespaces: the experiment sees no host process to signal, no host socket (abstract
  unix sockets live in the network namespace), no host SysV memory;
- a new root built on an empty tmpfs from an allow-list of bind mounts (the system's /usr and libraries, the Python
  runtime, the data files, the work folder writable, the read-only stage cache), a minimal /dev, a private /tmp and
  /dev/shm, a /proc of its own pid namespace; `pivot_root` into it, the host's root detached. Nothing else exists:
  no home folders, no other runs or tasks, no /run or /var, no host sockets;
- the experiment runs as an unprivileged user (a dedicated uid when crew is root; the invoking user, with no
  capabilities, inside a user namespace otherwise), with no_new_privs.

Process tree: this launcher (outer, in crew's pid namespace) forks an init (pid 1 of the new pid namespace) that
builds the root, forks the experiment and reaps every orphan until the experiment exits; when init exits the kernel
kills whatever is left in the namespace. The outer process relays the experiment's exit status or signal, so the
executor sees the experiment's own ending.

What was achieved is reported on fd 3 (the status pipe) as JSON just before the exec. A step that must hold once
namespaces were granted (binds, pivot_root, dropping the user) aborts the launch instead of running the experiment
with less: exit status 125 and a `setup_error` in the status.
"""

import ctypes
import json
import os
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MNT_DETACH = 2
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1
# statvfs flags of a mount -> the mount flags a bind of it must keep (a user namespace may not clear locked ones)
_KEEP_FLAGS = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: MS_NOATIME, 2048: MS_NODIRATIME,
               4096: MS_RELATIME}
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "ppc64": 203, "s390x": 217,
               "i686": 217, "armv7l": 218}
SETUP_FAILED = 125


class SetupError(Exception):
    """A step of building the sandbox failed after the namespaces were granted: the experiment must not run."""


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(result, what):
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _enc(value):
    return value.encode() if isinstance(value, str) else value


def _mount(libc, source, target, fstype, flags, data=None):
    _check(libc.mount(_enc(source), _enc(target), _enc(fstype), flags, _enc(data)), f"mount {target}")


def _write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


# -- namespaces ---------------------------------------------------------------------------------------------------


def _enter_namespaces(libc, config, status):
    """Unshare mount, pid and IPC (and network) namespaces; True when a private world can be built."""
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC
    if os.geteuid() != 0:  # an unprivileged crew: the namespaces come with a user namespace of our own
        uid, gid = os.geteuid(), os.getegid()
        try:
            _check(libc.unshare(CLONE_NEWUSER), "unshare user namespace")
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
            status["user_namespace"] = True
        except OSError as exc:
            status["namespace_error"] = str(exc)
            return False
    try:
        _check(libc.unshare(flags), "unshare mount/pid/ipc namespaces")
    except OSError as exc:
        status["namespace_error"] = str(exc)
        return False
    status["pid"] = "namespace"
    if config.get("isolate_network", True):
        try:
            _check(libc.unshare(CLONE_NEWNET), "unshare network namespace")
            status["network"] = "namespace"
        except OSError as exc:
            status["network_error"] = str(exc)
    return True


# -- the allow-list root ------------------------------------------------------------------------------------------


def _kept_flags(path):
    try:
        flags = os.statvfs(path).f_flag
    except OSError:
        return 0
    return sum(mount_flag for vfs_flag, mount_flag in _KEEP_FLAGS.items() if flags & vfs_flag)


def _make_target(path, is_dir):
    os.makedirs(path if is_dir else os.path.dirname(path), mode=0o755, exist_ok=True)
    if not is_dir and not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def _build_root(libc, view, root):
    """Mount the allow-listed world at `root` (an empty tmpfs) and return what it holds, for the status."""
    sources = {}  # open every source before anything is mounted over it (sources may live under the staging point)
    for entry in view["binds"]:
        try:
            sources[entry["target"]] = os.open(entry["source"], os.O_PATH | os.O_CLOEXEC)
        except OSError as exc:
            if entry.get("required"):
                raise SetupError(f"cannot open {entry['source']} to bind it into the sandbox ({exc})") from None
    _mount(libc, "tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=0755")
    mounts = sorted([("bind", e) for e in view["binds"] if e["target"] in sources]
                    + [("tmpfs", e) for e in view["tmpfs"]], key=lambda item: item[1]["target"].count("/"))
    for kind, entry in mounts:
        path = root + entry["target"]
        if kind == "tmpfs":
            _make_target(path, True)
            mode = entry.get("mode", "1777")
            _mount(libc, "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={entry['size']},mode={mode}")
            continue
        fd = sources.pop(entry["target"])
        source = f"/proc/self/fd/{fd}"
        is_dir = os.path.isdir(source)
        _make_target(path, is_dir)
        _mount(libc, source, path, None, MS_BIND)
        flags = MS_REMOUNT | MS_BIND | MS_NOSUID | _kept_flags(path)
        if not entry.get("device"):
            flags |= MS_NODEV
        if not entry.get("writable"):
            flags |= MS_RDONLY
        _mount(libc, None, path, None, flags)
        os.close(fd)
    for target, content in view.get("files", {}).items():
        _make_target(root + target, False)
        _write(root + target, content)
    for target, dest in view.get("symlinks", {}).items():
        os.makedirs(os.path.dirname(root + target), mode=0o755, exist_ok=True)
        if not os.path.lexists(root + target):
            os.symlink(dest, root + target)
    hidden = []
    for target in view.get("cover", []):  # answers, sockets: whatever lies inside a bind that must not be reached
        path = root + target
        if os.path.islink(path):
            pass  # a link resolves inside the view, whose allow-list already decides what it reaches
        elif os.path.isdir(path):
            _mount(libc, "tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "mode=000,size=4k")
        elif os.path.lexists(path) and not os.path.islink(path):
            _mount(libc, "/dev/null", path, None, MS_BIND)
        hidden.append(target)  # covered, or never in the view
    proc = root + "/proc"
    os.makedirs(proc, mode=0o555, exist_ok=True)
    try:
        _mount(libc, "proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        proc_kind = "own pid namespace"
    except OSError:
        proc_kind = "none"  # never the host's /proc: it would show every host process
    os.makedirs(root + "/.old", mode=0o700, exist_ok=True)
    return hidden, proc_kind


def _pivot(libc, root):
    number = _PIVOT_ROOT.get(os.uname().machine)
    os.chdir(root)
    if number is not None:
        _check(libc.syscall(number, b".", b".old"), "pivot_root")
        os.chdir("/")
        _check(libc.umount2(b"/.old", MNT_DETACH), "detach the host root")
        os.rmdir("/.old")
    else:  # an architecture whose pivot_root number we do not know: move the new root over / and chroot into it
        _mount(libc, root, "/", None, 0x2000)  # MS_MOVE
        os.chroot(".")
        os.chdir("/")
    _mount(libc, None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


# -- the experiment -----------------------------------------------------------------------------------------------


def _become_experiment(libc, config, status):
    """In the experiment's process: limits, identity, then exec. Never returns."""
    for name, value in config.get("rlimits", {}).items():
        resource.setrlimit(getattr(resource, name), (value, value))
    uid, gid = config.get("uid"), config.get("gid")
    if uid is not None and os.geteuid() == 0 and not status.get("user_namespace"):
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)  # from root to a plain uid: every capability is gone
        status["user"] = f"uid {uid}"
    elif status.get("user_namespace"):
        status["user"] = f"uid {os.geteuid()} in a user namespace, no capabilities"
    if os.geteuid() == 0:  # still root (no namespaces and no reachable interpreter): at least no capabilities
        for cap in range(64):
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:
                break
        status["user"] = "root without capabilities"
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    cpus = config.get("cpus")
    if cpus:
        try:
            os.sched_setaffinity(0, cpus)
        except OSError:
            pass
    os.chdir(config["cwd"])
    parent = os.getppid()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # set last: a change of user clears it
    if os.getppid() != parent:
        os._exit(137)
    _report(status)
    os.execve(config["argv"][0], config["argv"], config["env"])


def _report(status):
    try:
        os.write(3, json.dumps(status).encode())
        os.close(3)  # the executor reads until EOF: closing here means "about to exec"
    except OSError:
        pass


def _close(fd):
    try:
        os.close(fd)
    except OSError:
        pass


def _relay(wait_status):
    """End this process the way the process it waited for ended: same exit code, or same signal."""
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(wait_status) if os.WIFEXITED(wait_status) else 1)


def _init(libc, config, status, report_w):
    """pid 1 of the experiment's pid namespace: build its root, start it, reap everything, pass on how it ended."""
    try:
        view = config.get("view")
        if view is not None:
            _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
            status["hidden"], status["proc"] = _build_root(libc, view, view["staging"])
            _pivot(libc, view["staging"])
            status["filesystem"] = "allow-list root"
            status["tmp"] = "private"
    except (OSError, SetupError) as exc:
        status["setup_error"] = str(exc)
        _report(status)
        os._exit(SETUP_FAILED)
    child = os.fork()
    if child == 0:
        os.close(report_w)
        _become_experiment(libc, config, status)
    os.close(3)
    ended = None
    while True:  # reap orphans as well as the experiment, which is what ends init (and with it the namespace)
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        if pid == child:
            ended = wait_status
            break
    try:  # what the experiment left running: the kernel kills it when init exits, but the executor reports it
        left = sum(1 for name in os.listdir("/proc") if name.isdigit() and name != "1")
    except OSError:
        left = 0
    os.write(report_w, f"{ended if ended is not None else 0} {left}".encode())
    os._exit(0)


def main():
    config = json.loads(sys.argv[1])
    status = {"network": "none", "tmp": "shared", "user": "same", "pid": "shared", "filesystem": "host",
              "proc": "host", "hidden": []}
    for procs_file in config.get("cgroup_procs", []):
        _write(procs_file, str(os.getpid()))
    libc = _libc()
    # die with whatever launched us (a killed crew, a lost Ray worker) instead of running on unwatched
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if not _enter_namespaces(libc, config, status):
        if config.get("require_namespaces"):
            status["setup_error"] = f"this machine refuses the namespaces the sandbox needs ({status['namespace_error']})"
            _report(status)
            os._exit(SETUP_FAILED)
        config["uid"] = config.get("fallback_uid")
        _close(4)
        _become_experiment(libc, config, status)  # no private world: the experiment is this process
    report_r, report_w = os.pipe()
    init = os.fork()
    if init == 0:
        os.close(report_r)
        os.close(4)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        _init(libc, config, status, report_w)
    os.close(report_w)
    os.close(3)
    _, init_status = os.waitpid(init, 0)
    ended = os.read(report_r, 64).split()
    if os.WIFEXITED(init_status) and os.WEXITSTATUS(init_status) == 0 and len(ended) == 2:
        _ending({"left": int(ended[1])})
        _relay(int(ended[0]))
    _ending({"left": 0})
    _relay(init_status)


def _ending(report):
    try:
        os.write(4, json.dumps(report).encode())
        os.close(4)
    except OSError:
        pass


if __name__ == "__main__":
    main()
