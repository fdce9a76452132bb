"""The experiment artifact contract: the files an experiment leaves in its folder, read and aligned to the task's rows.

An experiment writes `metrics.json` (its CV claim), `predictions.csv` (the
test rows in submission format), `oof.csv` (out-of-fold predictions for the
train rows) and, optionally, `test_pred.csv` (raw test predictions). Rows
match the task's tables by id, by a `row` column, or by order; predictions
are one probability column per class, labels, or values. Everything here
treats the files as untrusted data: sizes are checked against what an
honest file for the task could be before parsing (`size_limits`), and a
file that breaks the contract raises `ArtifactError` with a message the
script's author can act on.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from crew import Metric, Task, canonical_labels, positive_label

__all__ = [
    "ARTIFACTS",
    "REQUIRED",
    "ArtifactError",
    "aligned_predictions",
    "canonical",
    "class_weights",
    "count_rows",
    "file_size",
    "file_stamp",
    "is_constant",
    "metric_input",
    "predictions",
    "read_columns",
    "read_frame",
    "row_positions",
    "size_limits",
    "test_ids",
    "train_targets",
]

ARTIFACTS = ("metrics.json", "predictions.csv", "oof.csv", "test_pred.csv")
"""The files an experiment leaves in its folder; all but test_pred.csv are required."""

REQUIRED = ("metrics.json", "predictions.csv", "oof.csv")
"""The files every experiment must leave."""

_METRICS_BYTES = 1024**2   # metrics.json: a few KiB honestly
_BYTES_PER_VALUE = 48      # a printed float or id is ~25 characters; twice that with separators
_SLACK = 64 * 1024


class ArtifactError(ValueError):
    """An experiment file that breaks the contract; the message is the issue, phrased for the one who wrote it."""


# -- reading the task's tables cheaply ----------------------------------------------------------


def file_stamp(path: Path) -> tuple[str, int, int]:
    """A file's path, modification time and size: the key the cached readers below are read by."""
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


@lru_cache(maxsize=8)
def read_columns(stamp: tuple[str, int, int], columns: tuple[str, ...]) -> pl.DataFrame:
    path = stamp[0]
    if path.lower().endswith(".csv"):
        return pl.read_csv(path, columns=list(columns), infer_schema_length=None, encoding="utf8")
    return pl.read_parquet(path, columns=list(columns))


@lru_cache(maxsize=8)
def count_rows(stamp: tuple[str, int, int]) -> int:
    path = stamp[0]
    scan = pl.scan_csv(path) if path.lower().endswith(".csv") else pl.scan_parquet(path)
    return int(scan.select(pl.len()).collect().item())


def train_targets(task: Task) -> tuple[np.ndarray, pl.Series | None]:
    """The true targets of the rows a script trains on (rows without a target dropped) and their ids."""
    assert task.data is not None and task.target is not None
    columns = tuple(c for c in (task.id_column, task.target) if c)
    frame = read_columns(file_stamp(task.path(task.data.train)), columns)
    frame = frame.filter(pl.col(task.target).is_not_null())
    y = frame[task.target]
    values = y.cast(pl.Float64).to_numpy() if task.target_type == "regression" else canonical(y).to_numpy()
    return values, (canonical(frame[task.id_column]) if task.id_column else None)


def test_ids(task: Task) -> tuple[pl.DataFrame, pl.Series | None]:
    """A frame of the test ids (what `check_submission` aligns against) and their canonical keys."""
    assert task.data is not None
    stamp = file_stamp(task.path(task.data.test))
    if task.id_column:
        frame = read_columns(stamp, (task.id_column,))
        return frame, canonical(frame[task.id_column])
    return pl.DataFrame({"__row": np.arange(count_rows(stamp))}), None


