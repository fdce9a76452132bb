"""Static checks: each hostile pattern is found by rule and line; rendered expert pipelines are clean."""

from __future__ import annotations

import pytest

from crew import Task
from crew.tools.catalogue import FAMILIES as MODELS
from crew.tools.codecheck import check_code, check_kernel
from crew.tools.pipelines import PipelineSpec, render
from tests.conftest import EXAMPLE_TASK

FIT = "from sklearn.linear_model import LogisticRegression\nm = LogisticRegression().fit(X, y)\np = m.predict(X)\n"


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        ("import socket\ns = socket.create_connection(('127.0.0.1', 80))", "network"),
        ("from urllib.request import urlopen\nurlopen('x')", "network"),
        ("import pandas as pd\npd.read_csv('https://example.com/train.csv')", "network"),
        ("mod = __import__('socket')", "network"),
        ("import importlib\nimportlib.import_module('requests')", "network"),
        ("import os\nos.system('ls')", "shell"),
        ("import subprocess\nsubprocess.run(['ls'])", "shell"),
        ("from os import system as run\nrun('ls')", "shell"),
        ("import os\nos.execv('/bin/sh', ['sh'])", "shell"),
        ("exec(open('x.py').read())", "shell"),
        ("exec('import socket')", "network"),
        ("import os\nos.system('pip install lightgbm')", "install"),
        ("import sys\ncmd = [sys.executable, '-m', 'pip', 'install', 'x']", "install"),
        ("import pip", "install"),
        ("import pandas as pd\npd.read_csv('../grading/answers.csv')", "answers"),
        ("import os\nopen(os.path.join(os.environ['CREW_DATA'], 'grading', 'answers.csv'))", "answers"),
        ("open('/tmp/outside', 'w').write('x')", "write_outside"),
        ("from pathlib import Path\nPath('/etc/crew').write_text('x')", "write_outside"),
        ("import pandas as pd\npd.DataFrame().to_csv('../../elsewhere.csv')", "write_outside"),
        ("import shutil\nshutil.copy('oof.csv', '/home/user/oof.csv')", "write_outside"),
        ("import pandas as pd\npd.DataFrame({'id': ids, 'y': 1}).to_csv('predictions.csv')", "hand_labels"),
        ("def broken(:\n  pass", "syntax"),
    ],
)
def test_each_hostile_pattern_is_found(code, rule):
    findings = check_code(code)
    assert rule in {f.rule for f in findings}, findings
    assert all(f.line >= 1 for f in findings)


def test_forbidden_paths_on_this_machine_are_found():
    findings = check_code("import pandas as pd\npd.read_csv('/srv/tasks/x/hidden/y.csv')", forbidden_paths=["/srv/tasks/x/hidden"])
    assert [f.rule for f in findings] == ["answers"]


def test_comments_and_docstrings_that_mention_rules_are_not_findings():
    code = '"""We never import socket or call os.system here."""\n# pip install nothing\n' + FIT
    assert check_code(code) == []


def test_writes_inside_the_work_folder_are_fine():
    code = FIT + "import pandas as pd\npd.DataFrame({'p': p}).to_csv('predictions.csv')\nopen('notes/log.txt', 'w')\n"
    assert check_code(code) == []


def test_allowed_roots_permit_absolute_paths_under_them():
    assert check_code("open('/work/run/x.txt', 'w')", allowed_roots=["/work/run"]) == []
    assert check_code("open('/work/runner/x.txt', 'w')", allowed_roots=["/work/run"])[0].rule == "write_outside"


def test_a_long_literal_of_repeated_labels_is_a_warning():
    labels = ", ".join(["'Adelie'", "'Gentoo'"] * 15)
    findings = check_code(FIT + f"labels = [{labels}]\n")
    assert [(f.rule, f.blocking) for f in findings] == [("hand_labels", False)]
    assert check_code(FIT + f"cols = [{', '.join(repr(f'c{i}') for i in range(30))}]\n") == []


@pytest.mark.parametrize("model", list(MODELS))
def test_rendered_pipelines_have_no_findings(model):
    task = Task.load(EXAMPLE_TASK)
    code = render(PipelineSpec(model=model, numeric=["a"], categorical=["b"], tune_trials=3), task)
    assert check_code(code, forbidden_paths=[str(task.root / "grading")]) == []


# -- kernel candidates --------------------------------------------------------------------------

KERNEL = '''import numba
import numpy as np


@numba.njit(boundscheck=False)
def prefix_sum(x):
    out = np.empty(len(x), dtype=np.int64)
    total = 0
    for i in range(len(x)):
        total += x[i]
        out[i] = total
    return out
'''


def test_a_plain_kernel_has_no_findings():
    assert check_kernel(KERNEL, scorer="score.py") == []


@pytest.mark.parametrize(("code", "rule"), [
    ("import functools\n\n@functools.lru_cache(maxsize=None)\ndef f(n):\n    return n\n", "memo"),
    ("_SEEN = {}\n\ndef f(x):\n    key = x.tobytes()\n    _SEEN[key] = x.cumsum()\n    return _SEEN[key]\n", "memo"),
    ("_LAST = []\n\ndef f(x):\n    _LAST.append(x)\n    return x\n", "memo"),
    ("RESULT = None\n\ndef f(x):\n    global RESULT\n    RESULT = x\n    return x\n", "memo"),
    ("import time\ntime.perf_counter = lambda: 0.0\n", "scorer"),
    ("from time import perf_counter\nimport sys\nsys.modules['time'].perf_counter = perf_counter\n", "scorer"),
    ("import score\n\ndef f(x):\n    return score.reference(x)\n", "scorer"),
    ("import __main__\n\ndef f(x):\n    return __main__.reference(x)\n", "scorer"),
    ("def f(x):\n    return open('score.py').read()\n", "scorer"),
    ("import sys\n\ndef f(x):\n    return sys._getframe(1).f_locals['expected']\n", "scorer"),
])
def test_kernel_cheats_are_blocking_findings(code, rule):
    findings = check_kernel(code, scorer="score.py")
    assert any(f.rule == rule and f.blocking for f in findings), findings
