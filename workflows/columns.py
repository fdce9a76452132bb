"""Several targets (`targets:` with a column-wise metric): the team solves one column at a time, then the columns
are put side by side.

A column-wise metric is the mean of one metric over the columns (mean
column-wise ROC AUC, MCRMSE, column-wise RMSLE), so the best submission is
the best prediction of each column: each column becomes a task of its own
(`Task.column_task`: that target, the per-column metric, the other targets
dropped from its train table), solved by the whole team in
`RUN_DIR/targets/<column>/run/` (a run folder like any other: report it,
load its model), with the wall time left shared among the columns still to
solve. A constant submission is written first; then a joint baseline
(`crew.tools.multioutput`: the features built once, a linear model per
column) replaces it within seconds, and each column replaces its baseline
as soon as its own run ends with a model that scores better held out, so a
valid submission always exists and a column whose run kept nothing (or
nothing better) still has a real model. For a task of files (several
labels per image or sound) the joint baseline is one network with a
sigmoid per label (`crew.tools.vision`'s multi-label mode), as a Kaggle
expert trains a multi-label classifier: the files are decoded and the
features learnt once for every label. Whichever experiment first decodes
the files, the joint network or a column's run, leaves its checked array
store to every later column's run, which then skips decoding.
A column with a single value in train keeps that value. `resume` skips the
columns already solved and continues the one a kill interrupted.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from crew import Task, read_table
from crew.sandbox import GPUSource
from crew.workflows._run import fill_constants, link_or_copy, write_atomically

__all__ = ["solve_columns"]

_FINISH = 3.0
"""Seconds kept back at the end to put the columns together."""


def _slug(column: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", column).strip("-") or "target"


def _column_folder(task: Task, run_dir: Path, column: str, train: pl.DataFrame) -> Path:
    """`RUN_DIR/targets/<column>/task/`: the column's task.yaml, its train table (the other targets dropped), the
    test table (a hard link where the file system allows, else a copy) and the task's media folders (linked)."""
    assert task.data is not None and task.targets is not None
    folder = run_dir / "targets" / _slug(column) / "task"
    (folder / "data").mkdir(parents=True, exist_ok=True)
    others = [c for c in task.targets if c != column]
    train.drop(others).write_parquet(folder / "data" / "train.parquet")
    test_source = task.path(task.data.test)
    test_copy = folder / "data" / f"test{test_source.suffix.lower()}"
    link_or_copy(test_source, test_copy)
    for media in sorted(set(task.data_files or []) - {task.data.train, task.data.test, task.data.sample_submission}):
        link = folder / media  # a media folder, linked: every column reads the same files
        if not link.exists():
            link.symlink_to(task.path(media).resolve(), target_is_directory=True)
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


_JOINT_SHARE = 0.2
"""At most this share of the wall time goes to the joint baseline, before the columns' own runs."""
_JOINT_NETWORK_SHARE = 0.4
"""A joint network (a task of files) gets more: it learns every label at once, and the columns' runs then skip the
decoding it did."""


