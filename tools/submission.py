"""A task's submission from raw predictions: the rows it covers, its format, and the constant model's.

Raw predictions (one probability per class, or values) become the columns
TASK_FORMAT.md asks for by the metric's own rules (labels, the positive
class's probability, one column per class, values clipped at 0 for a
nonnegative metric). Final selection writes its choice through this, the
run's first, constant submission is the class priors or the train mean, and
the benchmark's dummy is the same constant model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crew import CrewError, Task, positive_label
from crew.tools import artifacts

__all__ = ["TaskRows", "constant_submission", "prior_raw", "submission_frame", "task_rows"]


@dataclass(frozen=True, eq=False)
class TaskRows:
    """The target of the train rows experiments fit on and the test ids, in the task tables' order
    (`crew.tools.artifacts`, which every consumer of an experiment's files reads them through)."""

    id_name: str
    y: np.ndarray
    """Canonical labels (classification) or floats (regression), one per train row."""
    test_ids: np.ndarray
    """The test ids as the test file holds them (what a submission carries), or row numbers."""


def task_rows(task: Task) -> TaskRows:
    """The task's train targets (rows with a target) and test ids, as experiment files are aligned to them."""
    if task.data is None or task.target is None or task.metric is None:
        raise CrewError(f"task {task.name!r} is not a tabular task with data, target and metric")
    y, _ = artifacts.train_targets(task)
    frame, _ = artifacts.test_ids(task)
    if task.target_type != "regression":
        unknown = sorted(set(y) - set(task.classes))[:3]
        if unknown:
            raise CrewError(f"train labels {unknown} are not among the task's classes {task.classes[:10]}")
    test_ids = frame[task.id_column].to_numpy() if task.id_column else np.arange(frame.height)
    return TaskRows(id_name=task.id_column or "row", y=y, test_ids=test_ids)


def prior_raw(task: Task, y: np.ndarray, n_test: int) -> np.ndarray:
    """The constant model's raw predictions: class priors for classification (argmax: the majority class), the train
    mean for regression. The run's first submission, and the dummy that normalized scores measure from."""
    if task.target_type == "regression":
        return np.full(n_test, float(np.mean(np.asarray(y, dtype=float))))
    labels = np.asarray(y, dtype=object)
    priors = np.array([np.mean(labels == c) for c in task.classes], dtype=float)
    return np.tile(priors, (n_test, 1))


def constant_submission(task: Task) -> pd.DataFrame:
    """The constant model's submission (`prior_raw`) for the task's test rows."""
    rows = task_rows(task)
    return submission_frame(task, rows.test_ids, prior_raw(task, rows.y, len(rows.test_ids)))


def submission_frame(task: Task, test_ids: Sequence[object] | np.ndarray | None, raw: np.ndarray,
                     class_weights: np.ndarray | None = None) -> pd.DataFrame:
    """Raw test predictions in the task's submission format (the pipelines template's `submission_frame`).

    Label metrics get canonical class labels (the argmax of the probabilities
    times the decision's `class_weights` when given), binary probability metrics the
    positive class's column, multi-class probability metrics one column per
    class; rmsle predictions are clipped at 0 because grading rejects
    negatives. `test_ids` is only used when the task has an id column.
    """
    assert task.target is not None
    raw = np.asarray(raw, dtype=float)
    if task.target_type == "regression" and raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw[:, 0]
    n = raw.shape[0]
    frame = pd.DataFrame(index=pd.RangeIndex(n))
    if task.id_column:
        if test_ids is None or len(test_ids) != n:
            got = None if test_ids is None else len(test_ids)
            raise ValueError(f"need {n} test ids for column {task.id_column!r}, got {got}")
        frame[task.id_column] = np.asarray(test_ids)
    metric = task.metric_info
    if task.target_type == "regression":
        frame[task.target] = np.clip(raw, 0, None) if metric.nonnegative else raw
    elif metric.submission == "label":
        scores = raw if class_weights is None else raw * np.asarray(class_weights, dtype=float)
        frame[task.target] = np.asarray(task.classes, dtype=object)[scores.argmax(axis=1)]
    elif task.target_type == "binary":
        frame[task.target] = np.clip(raw[:, task.classes.index(positive_label(task.classes))], 0, 1)
    else:
        for i, label in enumerate(task.classes):
            frame[label] = np.clip(raw[:, i], 0, 1)
    return frame[task.submission_columns()]


