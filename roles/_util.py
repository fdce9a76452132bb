"""Helpers the role modules share: reading the task from graph state, writing files into the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from crew import Action, Task


def as_task(value: Any) -> Task:
    """The state's `task` may be a Task or the path of its task.yaml (paths survive checkpoints)."""
    return value if isinstance(value, Task) else Task.load(Path(value))


class WriteFile(Action):
    """Write a text file into the run folder; the only way roles touch the disk."""

    name: ClassVar[str] = "write_file"

    def run(self, *, path: Path, text: str) -> str:  # type: ignore[override]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return str(path)

    def describe(self, result: Any) -> str:
        return f"wrote {result}"


def tiny_task(workdir: Path) -> Path:
    """Write a 40-row binary task into `workdir` for roles' `example_state` (what `check_role` runs them on)."""
    workdir = Path(workdir)
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    train = ["id,x1,x2,colour,y"] + [f"{i},{i % 7},{(i * 3) % 11},{'red' if i % 3 else 'blue'},{int(i % 7 > 3)}"
                                     for i in range(40)]
    test = ["id,x1,x2,colour"] + [f"{i},{i % 5},{i % 9},{'red' if i % 2 else 'blue'}" for i in range(40, 50)]
    (workdir / "data" / "train.csv").write_text("\n".join(train) + "\n", encoding="utf-8")
    (workdir / "data" / "test.csv").write_text("\n".join(test) + "\n", encoding="utf-8")
    (workdir / "task.yaml").write_text(
        "name: tiny\nkind: tabular\ndata:\n  train: data/train.csv\n  test: data/test.csv\ntarget: y\n"
        "id_column: id\nmetric: roc_auc\n", encoding="utf-8")
    return workdir / "task.yaml"
