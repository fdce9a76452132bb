"""Loaded at start-up by every Python process of an experiment (its folder is on PYTHONPATH): an audit hook that
records what the experiment does at run time and what no syntax check sees (paths built from strings, code loaded
late): opens and listings outside its world or of hidden paths, processes other than Python (notes for system
tools), shells, sockets, native libraries it brought. Each event goes, once, as a JSON line to the file descriptor
crew handed it; crew turns them into reviewer findings. An audit hook cannot be removed once added; a process that
execs something else or clears its environment leaves the hook behind, and that spawn is itself recorded.
"""

import os
import sys


def _install():
    fd = os.environ.get("CREW_AUDIT_FD")
    ident = os.environ.get("CREW_AUDIT_ID")
    if not fd or not ident:
        return
    fd = int(fd)
    try:
        info = os.fstat(fd)
    except OSError:
        return
    if f"{info.st_dev}:{info.st_ino}" != ident:  # not crew's file: a child whose fds were closed and reused
        return
    import json

    def prefixes(name):
        return tuple(p.rstrip("/") + "/" for p in os.environ.get(name, "").split(os.pathsep) if p)

    allowed, runtime = prefixes("CREW_AUDIT_ALLOW"), prefixes("CREW_AUDIT_RUNTIME")
    hidden = prefixes("CREW_AUDIT_HIDDEN")
    python = {sys.executable, os.path.realpath(sys.executable)}
    seen = set()

    def emit(level, event, detail):
        key = (event, detail)
        if key in seen or len(seen) >= 200:
            return
        seen.add(key)
        try:
            os.write(fd, (json.dumps({"level": level, "event": event, "detail": detail[:300]}) + "\n").encode())
        except OSError:
            pass

    def path_of(value):
        if isinstance(value, bytes):
            value = os.fsdecode(value)
        return os.path.abspath(value) if isinstance(value, str) else None

    def under(path, folders):
        return (path.rstrip("/") + "/").startswith(folders)

    def hook(event, args):
        try:
            if event in ("open", "os.listdir", "os.scandir"):
                path = path_of(args[0]) if args else None
                if path is None:
                    return
                if hidden and under(path, hidden):
                    emit("fail", "hidden path", f"{event} {path}: a path crew hides from experiments (answers)")
                elif not under(path, allowed):
                    emit("warn", "outside its world", f"{event} {path}")
            elif event in ("subprocess.Popen", "os.posix_spawn", "os.exec", "os.spawn"):
                exe = path_of(args[0])
                argv = [str(a)[:40] for a in list(args[1] or [])[:4]] if len(args) > 1 else []
                if exe not in python and os.path.basename(str(args[0])) not in ("python", "python3"):
                    # a system tool (lscpu for a core count) is ordinary; a program it wrote or fetched is not
                    ordinary = "/" not in str(args[0]) or under(exe, runtime)
                    emit("note" if ordinary else "warn", "process", f"{event} {args[0]!s} {' '.join(argv)}")
            elif event == "os.system":
                emit("warn", "process", f"os.system (a shell) {str(args[0])[:200]}")
            elif event in ("socket.connect", "socket.sendto", "socket.bind"):
                emit("warn", "socket", f"{event} {args[1]!r}")
            elif event == "ctypes.dlopen":
                name = path_of(args[0]) if args and isinstance(args[0], (str, bytes)) and "/" in os.fsdecode(args[0]) \
                    else None
                if name and not under(name, runtime):
                    emit("warn", "native code", f"loaded {name}, a library that is not part of the runtime")
        except Exception:  # the hook must never change what the experiment does
            pass

    sys.addaudithook(hook)


_install()