def canonical(series: pl.Series) -> pl.Series:
    """Labels/ids as strings that agree across csv round-trips (1, 1.0 and "1"), vectorised where possible."""
    dtype = series.dtype
    if dtype.is_integer() or dtype == pl.Utf8:
        return series.cast(pl.Utf8)
    if dtype.is_float():
        present = series.drop_nulls()
        if present.is_finite().all() and (present == present.round(0)).all():
            return series.cast(pl.Int64).cast(pl.Utf8)
    values = series.to_list()
    labels = canonical_labels([v for v in values if v is not None]).tolist()
    out = iter(labels)
    return pl.Series(series.name, [None if v is None else next(out) for v in values], dtype=pl.Utf8)


# -- reading an experiment's files ---------------------------------------------------------------


def row_positions(frame: pl.DataFrame, keys: pl.Series | None, n: int, id_column: str | None, file: str,
               which: str) -> np.ndarray:
    """For each row of `frame`, its index in the task's `which` table: by id, by a `row` column, or by order."""
    if id_column and keys is not None and id_column in frame.columns:
        own = canonical(frame[id_column])
        if own.null_count():
            raise ArtifactError(f"{file} has {own.null_count()} row(s) without an {id_column!r}")
        dupes = own.filter(own.is_duplicated()).unique().sort().head(3).to_list()
        if dupes:
            raise ArtifactError(f"{file} repeats id(s) {dupes}: write one row per {which} row")
        lookup = pl.DataFrame({"__key": keys, "__ref": np.arange(len(keys))})
        joined = (pl.DataFrame({"__key": own, "__pos": np.arange(len(own))})
                  .join(lookup, on="__key", how="left").sort("__pos"))
        ref = joined["__ref"]
        if ref.null_count():
            unknown = own.filter(ref.is_null()).head(3).to_list()
            raise ArtifactError(f"{file} has id(s) {unknown} that are not in the {which} table")
        return ref.to_numpy().astype(np.int64)
    if "row" in frame.columns and frame["row"].dtype.is_integer():
        rows = frame["row"].to_numpy().astype(np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= n or len(np.unique(rows)) != rows.size):
            raise ArtifactError(f"{file}'s `row` column must hold distinct row numbers 0..{n - 1} of the {which} table")
        return rows
    if frame.height == n:
        return np.arange(n)
    key = f"an {id_column!r}" if id_column else "a `row`"
    raise ArtifactError(f"{file} has {frame.height} rows and no {key} column to match them with the {n} {which} rows")


def predictions(frame: pl.DataFrame, task: Task, file: str) -> tuple[str, np.ndarray]:
    """('proba', class matrix), ('label', labels) or ('value', numbers) from a prediction file's columns."""
    classes, target, metric = task.classes, task.target or "", task.metric_info
    if classes and all(c in frame.columns for c in classes):
        kind, columns = "proba", classes
    elif target in frame.columns and (task.target_type == "regression" or metric.submission == "label"
                                      or task.target_type == "binary"):
        kind = "label" if metric.submission == "label" else "value"
        columns = [target]
    else:
        want = f"one probability column per class {classes}" if classes else f"a {target!r} column"
        if classes and metric.submission == "label":
            want += f" (or a {target!r} column of labels)"
        raise ArtifactError(f"{file} has columns {frame.columns[:8]}; expected {want}")
    if kind == "label":
        labels = canonical(frame[target])
        if labels.null_count():
            raise ArtifactError(f"{file} has {labels.null_count()} missing prediction(s)")
        return kind, labels.to_numpy()
    try:
        values = frame.select(columns).cast(pl.Float64).to_numpy()
    except Exception:  # polars raises several types for an impossible cast
        raise ArtifactError(f"{file}'s prediction column(s) {columns[:4]} are not numeric") from None
    bad = int((~np.isfinite(values)).any(axis=1).sum())
    if bad:
        raise ArtifactError(f"{file} has {bad} row(s) with missing or infinite predictions")
    return kind, values if kind == "proba" else values[:, 0]