def joint_script(task: Task, train: pl.DataFrame, test: pl.DataFrame) -> str:
    """The joint baseline's code.py: `crew.tools.multioutput` with the task's targets and the columns the analyst's
    profile reads as numbers, categories and text (ids, dates and constants left out)."""
    from crew.tools import multioutput
    from crew.tools.profile import profile_text

    assert task.data is not None and task.targets is not None
    kinds: dict[str, list[str]] = {"numeric": [], "categorical": [], "text": []}
    for name in test.columns:
        if name in task.targets or name == task.id_column or name not in train.columns:
            continue
        column = train[name]
        if column.dtype.is_numeric() or column.dtype == pl.Boolean:
            kinds["numeric"].append(name)
        elif column.dtype == pl.Utf8:
            words = profile_text(column).mean_words
            if words >= 3:
                kinds["text"].append(name)
            elif 1 < column.n_unique() < max(50, train.height // 2):
                kinds["categorical"].append(name)
    spec = {"train": task.data.train, "test": task.data.test, "id_column": task.id_column,
            "targets": list(task.targets), "metric": task.metric_info.per_column,
            "task": task.metric_info.task, "nonnegative": task.metric_info.nonnegative}
    return fill_constants(Path(multioutput.__file__).read_text(encoding="utf-8"),
                          {"TASK": spec, "COLUMNS": kinds, "PREPROCESS": {"sparse_text": kinds["text"]}})


def _joint_baseline(task: Task, run_dir: Path, train: pl.DataFrame, test: pl.DataFrame, wall: float,
                    executor: Any) -> dict[str, Any]:
    """Vet the joint baseline with the critic and run it in the sandbox (`wall` seconds at most): its record,
    `ok` with its folder, per-column CV and model, or not `ok` with the reason (rejected, failed, or nothing
    usable written)."""
    import os

    from crew import Blackboard, Experiment
    from crew.roles.critic import Critic
    from crew.sandbox import GPUSlots, Launch, Limits, LocalExecutor

    threads, gpus = 1, 0
    if task.media:  # the joint network: every core, and a GPU when the machine has one the task may use
        from crew.workflows.media import gpu_allowed
        from crew.workflows.media import joint_script as joint_network

        code = joint_network(task, time_limit=0.9 * wall)
        threads = len(os.sched_getaffinity(0))
        slots = GPUSlots(nvml=executor if isinstance(executor, GPUSource) else None)
        gpus = 1 if gpu_allowed(task) and slots.devices() else 0
    else:
        code = joint_script(task, train, test)
    (run_dir / "joint").mkdir(parents=True, exist_ok=True)
    board = Blackboard(run_dir / "joint" / "blackboard.sqlite")  # the joint baseline's own record
    if board.find_experiment("joint") is None:
        board.add_experiment(Experiment(id="joint", code=code, insights=["joint_baseline"]))
    remaining = {"wall_time": wall, "experiment_time": wall, "memory": task.budget.memory, "gpus": gpus}
    if gpus:
        remaining["gpu_memory"] = max(slots.available().values(), default=0)
    verdict = Critic(blackboard=board)({"task": task, "proposal": {"id": "joint", "code": code, "threads": threads,
                                                                   "gpus": gpus, "insights": ["joint_baseline"]},
                                        "remaining": remaining})["verdict"]
    if verdict["verdict"] == "reject":
        return {"ok": False, "reason": f"the critic rejected it: {verdict['reason']}", "folder": None}
    code = verdict.get("code") or code  # a cheaper variant the critic approved instead
    executor = executor or LocalExecutor(root=run_dir / "experiments")
    memory = int((verdict.get("estimate") or {}).get("gpu_memory") or 0)
    with (slots.hold(gpus, memory) if gpus else nullcontext()) as held:
        launch = Launch(id="joint", code=code, data_dir=str(task.root), data_files=task.data_files,
                        hide=[str(p) for p in task.hidden], gpus=list(held or []),
                        limits=Limits(wall_time=wall, memory=task.budget.memory, threads=threads))
        result = executor.run(launch)
    board.update_experiment("joint", status="done" if result.reason == "ok" else "failed",
                            wall_time=result.wall_time, peak_memory=result.peak_memory,
                            error=None if result.reason == "ok" else f"{result.reason}: {result.detail}")
    folder = Path(result.workdir)
    if result.reason != "ok" or not (folder / "predictions.csv").is_file() or not (folder / "metrics.json").is_file():
        return {"ok": False, "reason": f"{result.reason}: {result.detail}".strip(": "), "folder": str(folder)}
    predictions = pl.read_csv(folder / "predictions.csv")
    if predictions.height != test.height or any(c not in predictions.columns for c in task.targets or []):
        return {"ok": False, "reason": "its predictions.csv does not hold every test row and target", "folder": str(folder)}
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    per_column = {c: (float(v) if isinstance(v, int | float) and math.isfinite(v) else None)
                  for c, v in (metrics.get("per_column") or {}).items()}
    cv = metrics.get("cv")
    return {"ok": True, "folder": str(folder), "per_column": per_column,
            "cv": cv if isinstance(cv, int | float) and math.isfinite(cv) else None,
            "model": str(folder / ("model" if task.media else "model.skops")), "network": bool(task.media),
            "image_size": metrics.get("image_size")}


def _joint_fits(task: Task) -> bool:
    """Whether a joint baseline applies: always to tables; to files when every label is a probability (a sigmoid
    per label) and PyTorch is installed to train the network."""
    if not task.media:
        return True
    import importlib.util

    return task.metric_info.task == "classification" and importlib.util.find_spec("torch") is not None


def _joint_final(joint: dict[str, Any], column: str, why: str) -> dict[str, Any]:
    what = ("the joint network (one network, a sigmoid per label)" if joint.get("network") else
            "the joint baseline's linear model (one per column on shared features)")
    return {"kind": "joint", "cv": joint["per_column"].get(column), "model": joint["model"],
            "network": bool(joint.get("network")), "rationale": f"{why}: {what}"}


def _share_stores(source: Path, target: Path) -> None:
    """Every checked array store (`media-*.npy`, checked by `crew.tools.media.share_store` before it entered a stage
    cache) in `source` hard-linked (else copied) into `target`, a column run's stage cache: the files are the same
    for every column, so only the first experiment decodes them."""
    for store in sorted(source.glob("media-*.npy")) if source.is_dir() else []:
        link_or_copy(store, target / store.name)


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
        write_atomically(task.as_submitted(ids.with_columns(*columns.values())), output)  # the safety net
    else:
        _, kept = task.read_submitted(pl.read_csv(output), ids[ids.columns[0]].to_list())
        columns = {c: kept[c] for c in task.targets}
    finals: dict[str, Any] = {}
    experiments = 0
    to_solve = [c for c in task.targets if train[c].drop_nulls().n_unique() >= 2]
    joint_record = run_dir / "joint.json"
    if resume and joint_record.is_file():
        joint = json.loads(joint_record.read_text(encoding="utf-8"))
    else:  # one linear model per column on shared features (for files, one network with a head per label):
        # every column a real model early
        share = _JOINT_NETWORK_SHARE if task.media else _JOINT_SHARE
        joint = _joint_baseline(task, run_dir, train, test, max(5.0, share * wall_time),
                                solve_options.get("executor")) if to_solve and _joint_fits(task) else None
        experiments += 1 if joint else 0
        if joint and joint["ok"] and joint.get("network") and joint.get("image_size"):
            from crew.tools.media import share_store  # the files it decoded, checked, for the columns' runs

            (run_dir / "stage_cache").mkdir(parents=True, exist_ok=True)
            share_store(task, Path(joint["folder"]), int(joint["image_size"]), run_dir / "stage_cache")
        if joint and joint["ok"]:
            predicted = pl.read_csv(Path(joint["folder"]) / "predictions.csv")
            for column in to_solve:
                columns[column] = predicted[column].cast(pl.Float64).rename(column)
            write_atomically(task.as_submitted(ids.with_columns(*columns.values())), output)
        joint_record.write_text(json.dumps(joint), encoding="utf-8")
    joint_ok = bool(joint and joint.get("ok"))
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
            finals[column] = (_joint_final(joint, column, "no time was left for this column's own run") if joint_ok
                              else {"kind": "constant", "value": float(columns[column][0]), "cv": None,
                                    "rationale": "no time was left for this column"})
            continue
        folder = _column_folder(task, run_dir, column, train)
        continuing = resume and (run / "run.json").is_file()
        _share_stores(run_dir / "stage_cache", run / "stage_cache")  # files another experiment decoded
        summary = solve(folder / "task.yaml", out=None if continuing else run, resume=run if continuing else None,
                        wall_time=share, **solve_options)
        _share_stores(run / "stage_cache", run_dir / "stage_cache")
        experiments += int(summary.get("experiments", 0))
        final = summary.get("final") or {}
        if final.get("kind") in (None, "constant") and joint_ok:  # the run kept no model: the joint one stays
            finals[column] = _joint_final(joint, column, "the column's own run kept no model")
        elif joint_ok and (baseline := joint["per_column"].get(column)) is not None and (
                final.get("cv") is None or not task.metric_info.is_better(float(final["cv"]), baseline)):
            finals[column] = _joint_final(joint, column, f"the column's own run scored {final.get('cv')} held out, "
                                                         f"no better than {baseline}")
        else:
            submitted = pl.read_csv(Path(summary["submission"]))
            aligned = ids.with_columns(pl.col(ids.columns[0]).cast(pl.Utf8).alias("__key")).join(
                submitted.with_columns(pl.col(submitted.columns[0]).cast(pl.Utf8).alias("__key")).select(
                    "__key", column), on="__key", how="left")
            columns[column] = aligned[column].cast(pl.Float64).fill_null(float(columns[column][0]))
            finals[column] = {"kind": final.get("kind"), "cv": final.get("cv"), "run_dir": str(run),
                              "rationale": final.get("rationale", "")}
        record.write_text(json.dumps(finals[column], default=str), encoding="utf-8")
        write_atomically(task.as_submitted(ids.with_columns(*columns.values())), output)
        progress.write_text(json.dumps({"elapsed": spent + time.monotonic() - start}), encoding="utf-8")
    cvs = [f["cv"] for f in finals.values() if f.get("cv") is not None]
    pooled = task.metric_info.pooled  # scored over every cell at once: the columns' scores do not average to it
    final = {"kind": "columns", "targets": finals, "id_column": task.id_column,
             "submission": task.submission.model_dump() if task.submission else None,
             "cv": float(np.mean(cvs)) if len(cvs) == len(task.targets) and not pooled else None,
             "rationale": f"{len(task.targets)} columns solved one at a time, each by "
                          f"{task.metric_info.per_column}; the submission puts them side by side"
                          + (f" ({task.metric} pools every cell, so the run reports no CV of its own)" if pooled
                             else "")}
    (run_dir / "final.json").write_text(json.dumps(final, indent=1, default=str), encoding="utf-8")
    progress.write_text(json.dumps({"elapsed": spent + time.monotonic() - start}), encoding="utf-8")
    return {"run_dir": str(run_dir), "submission": str(output), "final": final,
            "elapsed": spent + time.monotonic() - start, "experiments": experiments}
