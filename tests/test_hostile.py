"""Hostile experiments against the sandbox itself: each attack is stated with its expected outcome (contained,
rejected or caught), and the host is checked afterwards. The slow, whole-run attacks live in bench/hostile.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from crew.sandbox import Launch, Limits, LocalExecutor

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox's isolation is Linux mechanisms")

MiB = 1024**2


@pytest.fixture
def executor(tmp_path):
    return LocalExecutor(root=tmp_path / "experiments")


def _confined(result) -> None:
    """As root the kernel always grants namespaces, so anything but full confinement is a regression; elsewhere a
    machine may refuse user namespaces, and the attack is then out of reach of this test."""
    if result.isolation["confined"] != "yes":
        if os.getuid() == 0:
            pytest.fail(f"root could not confine the experiment: {result.isolation}")
        pytest.skip(f"this machine grants no namespaces: {result.isolation['confined']}")


def test_root_only_files_are_out_of_reach(executor, tmp_path):
    # attack: read /etc/shadow, /root and a mode-600 secret beside the data, then fail so the text reaches stderr
    # expected: contained — none exists in the experiment's world or none is readable by its user
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("a,y\n1,0\n")
    secret = data / "cloud-credentials"
    secret.write_text("AKIA-SECRET-TOKEN")
    secret.chmod(0o600)
    code = ("import os, sys\nfound = []\n"
            f"for path in ['/etc/shadow', '/root/.ssh/id_rsa', '/root/.bashrc', {str(secret)!r}]:\n"
            "    try:\n        found.append(open(path).read())\n    except OSError as exc:\n"
            "        print('refused', path, type(exc).__name__)\n"
            "print('uid', os.getuid())\nsys.exit('leak: ' + '|'.join(found))")
    result = executor.run(Launch(code=code, data_dir=str(data)))
    _confined(result)
    assert "AKIA" not in result.stderr_tail and "root:" not in result.stderr_tail, result.stderr_tail
    assert result.stdout_tail.count("refused") == 4 and "uid 0" not in result.stdout_tail
    assert (data / "train.csv").read_text() == "a,y\n1,0\n"


def test_signals_do_not_cross_the_sandbox(executor):
    # attack: SIGSTOP the crew process that launched it, then SIGKILL a host process it was told the pid of
    # expected: contained — host pids do not exist in its pid namespace; crew and the host process run on
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        code = ("import os, signal\n"
                f"for pid, sig in [({os.getpid()}, signal.SIGSTOP), ({sleeper.pid}, signal.SIGKILL), (-1, signal.SIGKILL)]:\n"
                "    try:\n        os.kill(pid, sig) if pid > 0 else print('visible pids', len([p for p in "
                "os.listdir('/proc') if p.isdigit()]))\n        print('sent', pid)\n"
                "    except OSError as exc:\n        print('refused', pid, exc.errno)")
        started = time.monotonic()
        result = executor.run(Launch(code=code, limits=Limits(wall_time=20)))
        _confined(result)
        assert time.monotonic() - started < 15  # crew was never stopped
        assert f"refused {os.getpid()}" in result.stdout_tail and f"refused {sleeper.pid}" in result.stdout_tail
        assert "visible pids 2" in result.stdout_tail  # its init and itself
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def _listen(path_or_name: str) -> tuple[socket.socket, list[bytes]]:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path_or_name)
    if not path_or_name.startswith("\0"):
        os.chmod(path_or_name, 0o777)
    server.listen(4)
    server.settimeout(0.2)
    received: list[bytes] = []

    def serve() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            received.append(conn.recv(100) or b"connected")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, received


def test_host_unix_sockets_are_unreachable(executor, tmp_path):
    # attack: connect to a world-writable unix socket in the data folder, one in the host's /tmp, and an abstract
    # one, and send data; expected: contained — no path socket is in its world, abstract names are per network
    # namespace, and nothing reaches any of the three servers
    data = tmp_path / "data"
    data.mkdir()
    in_data, in_tmp = str(data / "agent.sock"), f"/tmp/crew-hostile-{os.getpid()}.sock"
    abstract = f"\0crew-hostile-{os.getpid()}"
    servers = [_listen(in_data), _listen(in_tmp), _listen(abstract)]
    try:
        code = ("import socket\n"
                f"for name in [{in_data!r}, {in_tmp!r}, {abstract!r}]:\n"
                "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
                "    try:\n        s.connect(name)\n        s.sendall(b'pwned')\n        print('CONNECTED', repr(name))\n"
                "    except OSError as exc:\n        print('refused', repr(name), exc.errno)")
        result = executor.run(Launch(code=code, data_dir=str(data), limits=Limits(wall_time=20)))
        _confined(result)
        assert "CONNECTED" not in result.stdout_tail and result.stdout_tail.count("refused") == 3, result.stdout_tail
        time.sleep(0.5)
        assert all(received == [] for _, received in servers)
    finally:
        for server, _ in servers:
            server.close()
        Path(in_tmp).unlink(missing_ok=True)


def test_links_and_pipes_in_the_work_folder_are_never_followed(executor, tmp_path):
    # attack: leave metrics.json as a symlink to a mode-000 host file, predictions.csv to hidden answers, oof.csv as
    # a FIFO that would block a reader, and stdout.txt replaced by a symlink to the secret
    # expected: contained — the executor removes every link and special file before crew reads the folder
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    secret.chmod(0)
    answers = tmp_path / "grading" / "answers.csv"
    answers.parent.mkdir()
    answers.write_text("id,y\n1,1\n")
    code = ("import os\n"
            f"os.symlink({str(secret)!r}, 'metrics.json')\nos.symlink({str(answers)!r}, 'predictions.csv')\n"
            "os.mkfifo('oof.csv')\nos.remove('stdout.txt')\n"
            f"os.symlink({str(secret)!r}, 'stdout.txt')\nos.makedirs('sub')\nos.symlink('/', 'sub/root')\n")
    started = time.monotonic()
    result = executor.run(Launch(code=code, hide=[str(answers.parent)]))
    assert time.monotonic() - started < 20
    workdir = Path(result.workdir)
    assert result.files == {}, result.files
    assert "TOP-SECRET" not in result.stdout_tail and "removed" in result.detail
    leftovers = [p for p in workdir.rglob("*") if p.is_symlink() or not (p.is_file() or p.is_dir())]
    assert leftovers == []


def test_disk_quota_stops_an_experiment_that_fills_the_disk(executor):
    # attack: many files each under the per-file cap, together far over the quota
    # expected: contained — killed with reason "disk" while writing; what it wrote is removed, so it cannot spend
    # the run's disk budget for the experiments after it
    code = ("import os\nblock = os.urandom(1024 * 1024)\nfor i in range(400):\n"
            "    with open(f'fill-{i}.bin', 'wb') as handle:\n        for _ in range(8):\n            handle.write(block)\n")
    quota = 64 * MiB
    result = executor.run(Launch(code=code, limits=Limits(wall_time=60, disk=quota, output_bytes=16 * MiB)))
    assert result.reason == "disk" and "quota" in result.detail, result
    assert set(result.files) <= {"code.py", "stdout.txt", "stderr.txt"}, result.files


def test_file_count_quota_stops_an_inode_flood(executor):
    # attack: a million empty files; expected: contained — killed with reason "disk" at the file limit
    code = "import os\nos.makedirs('flood')\nfor i in range(1_000_000):\n    open(f'flood/{i}', 'w').close()"
    result = executor.run(Launch(code=code, limits=Limits(wall_time=60, max_files=2000)))
    assert result.reason == "disk" and "files" in result.detail, result


def test_the_stage_cache_is_read_only_to_experiments(executor, tmp_path):
    # attack: overwrite a cached stage so later experiments load the attacker's object; expected: rejected by the
    # filesystem — the shared folder is read-only inside the sandbox
    shared = tmp_path / "stage_cache"
    shared.mkdir()
    (shared / "features-abc.npz").write_bytes(b"trusted")
    code = ("import os\npath = os.path.join(os.environ['CREW_SHARED'], 'features-abc.npz')\n"
            "for target in [path, path + '.new']:\n"
            "    try:\n        open(target, 'wb').write(b'poisoned')\n        print('WROTE', target)\n"
            "    except OSError as exc:\n        print('refused', exc.errno)")
    result = executor.run(Launch(code=code, shared_dir=str(shared)))
    _confined(result)
    assert "WROTE" not in result.stdout_tail and result.stdout_tail.count("refused") == 2
    assert (shared / "features-abc.npz").read_bytes() == b"trusted" and sorted(os.listdir(shared)) == ["features-abc.npz"]


def test_answers_anywhere_outside_the_data_files_are_not_in_its_world(executor, tmp_path):
    # attack: os.walk('/') for any answers file: the task's grading folder, a stray copy in the task folder and one
    # in the run's parent folder (read by relative path too); expected: contained — only the task's data files exist
    task = tmp_path / "task"
    (task / "grading").mkdir(parents=True)
    (task / "train.csv").write_text("id,y\n1,0\n")
    (task / "test.csv").write_text("id\n2\n")
    for copy in [task / "grading" / "answers.csv", task / "answers-copy.csv", tmp_path / "answers.csv"]:
        copy.write_text("id,y\n2,1\n")
    code = ("import os\nfound = []\nfor top, dirs, files in os.walk('/'):\n"
            "    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ('/proc', '/sys', '/usr', '/dev')]\n"
            "    found += [os.path.join(top, f) for f in files if 'answers' in f]\n"
            "print('found', found)\nprint('data', sorted(os.listdir(os.environ['CREW_DATA'])))\n"
            "try:\n    print(open('../../answers.csv').read())\nexcept OSError as exc:\n    print('refused', exc.errno)")
    result = executor.run(Launch(code=code, data_dir=str(task), data_files=["train.csv", "test.csv"],
                                 limits=Limits(wall_time=60)))
    _confined(result)
    assert "found []" in result.stdout_tail, result.stdout_tail
    assert "data ['test.csv', 'train.csv']" in result.stdout_tail and "refused" in result.stdout_tail


def test_a_rewritten_code_file_is_restored_after_the_run(executor):
    # attack: replace code.py with innocent-looking code so the reviewer's leakage check reads the wrong script;
    # expected: contained — the work folder's code.py is what crew launched
    code = "open('code.py', 'w').write('print(1)')\n# the real experiment"
    result = executor.run(Launch(code=code))
    assert (Path(result.workdir) / "code.py").read_text() == code


def test_a_chat_models_code_is_refused_where_experiments_cannot_be_confined(tmp_path, monkeypatch):
    # a machine that grants no namespaces (seen through the probe crew doctor uses): a run whose modeler is a chat
    # model stops before anything runs, and says how to proceed; the expert's own scripts still run there
    from crew import ChatBrain, CrewError
    from crew.testing import ScriptedChatModel, tiny_task
    from crew.workflows import solve as solve_module

    monkeypatch.setattr(solve_module, "confinement", lambda: {"confined": "NO: unshare refused (EPERM)"})
    task = tiny_task(tmp_path / "task")
    brain = {"modeler": ChatBrain(ScriptedChatModel(answers=[]))}
    with pytest.raises(CrewError, match=r"cannot confine experiments.*--allow-unconfined"):
        solve_module.solve(task, out=tmp_path / "run", brain=brain, wall_time=30)
    assert not (tmp_path / "run" / "experiments").exists()
    solve_module._require_confinement(allowed=True)  # the user's explicit choice
    assert solve_module._writes_code_with_llm(brain) and not solve_module._writes_code_with_llm(None)


def test_the_audit_hook_reports_what_the_run_did(executor, tmp_path):
    # attack: paths built at run time (no syntax check sees them) to reach hidden answers and the host, a shell, a
    # connection attempt; expected: caught — each is an audit event, touching the answers is a failure
    task = tmp_path / "task"
    (task / "grading").mkdir(parents=True)
    (task / "train.csv").write_text("a\n1\n")
    hidden = str(task / "grading")
    code = ("import os, socket\nparts = ['grad', 'ing']\n"
            f"for path in [os.path.join({str(task)!r}, ''.join(parts), 'answers.csv'), '/ho' + 'me']:\n"
            "    try:\n        open(path).read()\n    except OSError:\n        pass\n"
            "os.system('true')\ntry:\n    socket.create_connection(('10.1.2.3', 80), timeout=1)\nexcept OSError:\n"
            "    pass\nimport numpy, sklearn.linear_model\nopen('metrics.json', 'w').write('{}')\n")
    result = executor.run(Launch(code=code, data_dir=str(task), data_files=["train.csv"], hide=[hidden]))
    assert result.reason == "ok", result.stderr_tail
    seen = {(e["level"], e["event"]) for e in result.audit}
    assert ("fail", "hidden path") in seen and ("warn", "outside its world") in seen
    assert ("warn", "socket") in seen and any("os.system" in e["detail"] for e in result.audit)
    # reading its own data, importing the runtime and writing its folder are not events
    assert not any("train.csv" in e["detail"] or "site-packages" in e["detail"] or "metrics.json" in e["detail"]
                   for e in result.audit), result.audit


def test_a_child_cannot_forge_events_through_a_reused_descriptor(executor):
    # the hook writes only to crew's own file: a child whose fd 5 is something else writes nothing there
    code = ("import os, subprocess, sys\n"
            "subprocess.run([sys.executable, '-c', \"import os; f = open('decoy.txt', 'w'); open('/home')\"], "
            "close_fds=True)\nprint('done')")
    result = executor.run(Launch(code=code))
    assert result.reason == "ok" and (Path(result.workdir) / "decoy.txt").read_text() == ""


def test_a_spent_run_disk_quota_stops_launches_but_not_the_run(tmp_path):
    # the run's budget.disk caps what all its experiments leave; past it nothing launches, and the run still ends
    # in time with its valid (constant) submission
    from crew import Blackboard, Task
    from crew.testing import tiny_task
    from crew.workflows.solve import solve

    path = tiny_task(tmp_path / "task")
    path.write_text(path.read_text() + "budget:\n  disk: 1MiB\n  max_experiments: 4\n")
    started = time.monotonic()
    summary = solve(path, out=tmp_path / "run", wall_time=25, workers=1)
    assert time.monotonic() - started < 25 * 1.05 + 10
    board = Blackboard(tmp_path / "run" / "blackboard.sqlite")
    assert board.experiments() and all(e.status == "rejected" and "disk quota" in (e.error or "")
                                       for e in board.experiments())
    assert Path(summary["submission"]).exists() and Task.load(path).budget.disk == 1024**2
