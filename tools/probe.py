"""The label probe: does an experiment's out-of-fold prediction for a row follow that row's own label?

An honest out-of-fold prediction for row i comes from a model that never saw row i's label. So if a random set S
of rows gets new labels and the experiment is run again, the predictions of rows in S move exactly as those of
comparable rows outside S (both feel the same shift of their neighbours' labels), and only a prediction that reads
its own row's label (a model fitted on all rows and scored on them, a feature computed from the target) moves
towards the new label. The probe compares the two groups, each row's move measured towards its new (for S) or a
hypothetical new (for the others) label: a randomized experiment, so no threshold depends on the model.

The same run also carries canary rows: train rows whose labels are known (and unchanged), placed in the test file
under fresh ids and shuffled among the real test rows (and in the sample submission, so code that aligns on it keeps
them). A model's prediction for a canary is at least as good as its out-of-fold prediction for the same row (the
model trained on it, or on rows like it); a prediction that does not come from the model (a tweaked sample
submission, labels looked up from a leaked file, a rule written for the real test rows) is worse on the canaries
than the experiment's own cross-validation, row by row. `judge_canaries` compares the two on the same rows (a paired
test, z > 5).

What they catch: in-sample "out-of-fold" predictions, target leakage through features of the row itself (target
encoding without folds, the label slipped in as a column), test predictions that do not come from the model. What
they do not: leakage through other rows of the test set, a cheat that only acts when the data are the original (it
would have to recognise the probe's copies: train differs only in labels, test only by rows that also are in train),
a model that is honest on train rows and dishonest only on rows it has never seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from crew import Task, canonical_labels, positive_label, read_table

__all__ = ["Perturbation", "ProbeVerdict", "judge", "judge_canaries", "perturb_train"]

_Z_CAUGHT = 5.0  # the groups' difference in standard errors: far beyond chance for an honest experiment


@dataclass
class ProbeVerdict:
    """`caught` when rows whose labels changed moved towards them more than comparable rows did."""

    caught: bool
    effect: float
    z: float
    rows: int
    note: str


@dataclass
class Perturbation:
    """What the probe changed: `sources` maps each task file (relative to task.yaml) to the copy served in its place;
    train rows `rows` got labels `new` (others keep `old`; `hypothetical` is a label drawn the same way for every
    row); canary train rows `canary_rows` sit in the test copy at `canary_positions`, under `canary_ids`."""

    sources: dict[str, str]
    rows: np.ndarray
    old: np.ndarray
    new: np.ndarray
    hypothetical: np.ndarray
    canary_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    canary_positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    canary_ids: list[str] = field(default_factory=list)


def perturb_train(task: Task, folder: Path, seed: int) -> Perturbation:
    """Write the probe's copies into `folder`: the train table with new labels for a random set of rows and, when the
    task has a test table, that table (and its sample submission) with canary rows shuffled in."""
    assert task.data is not None and task.target is not None
    frame = read_table(task.path(task.data.train))
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
    folder.mkdir(parents=True, exist_ok=True)
    train_copy = folder / Path(task.data.train).name
    _write(frame.with_columns(series), train_copy)
    out = Perturbation(sources={task.data.train: str(train_copy)}, rows=chosen, old=values, new=changed,
                       hypothetical=hypothetical)
    if task.data.test:
        free = np.setdiff1d(known, chosen)
        _plant_canaries(task, frame, free, folder, rng, out)
    return out


def _write(frame: pl.DataFrame, path: Path) -> None:
    if path.suffix.lower() == ".parquet":
        frame.write_parquet(path)
    else:
        frame.write_csv(path)


def _plant_canaries(task: Task, train: pl.DataFrame, free: np.ndarray, folder: Path, rng: np.random.Generator,
                    out: Perturbation) -> None:
    """Place copies of some unchanged train rows (without their labels) among the test rows, under fresh ids."""
    assert task.data is not None and task.data.test is not None
    test = read_table(task.path(task.data.test))
    sample = read_table(task.path(task.data.sample_submission)) if task.data.sample_submission else None
    k = int(min(300, max(30, len(free) // 5), len(free)))
    id_col = task.id_column if task.id_column and task.id_column in test.columns else None
    if k < 10 or (sample is not None and id_col is None and sample.height != test.height) \
            or (sample is not None and id_col is not None and id_col not in sample.columns):
        return  # too few rows to spare, or a sample submission the canaries could not be aligned with
    rows = np.sort(rng.choice(free, size=k, replace=False))
    canary = train[rows.tolist()]
    columns = []
    for name, dtype in test.schema.items():
        column = canary[name] if name in canary.columns else pl.Series(name, [None] * k)
        columns.append(column.cast(dtype, strict=False).alias(name))
    canary = pl.DataFrame(columns)
    ids: list[str] = []
    if id_col:
        fresh = _fresh_ids(test[id_col], train[id_col] if id_col in train.columns else None, rows, k, rng)
        canary = canary.with_columns(fresh.cast(test[id_col].dtype, strict=False).alias(id_col))
        ids = canonical_labels(canary[id_col].to_list()).tolist()
    order = rng.permutation(test.height + k)
    _write(pl.concat([test, canary])[order.tolist()], folder / Path(task.data.test).name)
    out.sources[task.data.test] = str(folder / Path(task.data.test).name)
    if sample is not None and task.data.sample_submission:
        filler = sample.head(1).select(pl.all().repeat_by(k).explode()) if sample.height else sample
        if id_col:
            filler = filler.with_columns(canary[id_col].cast(sample[id_col].dtype, strict=False).alias(id_col))
        whole = pl.concat([sample, filler])[order.tolist()]
        _write(whole, folder / Path(task.data.sample_submission).name)
        out.sources[task.data.sample_submission] = str(folder / Path(task.data.sample_submission).name)
    out.canary_rows = rows
    out.canary_positions = np.argsort(order)[test.height:]
    out.canary_ids = ids


def _fresh_ids(test_ids: pl.Series, train_ids: pl.Series | None, rows: np.ndarray, k: int,
               rng: np.random.Generator) -> pl.Series:
    """Ids that look like the test's and name no row a cheat could look up: for integers, unused values drawn over
    the test's range; otherwise ids of other train rows (a lookup gives another row's label), else random text."""
    in_test = set(canonical_labels(test_ids.to_list()))
    train_keys = canonical_labels(train_ids.to_list()) if train_ids is not None else np.array([], dtype=object)
    taken = in_test | set(train_keys)
    if test_ids.dtype.is_integer() or test_ids.dtype.is_float():
        present = test_ids.drop_nulls()
        lo, hi = (int(present.min()), int(present.max())) if len(present) else (0, 0)  # type: ignore[arg-type]
        span = max(hi - lo + 1, 1) + 4 * k
        picked: list[int] = []
        while len(picked) < k:
            for v in rng.integers(lo, lo + span, size=2 * k).tolist():
                if str(v) not in taken and len(picked) < k:
                    picked.append(v)
                    taken.add(str(v))
        return pl.Series(test_ids.name, picked)
    if train_ids is not None:
        canaries = set(rows.tolist())
        others = [v for i, (v, key) in enumerate(zip(train_ids.to_list(), train_keys, strict=True))
                  if v is not None and i not in canaries and key not in in_test]
        if len(others) >= k:
            return pl.Series(test_ids.name, [others[int(i)] for i in rng.choice(len(others), size=k, replace=False)])
    width = max((len(str(v)) for v in test_ids.to_list()[:100]), default=8)
    made = ["".join(rng.choice(list("0123456789abcdef"), size=max(width, 8)).tolist()) for _ in range(k)]
    return pl.Series(test_ids.name, made)


def _other(rng: np.random.Generator, classes: list[object], value: object) -> object:
    others = [c for c in classes if c != value]
    return others[int(rng.integers(len(others)))] if others else value


def judge(task: Task, change: Perturbation, before: Path, after: Path) -> ProbeVerdict:
    """Compare the out-of-fold predictions of the original run (`before`) and the probe's (`after`)."""
    old, new, hypothetical = change.old, change.new, change.hypothetical
    n = len(old)
    in_s = np.zeros(n, dtype=bool)
    in_s[change.rows] = True
    p0, p1 = _oof(task, before, n), _oof(task, after, n)
    target_new = np.where(in_s, new, hypothetical)
    moves = _moves(task, old, target_new, p0, p1)
    ok = np.isfinite(moves)
    s, c = moves[ok & in_s], moves[ok & ~in_s]
    if len(s) < 10 or len(c) < 10:
        return ProbeVerdict(False, 0.0, 0.0, len(s), "too few rows to compare")
    effect = float(s.mean() - c.mean())
    se = math.sqrt(s.var(ddof=1) / len(s) + c.var(ddof=1) / len(c))
    z = effect / se if se > 0 else (math.inf if effect > 1e-9 else 0.0)
    caught = z > _Z_CAUGHT
    note = (f"rows given new labels moved {effect:+.4g} towards them beyond comparable rows (z {z:.1f}, "
            f"{len(s)} rows)")
    return ProbeVerdict(caught, effect, float(z), len(s), note)


