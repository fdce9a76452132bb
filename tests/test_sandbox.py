"""Hostile experiments: each is contained with the right Result reason, and the next experiment runs normally."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crew.sandbox import Launch, Limits, LocalExecutor, cgroup_support

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox's limits are Linux mechanisms")

MiB = 1024**2


@pytest.fixture
def executor(tmp_path):
    return LocalExecutor(root=tmp_path / "experiments")


def _healthy(executor):
    result = executor.run(Launch(code="import numpy\nprint(numpy.arange(4).sum())", limits=Limits(wall_time=30)))
    assert result.reason == "ok" and result.stdout_tail.strip() == "6", result
    return result


def _alive_with_marker(launch_id: str) -> list[int]:
    marker = f"CREW_EXPERIMENT_ID={launch_id}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_ok_experiment_reports_output_files_and_isolation(executor):
    result = executor.run(Launch(code="open('metrics.json', 'w').write('{}')\nprint('done')"))
    assert result.reason == "ok" and result.exit_code == 0 and result.signal is None
    assert result.stdout_tail == "done\n" and result.files == {"metrics.json": 2}
    assert result.wall_time > 0 and result.peak_memory and result.peak_memory > 1 * MiB
    assert set(result.isolation) >= {"memory", "processes", "network", "tmp", "user", "output"}


def test_a_relative_root_is_still_the_writable_work_folder(tmp_path, monkeypatch):
    # `crew solve --out run` gives the executor a relative root; under a private /tmp the launcher's chdir
    # once resolved it against the covered, read-only tree, and every experiment failed writing oof.csv
    monkeypatch.chdir(tmp_path)
    result = LocalExecutor(root="experiments").run(Launch(code="open('oof.csv', 'w').write('1')\nprint('ok')"))
    assert result.reason == "ok" and result.files == {"oof.csv": 1}, result


def test_error_keeps_the_traceback(executor):
    result = executor.run(Launch(code="raise ValueError('broken pipeline')"))
    assert result.reason == "error" and result.exit_code == 1 and "broken pipeline" in result.stderr_tail


def test_infinite_loop_is_killed_within_two_seconds_of_its_limit(executor):
    result = executor.run(Launch(code="while True:\n    pass", limits=Limits(wall_time=2)))
    assert result.reason == "timeout" and result.wall_time < 2 + 2
    _healthy(executor)


def test_memory_bomb_is_stopped_at_its_limit(executor):
    limit = 200 * MiB
    code = "blocks = []\nwhile True:\n    blocks.append(bytearray(16 * 1024 * 1024))"
    result = executor.run(Launch(code=code, limits=Limits(wall_time=60, memory=limit)))
    assert result.reason == "memory", result
    assert result.peak_memory is not None and result.peak_memory <= 1.10 * limit
    _healthy(executor)


def test_fork_bomb_is_contained(executor):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    started = time.monotonic()
    result = executor.run(Launch(code=code, limits=Limits(wall_time=3, max_processes=32)))
    assert result.reason in {"timeout", "killed", "error"} and time.monotonic() - started < 15
    assert _alive_with_marker(result.id) == []
    assert subprocess.run(["true"]).returncode == 0  # the machine still forks
    _healthy(executor)


def test_child_that_outlives_its_parent_is_killed(executor):
    code = ("import os, subprocess, sys\n"
            "subprocess.Popen([sys.executable, '-c', 'import os, time; os.setsid(); time.sleep(300)'])\n"
            "print('parent leaves')")
    result = executor.run(Launch(code=code, limits=Limits(wall_time=20)))
    assert result.reason == "ok" and "left running" in result.detail
    assert _alive_with_marker(result.id) == []


def test_network_is_cut(executor):
    code = ("import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), timeout=2)\n"
            "except OSError as exc:\n    print('refused', exc.errno)\nelse:\n    print('CONNECTED')")
    result = executor.run(Launch(code=code))
    assert "CONNECTED" not in result.stdout_tail and "refused" in result.stdout_tail
    if result.isolation["network"] != "namespace":
        pytest.skip(f"no network namespace here: {result.isolation['network']}")


def test_writes_outside_the_work_folder_do_not_land(executor, tmp_path):
    outside = Path("/tmp/outside")
    outside.unlink(missing_ok=True)
    precious = tmp_path / "precious.txt"
    precious.write_text("keep")
    code = (f"for path in ['/tmp/outside', {str(precious)!r}]:\n    try:\n        open(path, 'w').write('x')\n"
            f"    except OSError as exc:\n        print('refused', path)\nopen('inside.txt', 'w').write('ok')")
    result = executor.run(Launch(code=code))
    assert result.reason == "ok" and result.files == {"inside.txt": 2}
    assert not outside.exists()
    assert precious.read_text() == "keep"


def test_answers_are_hidden(executor, tmp_path):
    answers = tmp_path / "grading"
    answers.mkdir()
    (answers / "answers.csv").write_text("id,y\n1,1\n")
    code = f"print(open({str(answers / 'answers.csv')!r}).read())"
    result = executor.run(Launch(code=code, hide=[str(answers)]))
    assert result.reason == "error" and "id,y" not in result.stdout_tail
    assert result.isolation["hidden"] == str(answers)


def test_a_gigabyte_of_stdout_is_capped(executor):
    cap = 32 * MiB
    code = "import sys\nchunk = 'x' * 1_000_000\nfor _ in range(1024):\n    sys.stdout.write(chunk)"
    result = executor.run(Launch(code=code, limits=Limits(wall_time=60, output_bytes=cap, tail_bytes=100)))
    assert result.reason == "killed" and "output limit" in result.detail
    assert (Path(result.workdir) / "stdout.txt").stat().st_size <= cap and len(result.stdout_tail) == 100
    _healthy(executor)


def test_pip_install_cannot_change_the_environment(executor):
    code = ("import os\nstatus = os.system('pip install --quiet crew-sandbox-canary 2>/dev/null')\n"
            "print('pip status', status)")
    result = executor.run(Launch(code=code, limits=Limits(wall_time=60)))
    assert "pip status 0" not in result.stdout_tail
    assert subprocess.run([sys.executable, "-c", "import crew_sandbox_canary"], capture_output=True).returncode != 0


def test_thread_variables_and_data_location(executor, tmp_path):
    code = "import os\nprint(os.environ['OMP_NUM_THREADS'], os.environ['CREW_DATA'], os.listdir(os.environ['CREW_DATA']))"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("a\n1\n")
    result = executor.run(Launch(code=code, data_dir=str(tmp_path / "data"), limits=Limits(threads=3)))
    assert result.stdout_tail.split(" ", 2)[:2] == ["3", str(tmp_path / "data")] and "train.csv" in result.stdout_tail


def test_isolation_is_reported_honestly(executor):
    result = executor.run(Launch(code="pass"))
    support = cgroup_support()
    assert result.isolation["memory"] == (f"cgroup {support}" if support != "none" else "rlimit (address space)")
    if os.getuid() == 0:
        assert result.isolation["user"] != "same"


def test_overhead_benchmark_runs():
    script = Path(__file__).resolve().parent.parent / "bench" / "sandbox_overhead.py"
    proc = subprocess.run([sys.executable, str(script), "--runs", "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "added by the sandbox:" in proc.stdout and "ratio" in proc.stdout


def test_concurrent_launches_from_threads_each_get_their_cgroup(executor):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: executor.run(Launch(code=f"print({i})", limits=Limits(wall_time=30))), range(8)))
    assert [r.reason for r in results] == ["ok"] * 8
    assert [r.stdout_tail.strip() for r in results] == [str(i) for i in range(8)]
