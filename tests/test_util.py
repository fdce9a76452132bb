"""Roles' shared helpers: the task is loaded once per path and reloaded when its files change."""

from __future__ import annotations

import shutil

from crew import Task
from crew.roles._util import as_task
from tests.conftest import EXAMPLE_TASK


def test_as_task_reuses_a_loaded_task_until_its_files_change(tmp_path):
    shutil.copytree(EXAMPLE_TASK, tmp_path / "task")
    first = as_task(str(tmp_path / "task" / "task.yaml"))
    assert as_task(tmp_path / "task") is first
    train = tmp_path / "task" / "data" / "train.csv"
    train.write_text(train.read_text() + "", encoding="utf-8")
    lines = train.read_text().splitlines()
    train.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    second = as_task(str(tmp_path / "task" / "task.yaml"))
    assert second is not first and second.shapes["train"][0] == first.shapes["train"][0] - 1
    given = Task.load(EXAMPLE_TASK)
    assert as_task(given) is given