def read_frame(path: Path) -> pl.DataFrame:
    """A prediction file as a frame (every row read to infer its columns' types); ArtifactError when it is missing
    or cannot be parsed."""
    if not path.is_file():
        raise ArtifactError(f"{path.name} is missing")
    try:
        return pl.read_csv(path, infer_schema_length=None)
    except Exception as exc:  # polars raises several types; each means "cannot parse"
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"{path.name} could not be read ({detail})") from None


def aligned_predictions(path: Path, task: Task, which: str) -> tuple[str, np.ndarray]:
    """An experiment's predictions for every row of the task's `which` table (`train`: oof.csv, `test`:
    test_pred.csv), rows in the table's order: ('proba', class matrix), ('label', labels) or ('value', numbers).
    A file that misses rows, repeats them or names rows the table lacks raises ArtifactError."""
    if which == "train":
        y, keys = train_targets(task)
        n = len(y)
    else:
        frame, keys = test_ids(task)
        n = frame.height
    found = read_frame(path)
    positions = row_positions(found, keys, n, task.id_column, path.name, which)
    if len(positions) != n:
        raise ArtifactError(f"{path.name} has {found.height} rows, the task's {which} table has {n}")
    kind, values = predictions(found, task, path.name)
    out = np.empty_like(values)
    out[positions] = values
    return kind, out


def class_weights(metrics: Mapping[str, Any] | None, task: Task) -> np.ndarray | None:
    """The per-class decision weights an experiment reports in metrics.json (`class_weights`: its labels are the
    argmax of probabilities x weights, see `crew.Metric.decides`); None when it reports none or the metric scores
    probabilities. ArtifactError for weights that are not one positive number per class."""
    value = (metrics or {}).get("class_weights")
    if value is None or task.metric_info.submission != "label":
        return None
    try:
        weights = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        weights = np.asarray([], dtype=float)
    if weights.shape != (len(task.classes),) or not np.isfinite(weights).all() or (weights <= 0).any():
        raise ArtifactError(f"metrics.json's class_weights must be {len(task.classes)} positive numbers, one per "
                            f"class in the order {task.classes[:10]}; got {str(value)[:80]}")
    return weights


def metric_input(kind: str, values: np.ndarray, task: Task, metric: Metric,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """What `metric.score` takes, computed as the pipeline template does (argmax, positive column, clipping);
    labels are the argmax of the probabilities times the decision `weights` when there are some."""
    classes = task.classes
    if metric.submission == "label":
        if kind == "label":
            return values
        return np.asarray(classes, dtype=object)[(values if weights is None else values * weights).argmax(axis=1)]
    if metric.submission == "proba":
        if kind != "proba":
            return values
        if task.target_type == "binary" and not metric.log_probabilities:
            return values[:, classes.index(positive_label(classes))]
        probs = np.clip(values, 1e-15, 1) if metric.log_probabilities else values
        return probs / probs.sum(axis=1, keepdims=True)
    return np.clip(values, 0, None) if metric.nonnegative else values


def is_constant(kind: str, values: np.ndarray) -> bool:
    if len(values) < 2:
        return False
    if kind == "label":
        return len(set(values.tolist())) == 1
    return bool(np.ptp(values, axis=0).max() <= 1e-12)


def file_size(path: Path) -> int:
    try:
        info = path.lstat()
    except OSError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


def size_limits(task: Task) -> dict[str, Any]:
    """The largest artifact an honest experiment writes for this task: a generous number of bytes per value (ids,
    labels and probabilities printed in full), never the sandbox's 512 MiB per-file cap that crew would parse."""
    shapes = task.shapes
    train, test = shapes.get("train", (0, 0))[0], shapes.get("test", (0, 0))[0]
    columns = 2 + len(task.classes)
    per_row = _BYTES_PER_VALUE * columns
    return {"metrics.json": _METRICS_BYTES, "oof.csv": _SLACK + per_row * train,
            "predictions.csv": _SLACK + per_row * test, "test_pred.csv": _SLACK + per_row * test,
            "rows_metrics.json": "its", "rows_oof.csv": train, "rows_predictions.csv": test, "rows_test_pred.csv": test}
