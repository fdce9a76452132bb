"""Several targets (`targets:` with a column-wise metric): the team solves one column at a time, then the columns
are put side by side.

A column-wise metric is the mean of one metric over the columns (mean
column-wise ROC AUC, MCRMSE, column-wise RMSLE), so the best submission is
the best prediction of each column: each column becomes a task of its own
(`Task.column_task`: that target, the per-column metric, the other targets
dropped from its train table), solved by the whole team in
`RUN_DIR/targets/<column>/run/` (a run folder like any other: report it,
load its model), with the wall time left shared among the columns still to
solve. A constant submission is written first, and each column replaces
its constant as soon as its run ends, so a valid submission always exists.
A column with a single value in train keeps that value. `resume` skips the
columns already solved and continues the one a kill interrupted.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from crew import Task, read_table

__all__ = ["solve_columns"]

_FINISH = 3.0
"""Seconds kept back at the end to put the columns together."""


def _slug(column: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", column).strip("-") or "target"


def _column_folder(task: Task, run_dir: Path, column: str, train: pl.DataFrame) -> Path:
    """`RUN_DIR/targets/<column>/task/`: the column's task.yaml, its train table (the other targets dropped) and
    the test table (a hard link where the file system allows, else a copy)."""
    import os
    import shutil

    assert task.data is not None and task.targets is not None
    folder = run_dir / "targets" / _slug(column) / "task"
    (folder / "data").mkdir(parents=True, exist_ok=True)
    others = [c for c in task.targets if c != column]
    train.drop(others).write_parquet(folder / "data" / "train.parquet")
    test_source = task.path(task.data.test)
    test_copy = folder / "data" / f"test{test_source.suffix.lower()}"
    if not test_copy.exists():
        try:
            os.link(test_source, test_copy)
        except OSError:
            shutil.copyfile(test_source, test_copy)
    spec = task.column_task(column)
    spec["data"] = {"train": "data/train.parquet", "test": f"data/{test_copy.name}"}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return folder


def _constant(task: Task, train: pl.DataFrame, column: str) -> float:
    """The safety net's prediction for a column: its positive rate (a probability) or its mean (clipped at 0 for
    a nonnegative metric)."""
    values = train[column].drop_nulls().cast(pl.Float64)
    mean = values.mean()
    value = float(mean) if isinstance(mean, (int, float)) else 0.0
    return max(0.0, value) if task.metric_info.nonnegative else value


def _write(frame: pl.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    frame.write_csv(tmp)
    tmp.replace(path)


def solve_columns(task: Task, run_dir: Path, *, solve: Callable[..., dict[str, Any]], wall_time: float,
                  resume: bool = False, **solve_options: Any) -> dict[str, Any]:
    """Solve each target column as its own run under `run_dir/targets/` with `solve` (the workflow's own, passed
    in so that the two modules do not import each other), within `wall_time` in all, and write the submission of
    every column side by side; returns solve()'s summary with `final.kind == "columns"`."""
    assert task.data is not None and task.targets is not None
    progress = run_dir / "columns.json"  # the wall time spent before a kill: a resumed run gets the rest
    spent = float(json.loads(progress.read_text(encoding="utf-8"))["elapsed"]) if resume and progress.is_file() else 0.0
    wall_time = max(0.0, wall_time - spent)
    start = time.monotonic()
    train, test = read_table(task.path(task.data.train)), read_table(task.path(task.data.test))
    ids = test.select(task.id_column) if task.id_column else pl.DataFrame({"row": np.arange(test.height)})
    output = run_dir / task.output_name
    columns = {c: pl.Series(c, np.full(test.height, _constant(task, train, c))) for c in task.targets}
    if not (resume and output.is_file()):
        _write(ids.with_columns(*columns.values()), output)  # the safety net: a valid submission from the start
    else:
        kept = pl.read_csv(output)
        columns = {c: kept[c] for c in task.targets}
    finals: dict[str, Any] = {}
    experiments = 0
    to_solve = [c for c in task.targets if train[c].drop_nulls().n_unique() >= 2]
    for column in task.targets:
        column_dir = run_dir / "targets" / _slug(column)
        run = column_dir / "run"
        record = column_dir / "final.json"
        if resume and record.is_file():
            finals[column] = json.loads(record.read_text(encoding="utf-8"))
            continue
        if column not in to_solve:
            finals[column] = {"kind": "constant", "value": float(columns[column][0]), "cv": None,
                              "rationale": f"{column!r} has one value in train"}
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(finals[column]), encoding="utf-8")
            continue
        left = wall_time - (time.monotonic() - start) - _FINISH
        share = left / (len(to_solve) - to_solve.index(column))  # what earlier columns left unused goes to the rest
        if share < 5.0:
            finals[column] = {"kind": "constant", "value": float(columns[column][0]), "cv": None,
                              "rationale": "no time was left for this column"}
            continue
        folder = _column_folder(task, run_dir, column, train)
        continuing = resume and (run / "run.json").is_file()
        summary = solve(folder / "task.yaml", out=None if continuing else run, resume=run if continuing else None,
                        wall_time=share, **solve_options)
        experiments += int(summary.get("experiments", 0))
        submitted = pl.read_csv(Path(summary["submission"]))
        aligned = ids.with_columns(pl.col(ids.columns[0]).cast(pl.Utf8).alias("__key")).join(
            submitted.with_columns(pl.col(submitted.columns[0]).cast(pl.Utf8).alias("__key")).select(
                "__key", column), on="__key", how="left")
        columns[column] = aligned[column].fill_null(float(columns[column][0]))
        final = summary.get("final") or {}
        finals[column] = {"kind": final.get("kind"), "cv": final.get("cv"), "run_dir": str(run),
                          "rationale": final.get("rationale", "")}
        record.write_text(json.dumps(finals[column], default=str), encoding="utf-8")
        _write(ids.with_columns(*columns.values()), output)
        progress.write_text(json.dumps({"elapsed": spent + time.monotonic() - start}), encoding="utf-8")
    cvs = [f["cv"] for f in finals.values() if f.get("cv") is not None]
    final = {"kind": "columns", "targets": finals, "id_column": task.id_column,
             "cv": float(np.mean(cvs)) if len(cvs) == len(task.targets) else None,
             "rationale": f"{len(task.targets)} columns solved one at a time, each by "
                          f"{task.metric_info.per_column}; the submission puts them side by side"}
    (run_dir / "final.json").write_text(json.dumps(final, indent=1, default=str), encoding="utf-8")
    progress.write_text(json.dumps({"elapsed": spent + time.monotonic() - start}), encoding="utf-8")
    return {"run_dir": str(run_dir), "submission": str(output), "final": final,
            "elapsed": spent + time.monotonic() - start, "experiments": experiments}