def judge_canaries(task: Task, change: Perturbation, after: Path) -> ProbeVerdict:
    """Compare, canary by canary, the probe run's submitted prediction with its out-of-fold prediction for the same
    train row: a submission that is worse than cross-validation on rows the model trained on did not come from it."""
    k = len(change.canary_rows)
    if k < 10:
        return ProbeVerdict(False, 0.0, 0.0, k, "no canary rows (too few train rows to spare)")
    submitted = read_table(after / "predictions.csv")
    if change.canary_ids and task.id_column and task.id_column in submitted.columns:
        keys = canonical_labels(submitted[task.id_column].to_list()).tolist()
        where = {key: i for i, key in enumerate(keys)}
        missing = [c for c in change.canary_ids if c not in where]
        if missing:
            return ProbeVerdict(True, math.inf, math.inf, k, f"predictions.csv leaves out {len(missing)} of the {k} "
                                                             f"test rows planted by the probe (e.g. id {missing[0]})")
        picked = submitted[[where[c] for c in change.canary_ids]]
    else:
        positions = change.canary_positions
        if submitted.height <= int(positions.max()):
            return ProbeVerdict(True, math.inf, math.inf, k, f"predictions.csv has {submitted.height} rows, fewer "
                                                             "than the probe's test table")
        picked = submitted[positions.tolist()]
    truth = change.new[change.canary_rows]
    oof = _oof(task, after, len(change.old))[change.canary_rows]
    test = _prediction_values(task, picked)
    q_oof, q_test = _quality(task, oof, truth, test), _quality(task, test, truth, oof)
    d = (q_oof - q_test)[np.isfinite(q_oof - q_test)]
    if len(d) < 10:
        return ProbeVerdict(False, 0.0, 0.0, len(d), "too few canary predictions to compare")
    effect, sd = float(d.mean()), float(d.std(ddof=1))
    z = effect / (sd / math.sqrt(len(d))) if sd > 0 else (math.inf if effect > 1e-9 else 0.0)
    note = (f"on {len(d)} canary rows the submission is {effect:+.4g} worse per row than the same rows' out-of-fold "
            f"predictions (z {z:.1f})")
    return ProbeVerdict(z > _Z_CAUGHT, effect, float(z), len(d), note)


