"""The label probe: does an experiment's out-of-fold prediction for a row follow that row's own label?

An honest out-of-fold prediction for row i comes from a model that never saw row i's label. So if a random set S
of rows gets new labels and the experiment is run again, the predictions of rows in S move exactly as those of
comparable rows outside S (both feel the same shift of their neighbours' labels), and only a prediction that reads
its own row's label (a model fitted on all rows and scored on them, a feature computed from the target) moves
towards the new label. The probe compares the two groups, each row's move measured towards its new (for S) or a
hypothetical new (for the others) label: a randomized experiment, so no threshold depends on the model.

What it catches: in-sample "out-of-fold" predictions, target leakage through features of the row itself (target
encoding without folds, the label slipped in as a column). What it does not: leakage through other rows of the
test set, predictions hand-written for the test file (see the reviewer's rules check), a cheat that only acts
when the train table is the original (it would have to recognise the probe's copy, which differs only in labels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from crew import Task
from crew._metrics import positive_label
from crew._tables import read_table

__all__ = ["ProbeVerdict", "judge", "perturb_train"]

_Z_CAUGHT = 5.0  # the groups' difference in standard errors: far beyond chance for an honest experiment


@dataclass
class ProbeVerdict:
    """`caught` when rows whose labels changed moved towards them more than comparable rows did."""

    caught: bool
    effect: float
    z: float
    rows: int
    note: str


def perturb_train(task: Task, out: Path, seed: int) -> dict[str, np.ndarray]:
    """Write a copy of the train table with new labels for a random set of rows; returns the rows changed, their old
    and new labels (as strings) and, for the other rows, a hypothetical new label drawn the same way."""
    frame = read_table(task.path(task.data.train))  # type: ignore[union-attr]
    target = str(task.target)
    rng = np.random.default_rng(seed)
    known = np.flatnonzero(frame[target].is_not_null().to_numpy())
    size = int(min(max(30, len(known) // 5), 5000, len(known) // 2))
    chosen = np.sort(rng.choice(known, size=size, replace=False))
    values = frame[target].to_numpy().copy()
    if task.target_type == "regression":
        new = values[chosen][rng.permutation(size)]
        hypothetical = values[rng.choice(chosen, size=len(values))]
    else:
        classes = [v for v in frame[target].unique(maintain_order=True).to_list() if v is not None]
        new = np.array([_other(rng, classes, v) for v in values[chosen]], dtype=object)
        hypothetical = np.array([_other(rng, classes, v) for v in values], dtype=object)
    changed = values.astype(object)
    changed[chosen] = new
    series = pl.Series(target, changed.tolist(), dtype=frame[target].dtype, strict=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    perturbed = frame.with_columns(series)
    if out.suffix.lower() == ".parquet":
        perturbed.write_parquet(out)
    else:
        perturbed.write_csv(out)
    return {"rows": chosen, "old": values, "new": changed, "hypothetical": hypothetical}


def _other(rng: np.random.Generator, classes: list[object], value: object) -> object:
    others = [c for c in classes if c != value]
    return others[int(rng.integers(len(others)))] if others else value


def judge(task: Task, change: dict[str, np.ndarray], before: Path, after: Path) -> ProbeVerdict:
    """Compare the out-of-fold predictions of the original run (`before`) and the probe's (`after`)."""
    old, new, hypothetical = change["old"], change["new"], change["hypothetical"]
    n = len(old)
    in_s = np.zeros(n, dtype=bool)
    in_s[change["rows"]] = True
    p0, p1 = _oof(task, before, n), _oof(task, after, n)
    target_new = np.where(in_s, new, hypothetical)
    moves = _moves(task, old, target_new, p0, p1)
    ok = np.isfinite(moves)
    s, c = moves[ok & in_s], moves[ok & ~in_s]
    if len(s) < 10 or len(c) < 10:
        return ProbeVerdict(False, 0.0, 0.0, int(len(s)), "too few rows to compare")
    effect = float(s.mean() - c.mean())
    se = math.sqrt(s.var(ddof=1) / len(s) + c.var(ddof=1) / len(c))
    z = effect / se if se > 0 else (math.inf if effect > 1e-9 else 0.0)
    caught = z > _Z_CAUGHT
    note = (f"rows given new labels moved {effect:+.4g} towards them beyond comparable rows (z {z:.1f}, "
            f"{len(s)} rows)")
    return ProbeVerdict(caught, effect, float(z), int(len(s)), note)


def _oof(task: Task, folder: Path, n: int) -> np.ndarray:
    """Out-of-fold predictions in train-row order: one column (a value, a label or P(positive)) or one per class."""
    frame = read_table(folder / "oof.csv")
    if task.id_column and task.id_column in frame.columns:
        ids = read_table(task.path(task.data.train)).select(task.id_column)  # type: ignore[union-attr]
        frame = ids.join(frame, on=task.id_column, how="left", maintain_order="left")
    if len(frame) != n:
        raise ValueError(f"oof.csv has {len(frame)} rows for {n} train rows")
    per_class = [c for c in task.classes if c in frame.columns]
    if task.target_type == "multiclass" and per_class == task.classes:
        return frame.select(per_class).to_numpy().astype(float)
    column = frame[str(task.target)] if task.target in frame.columns else frame[frame.columns[-1]]
    return column.to_numpy()


def _moves(task: Task, old: np.ndarray, new: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """Each row's move towards its new label: positive when the prediction went that way."""
    if task.target_type == "regression":
        old_f, new_f = old.astype(float), new.astype(float)
        scale = float(np.nanstd(old_f)) or 1.0
        return (p1.astype(float) - p0.astype(float)) * (new_f - old_f) / scale**2
    labels = [str(c) for c in task.classes]
    index = {c: i for i, c in enumerate(labels)}
    old_i = np.array([index.get(_canon(v), -1) for v in old])
    new_i = np.array([index.get(_canon(v), -1) for v in new])
    valid = (old_i >= 0) & (new_i >= 0)
    out = np.full(len(old), np.nan)
    if p0.ndim == 2:  # one probability column per class
        rows = np.flatnonzero(valid)
        gain_new = p1[rows, new_i[rows]] - p0[rows, new_i[rows]]
        gain_old = p1[rows, old_i[rows]] - p0[rows, old_i[rows]]
        out[rows] = gain_new - gain_old
        return out
    numeric = _as_float(p0) is not None and _as_float(p1) is not None
    if numeric and np.nanmin(_as_float(p0)) >= 0 and np.nanmax(_as_float(p0)) <= 1 and len(labels) == 2:
        q0, q1 = _as_float(p0), _as_float(p1)  # P(positive class), as TASK_FORMAT's binary probabilities
        direction = np.where(new_i == index[positive_label(labels)], 1.0, -1.0)
        out[valid] = ((q1 - q0) * direction)[valid]  # type: ignore[operator]
        return out
    agree_before = np.array([_canon(a) == _canon(b) for a, b in zip(p0, new, strict=True)], dtype=float)
    agree_after = np.array([_canon(a) == _canon(b) for a, b in zip(p1, new, strict=True)], dtype=float)
    out[valid] = (agree_after - agree_before)[valid]
    return out


def _as_float(values: np.ndarray) -> np.ndarray | None:
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return None


def _canon(value: object) -> str:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)
