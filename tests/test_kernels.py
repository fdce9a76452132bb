"""The kernel optimizer's catalogue: every move keeps the kernel's output, and applies only where it can."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from crew.tools.kernels import (
    TRANSFORMS,
    hoist_allocation,
    numba_jit,
    numpy_scan,
    parallel_loops,
    parity_flags,
    transform,
)
from crew.tools.scorer import estimate_run, read_score, scorer_driver

REPO = Path(__file__).resolve().parents[1]
START = (REPO / "examples" / "tasks" / "prefix-sum" / "solution.py").read_text(encoding="utf-8")
ELEMENTWISE = '''import numpy as np


def clip_square(x):
    out = np.empty(len(x), dtype=np.int64)
    for i in range(len(x)):
        v = x[i]
        out[i] = v * v if v > 0 else 0
    return out
'''


def load(code: str) -> types.ModuleType:
    module = types.ModuleType("candidate")
    exec(compile(code, "<candidate>", "exec"), module.__dict__)
    return module


def reference(x: np.ndarray) -> np.ndarray:
    values = x.astype(np.int64)
    positive = (values > 0).astype(np.int64)
    return np.cumsum(values * ((np.cumsum(positive) - positive) % 2))


@pytest.fixture(scope="module")
def chain() -> list[tuple[str, str]]:
    """Every move applied in catalogue order, each to the result of the ones before (when it applies)."""
    code, steps = START, []
    for move in (t for t in TRANSFORMS if t.name != "numpy_scan"):  # the compiled chain; numpy_scan has its own test
        rewritten = move.rewrite(code)
        if rewritten is not None:
            steps.append((move.name, rewritten))
            code = rewritten
    return steps


def test_every_move_that_applies_to_the_start_keeps_its_output(chain):
    x = np.random.default_rng(3).integers(-100, 101, size=5_000, dtype=np.int32)
    names = [name for name, _ in chain]
    assert names[:2] == ["numba_jit", "jit_flags"] and {"branchless", "hoist_allocation", "parity_flags"} <= set(names)
    for name, code in chain:
        got = load(code).prefix_sum(x.copy())
        assert np.array_equal(np.asarray(got, dtype=np.int64), reference(x)), name


def test_the_moves_rewrite_what_they_say(chain):
    final = dict(chain)
    assert "@numba.njit" in final["numba_jit"] and ".tolist()" not in final["numba_jit"]
    assert "boundscheck=False" in final["jit_flags"]
    assert "if positives % 2" not in final["branchless"] and "* (positives % 2 != 0)" in final["branchless"]
    assert "def _prefix_sum_kernel(x, out)" in final["hoist_allocation"]
    assert "positives ^=" in final["parity_flags"] and "% 2" not in final["parity_flags"]


def test_moves_refuse_code_they_do_not_fit():
    assert numba_jit("import numpy as np\n\ndef f(x):\n    return np.cumsum(x)\n") is None  # no loop to compile
    assert parity_flags(numba_jit(START) or "") is not None
    assert parity_flags(numba_jit(START.replace("positives % 2", "positives % 3")) or "") is None
    assert parallel_loops(numba_jit(START) or "") is None  # a scan carries its running total: not parallel
    assert hoist_allocation(START) is None  # nothing compiled to hoist out of


def test_parallel_loops_spreads_independent_iterations_and_keeps_the_result():
    code = parallel_loops(numba_jit(ELEMENTWISE) or "")
    assert code is not None and "numba.prange" in code and "parallel=True" in code
    x = np.random.default_rng(0).integers(-50, 50, size=10_000, dtype=np.int32)
    assert np.array_equal(load(code).clip_square(x), load(ELEMENTWISE).clip_square(x))


def test_unknown_move_names_are_refused_with_the_known_ones():
    with pytest.raises(KeyError, match="numba_jit"):
        transform("vectorise_everything")


def test_the_driver_runs_the_tasks_scorer_on_the_candidate(tmp_path):
    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "score.py").write_text(
        "import importlib.util, json, sys\nspec = importlib.util.spec_from_file_location('c', sys.argv[1])\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print('noise'); print(json.dumps({'valid': m.f(2) == 4, 'score': 1.0, 'args': sys.argv[2:]}))\n")
    driver = tmp_path / "work" / "code.py"
    driver.parent.mkdir()
    driver.write_text(scorer_driver("def f(x):\n    return x * 2\n", "score.py", ["--n", "5"]))
    done = subprocess.run([sys.executable, str(driver)], cwd=driver.parent, capture_output=True, text=True,
                          env={"CREW_DATA": str(tmp_path / "task"), "PATH": "/usr/bin:/bin"}, check=True)
    assert read_score(done.stdout) == {"valid": True, "score": 1.0, "args": ["--n", "5"]}
    assert (driver.parent / "candidate.py").read_text() == "def f(x):\n    return x * 2\n"


def test_read_score_takes_the_last_json_object_line():
    assert read_score('{"valid": false}\nnot json\n{"valid": true, "score": 2}\n[1]\n') == {"valid": True, "score": 2}
    assert read_score("Traceback ...\nValueError\n") is None


def test_the_estimate_grows_from_the_parents_measured_run():
    first = estimate_run([], None, experiment_time=60)
    assert first.seconds == 30 and first.family == "kernel"
    child = estimate_run([(20.0, 300 * 1024**2)], (20.0, 300 * 1024**2), experiment_time=60)
    assert 20 < child.seconds < 60 and child.memory > 300 * 1024**2


def test_numpy_scan_turns_the_running_sums_into_cumulative_sums():
    code = numpy_scan(START)
    assert code is not None and "for " not in code and "np.cumsum" in code
    for n in (1, 2, 1_000):
        x = np.random.default_rng(n).integers(-100, 101, size=n, dtype=np.int32)
        assert np.array_equal(load(code).prefix_sum(x.copy()), reference(x))


@pytest.mark.parametrize("body", [
    "        total += total\n        out[i] = total",  # depends on itself: not a sum
    "        total += i\n        out[i] = total",  # the position as a value
    "        total += value\n        out[i] = total\n        print(total)",  # anything else in the loop
])
def test_numpy_scan_refuses_loops_that_are_not_plain_scans(body):
    code = (f"import numpy as np\n\ndef f(x):\n    out = np.empty(len(x))\n    total = 0\n"
            f"    for i, value in enumerate(x):\n{body}\n    return out\n")
    assert numpy_scan(code) is None