def _prediction_values(task: Task, frame: pl.DataFrame) -> np.ndarray:
    """A prediction file's rows as one value (label, number or P(positive)) or one probability per class."""
    per_class = [c for c in task.classes if c in frame.columns]
    if task.target_type == "multiclass" and per_class == task.classes:
        return frame.select(per_class).to_numpy().astype(float)
    column = frame[str(task.target)] if task.target in frame.columns else frame[frame.columns[-1]]
    return column.to_numpy()


def _quality(task: Task, values: np.ndarray, truth: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per row, how good a prediction is for its true label (higher is better), on a scale shared with `other`:
    minus the scaled absolute error for numbers, the true class's probability, or 1/0 for a right/wrong label
    (when either side holds labels, both are read as labels, so the two are compared alike)."""
    if task.target_type == "regression":
        y, v = truth.astype(float), np.asarray(values, dtype=float)
        return -np.abs(v - y) / (float(np.nanstd(y)) or 1.0)
    labels = [str(c) for c in task.classes]
    index = {c: i for i, c in enumerate(labels)}
    true_i = np.array([index.get(t, -1) for t in canonical_labels(truth)])
    ok = true_i >= 0
    positive = labels.index(positive_label(labels)) if len(labels) == 2 else -1
    if _label_like(values) or _label_like(other):
        chosen = _as_labels(values, labels, positive)
        return np.where(ok, (chosen == np.asarray(labels, dtype=object)[np.maximum(true_i, 0)]).astype(float), np.nan)
    out = np.full(len(truth), np.nan)
    if np.ndim(values) == 2:
        out[ok] = np.asarray(values, dtype=float)[np.flatnonzero(ok), true_i[ok]]
    elif positive >= 0:
        numbers = np.asarray(values, dtype=float)
        out[ok] = np.where(true_i == positive, numbers, 1.0 - numbers)[ok]
    return out


def _label_like(values: np.ndarray) -> bool:
    """One column of class labels (text, or whole numbers such as 0/1), not probabilities."""
    if np.ndim(values) != 1:
        return False
    numbers = _as_float(values)
    return numbers is None or bool(np.all(np.isfinite(numbers) & (numbers == np.round(numbers))))


def _as_labels(values: np.ndarray, labels: list[str], positive: int) -> np.ndarray:
    """Predictions as class labels: the likeliest class, P(positive) >= 0.5, or the label written."""
    if np.ndim(values) == 2:
        return np.asarray(labels, dtype=object)[np.asarray(values, dtype=float).argmax(axis=1)]
    if not _label_like(values) and positive >= 0:
        numbers = np.asarray(values, dtype=float)
        return np.asarray(labels, dtype=object)[np.where(numbers >= 0.5, positive, 1 - positive)]
    return canonical_labels(values)


def _oof(task: Task, folder: Path, n: int) -> np.ndarray:
    """Out-of-fold predictions in train-row order: one column (a value, a label or P(positive)) or one per class."""
    frame = read_table(folder / "oof.csv")
    if task.id_column and task.id_column in frame.columns:
        ids = read_table(task.path(task.data.train)).select(task.id_column)  # type: ignore[union-attr]
        frame = ids.join(frame, on=task.id_column, how="left", maintain_order="left")
    if len(frame) != n:
        raise ValueError(f"oof.csv has {len(frame)} rows for {n} train rows")
    return _prediction_values(task, frame)


def _moves(task: Task, old: np.ndarray, new: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """Each row's move towards its new label: positive when the prediction went that way."""
    if task.target_type == "regression":
        old_f, new_f = old.astype(float), new.astype(float)
        scale = float(np.nanstd(old_f)) or 1.0
        return (p1.astype(float) - p0.astype(float)) * (new_f - old_f) / scale**2
    labels = [str(c) for c in task.classes]
    index = {c: i for i, c in enumerate(labels)}
    old_i = np.array([index.get(v, -1) for v in canonical_labels(old)])
    new_i = np.array([index.get(v, -1) for v in canonical_labels(new)])
    valid = (old_i >= 0) & (new_i >= 0)
    out = np.full(len(old), np.nan)
    if p0.ndim == 2:  # one probability column per class
        rows = np.flatnonzero(valid)
        gain_new = p1[rows, new_i[rows]] - p0[rows, new_i[rows]]
        gain_old = p1[rows, old_i[rows]] - p0[rows, old_i[rows]]
        out[rows] = gain_new - gain_old
        return out
    q0, q1 = _as_float(p0), _as_float(p1)  # P(positive class), as TASK_FORMAT's binary probabilities
    if q0 is not None and q1 is not None and np.nanmin(q0) >= 0 and np.nanmax(q0) <= 1 and len(labels) == 2:
        direction = np.where(new_i == index[positive_label(labels)], 1.0, -1.0)
        out[valid] = ((q1 - q0) * direction)[valid]
        return out
    wanted = canonical_labels(new)
    agree_before = (canonical_labels(p0) == wanted).astype(float)
    agree_after = (canonical_labels(p1) == wanted).astype(float)
    out[valid] = (agree_after - agree_before)[valid]
    return out


def _as_float(values: np.ndarray) -> np.ndarray | None:
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return None
