"""Helpers the role modules share: reading the task from graph state, writing files into the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from crew import Action, Blackboard, Experiment, Task

_LOADED: dict[Path, tuple[tuple[tuple[str, int, int], ...], Task]] = {}


def _stamp(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    stats = []
    for path in paths:
        try:
            info = path.stat()
        except OSError:
            return ()
        stats.append((str(path), info.st_mtime_ns, info.st_size))
    return tuple(stats)


def _task_files(task: Task, yaml_path: Path) -> list[Path]:
    data = task.data
    named = [data.train, data.test, data.sample_submission] if data is not None else []
    return [yaml_path, *(task.path(n) for n in named if n)]


def as_task(value: Any) -> Task:
    """The state's `task` may be a Task or the path of its task.yaml (paths survive checkpoints).

    Every role of every experiment branch reads the task, and loading
    re-checks all its data; a path is loaded once and reused while the
    task.yaml and its data files are unchanged.
    """
    if isinstance(value, Task):
        return value
    path = Path(value).resolve()
    yaml_path = path / "task.yaml" if path.is_dir() else path
    cached = _LOADED.get(yaml_path)
    if cached is not None and cached[0] and _stamp([Path(p) for p, _, _ in cached[0]]) == cached[0]:
        return cached[1]
    task = Task.load(yaml_path)
    _LOADED[yaml_path] = (_stamp(_task_files(task, yaml_path)), task)
    return task


def add_proposed(blackboard: Blackboard, experiment: Experiment, *, error: str | None = None) -> Experiment | None:
    """Put a proposal on the blackboard: refused with `error`, or a cached copy of a finished experiment with the
    same code (SELA's cache: it is not run again), or proposed. Returns the twin it copies, if any."""
    cached = blackboard.find_by_code_hash(experiment.code_hash) if experiment.code and error is None else None
    if error is not None:
        experiment = experiment.model_copy(update={"status": "rejected", "error": error})
    elif cached is not None:
        experiment = experiment.model_copy(update={
            "status": "cached", "score": cached.score, "metrics": cached.metrics, "cv_folds": cached.cv_folds,
            "artifacts": cached.artifacts, "wall_time": 0.0, "error": f"same code as {cached.id}; not rerun"})
    blackboard.add_experiment(experiment)
    return cached


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
