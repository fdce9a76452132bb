"""Final selection: greedy ensemble selection over experiment predictions, weighed honestly against the best single model.

Every experiment script (`crew.tools.pipelines`) leaves `oof.csv` and
`test_pred.csv` in its folder: raw predictions (class probabilities or
values) for the train rows it never fitted on, and for the test rows. This
module turns a set of such folders into one answer:

1. `load_candidates` reads and aligns them to the task's row order, and
   reports (never silently drops) folders it cannot use.
2. `ensemble_selection` is Caruana et al. (2004) greedy selection with
   replacement, as AutoGluon and auto-sklearn use it: integer weights that
   average the candidates' raw predictions.
3. `choose` decides between that ensemble and the best single model. The
   ensemble's weights are fitted on the very OOF rows that score it, so its
   in-sample score flatters it; the decision instead uses nested selection
   (weights and "best single" picked on K-1 folds of the OOF rows, scored on
   the held-out fold) and demands a gain larger than `margin` paired
   bootstrap standard errors.
4. `crew.tools.submission.submission_frame` writes raw predictions in the task's submission format.

`select(task, folders)` does all of it in one call.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from crew import METRICS, Metric, Task, canonical_labels, oriented, positive_label
from crew.errors import CrewError
from crew.tools import artifacts
from crew.tools.script import decided as _decided
from crew.tools.script import fit_weights
from crew.tools.submission import TaskRows, task_rows

__all__ = [
    "Candidate",
    "Candidates",
    "EnsembleError",
    "Selection",
    "Skipped",
    "choose",
    "ensemble_selection",
    "load_candidates",
    "score_raw",
    "select",
    "stack_inputs",
    "stack_predict",
]

log = logging.getLogger(__name__)

Scorer = Callable[[np.ndarray], float]
"""Raw predictions (rows aligned with some y) -> the metric's value, in the metric's own direction."""


class EnsembleError(CrewError):
    """Nothing usable to select from (or, with `strict=True`, a folder that cannot be used)."""


# -- the task's rows ---------------------------------------------------------------------------


# -- candidates -----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Candidate:
    """One experiment's predictions, aligned to the task's train and test row order."""

    name: str
    folder: Path
    oof: np.ndarray
    """(train rows, classes) probabilities, or (train rows,) values for regression."""
    test: np.ndarray
    """The same for the test rows."""
    score: float
    """The task metric on `oof` (our own scoring, not the script's claim)."""
    reported_cv: float | None = None
    """`cv` from the folder's metrics.json, if any: kept to spot a script that scored differently."""


@dataclass(frozen=True)
class Skipped:
    """A folder that could not be used, and why (so that a report can say so)."""

    folder: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.folder}: {self.reason}"


class Candidates(list[Candidate]):
    """The usable candidates (a plain list of them), plus what was skipped and the task's rows they align to."""

    def __init__(self, items: Iterable[Candidate], *, rows: TaskRows, skipped: Iterable[Skipped] = ()) -> None:
        super().__init__(items)
        self.rows = rows
        self.skipped = list(skipped)


def _rows(task: Task) -> TaskRows:
    try:
        return task_rows(task)
    except CrewError as exc:
        raise EnsembleError(str(exc)) from None


class _Unusable(Exception):
    """A folder problem, phrased for a human; becomes a Skipped entry."""


_ROUNDING = 1e-9
"""How far outside [0, 1] an averaged probability may land by float rounding (folds x repeats x seeds of 1/k each
can sum to 1 + 2e-16) and still be read, clipped, as a probability."""


def _read_predictions(path: Path, task: Task, which: str) -> np.ndarray:
    """One oof.csv / test_pred.csv aligned to the task's rows, as final selection blends them: class probabilities
    in [0, 1] (or values for regression); _Unusable says what is wrong."""
    try:
        kind, values = artifacts.aligned_predictions(path, task, which)
    except artifacts.ArtifactError as exc:
        raise _Unusable(str(exc)) from None
    if task.target_type == "regression":
        return values
    if kind != "proba":
        raise _Unusable(f"{path.name} holds no probability column per class {task.classes[:10]}: final selection "
                        "blends probabilities")
    if values.min() < -_ROUNDING or values.max() > 1 + _ROUNDING:
        raise _Unusable(f"{path.name} holds probabilities outside [0, 1] ({values.min():.6g} to {values.max():.6g})")
    if (values.sum(axis=1) <= 0).any():
        raise _Unusable(f"{path.name} has rows whose class probabilities sum to 0")
    return np.clip(values, 0.0, 1.0)


def _reported_cv(folder: Path) -> float | None:
    try:
        value = json.loads((folder / "metrics.json").read_text(encoding="utf-8")).get("cv")
        return float(value) if value is not None else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def load_candidates(task: Task, folders: Iterable[str | Path], *, strict: bool = False,
                    rows: TaskRows | None = None) -> Candidates:
    """Read each experiment folder's oof.csv and test_pred.csv, aligned by id to the task's row order.

    Rows are matched by id rather than by position because a script may
    write them in any order; a folder whose files are missing, malformed or
    cover other rows is skipped with its reason in `.skipped` (and logged),
    or raises EnsembleError when `strict`.
    """
    rows = rows or _rows(task)
    kept: list[Candidate] = []
    skipped: list[Skipped] = []
    names: set[str] = set()
    scorer = _scorer(task, _encode(task, rows.y))
    for folder in map(Path, folders):
        try:
            if not folder.is_dir():
                raise _Unusable("is not a folder")
            oof = _read_predictions(folder / "oof.csv", task, "train")
            test = _read_predictions(folder / "test_pred.csv", task, "test")
        except _Unusable as exc:
            if strict:
                raise EnsembleError(f"{folder}: {exc}") from None
            log.warning("ensemble: skipping %s: %s", folder, exc)
            skipped.append(Skipped(folder, str(exc)))
            continue
        name, n = folder.name or str(folder), 2
        while name in names:
            name, n = f"{folder.name}#{n}", n + 1
        names.add(name)
        kept.append(Candidate(name=name, folder=folder, oof=oof, test=test, score=scorer(oof),
                              reported_cv=_reported_cv(folder)))
    return Candidates(kept, rows=rows, skipped=skipped)


# -- scoring raw predictions ---------------------------------------------------------------------


def _as_metric_input(task: Task, raw: np.ndarray) -> np.ndarray:
    """Raw predictions in the form `Metric.score` and grading take: labels, positive-class column, or values."""
    metric = task.metric_info
    if task.target_type == "regression":
        return np.clip(raw, 0, None) if metric.nonnegative else raw
    if metric.submission == "label":
        return np.asarray(task.classes, dtype=object)[raw.argmax(axis=1)]
    if task.target_type == "binary":
        return raw[:, task.classes.index(positive_label(task.classes))]
    return raw


def score_raw(task: Task, y: Sequence[object] | np.ndarray, raw: np.ndarray) -> float:
    """The task's metric on raw predictions, exactly as grading would score their submission."""
    return float(task.metric_info.score(y, _as_metric_input(task, np.asarray(raw, dtype=float)), task.classes))


def _encode(task: Task, y: np.ndarray) -> np.ndarray:
    """The target as `_scorer` takes it: class indices into `task.classes`, or floats for regression.

    Done once per selection: canonicalising labels is slow in Python, and
    every fold and bootstrap resample would otherwise redo it.
    """
    if task.target_type == "regression":
        return np.asarray(y, dtype=float)
    index = {c: i for i, c in enumerate(task.classes)}
    return np.array([index[c] for c in canonical_labels(y)], dtype=int)


def _scorer(task: Task, target: np.ndarray) -> Scorer:
    """A scorer of raw predictions for rows whose `_encode`d target is `target`: the metric's own fast scorer, or
    `score_raw` (through scikit-learn) for a metric without one; both equal grading (tested)."""
    metric: Metric = task.metric_info
    if metric.fast is not None:
        return metric.fast(target, task.classes, str(task.target_type))
    if task.target_type == "regression":
        values = np.asarray(target, dtype=float)
        return lambda p: score_raw(task, values, p)
    labels = np.asarray(task.classes, dtype=object)[np.asarray(target, dtype=int)]
    return lambda p: score_raw(task, labels, p)


def _gain(metric: Metric, value: float) -> float:
    """A score turned higher-is-better; NaN (undefined on these rows) is the worst possible."""
    if not math.isfinite(value):
        return -math.inf
    return oriented(value, metric.higher_is_better)


# -- greedy ensemble selection -------------------------------------------------------------------


def _greedy(preds: Sequence[np.ndarray], gain: Callable[[np.ndarray], float], *, rounds: int, init: int) -> np.ndarray:
    """Caruana's selection with replacement; integer counts of the best-scoring round (ties: earliest, lowest index).

    Starting from the `init` best single models ("sorted initialisation")
    and keeping the best prefix means the result never scores worse
    in-sample than the best single model.
    """
    m = len(preds)
    singles = np.array([gain(p) for p in preds])
    order = sorted(range(m), key=lambda i: (-singles[i], i))
    counts = np.zeros(m, dtype=int)
    total = np.zeros_like(preds[0], dtype=float)
    for i in order[:max(1, min(init, m))]:
        counts[i] += 1
        total += preds[i]
    size = int(counts.sum())
    best_gain, best_counts = gain(total / size), counts.copy()
    for _ in range(max(0, rounds - size)):
        gains = [gain((total + p) / (size + 1)) for p in preds]
        pick = int(np.argmax(gains))
        counts[pick] += 1
        total += preds[pick]
        size += 1
        if gains[pick] > best_gain + 1e-12 * max(1.0, abs(best_gain)):
            best_gain, best_counts = gains[pick], counts.copy()
    return best_counts


GREEDY_ROWS = 50_000
"""Greedy selection scores its blends on at most this many rows (a fixed random sample): each round scores every
candidate, and on 240,000 rows a ranking metric's sort made final selection outlast the run's reserve, while the
weights it finds on 50,000 rows are the same to within noise."""


def _greedy_on(task: Task, preds: Sequence[np.ndarray], y: np.ndarray, *, rounds: int, init: int,
               seed: int) -> np.ndarray:
    """`_greedy` on these rows' predictions with the blend fitted to `_proxy`, on a sample of `GREEDY_ROWS`."""
    rows = np.arange(len(y))
    if len(y) > GREEDY_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(len(y), GREEDY_ROWS, replace=False))
    return _greedy([p[rows] for p in preds], _proxy(task, y[rows]), rounds=rounds, init=init)


def _blend(preds: Sequence[np.ndarray], counts: np.ndarray) -> np.ndarray:
    total = sum(c * p for c, p in zip(counts, preds, strict=True) if c)
    return np.asarray(total, dtype=float) / counts.sum()


def ensemble_selection(task: Task, candidates: Sequence[Candidate], *, rounds: int = 25, init: int = 1) -> dict[str, int]:
    """Greedy ensemble selection with replacement (Caruana et al. 2004) on all OOF rows: integer weight per candidate.

    The weights average raw predictions (probabilities or values); the
    metric judges the average as grading would (argmax for label metrics,
    the positive column for binary probability metrics).
    """
    if not candidates:
        raise EnsembleError("no candidates to select from")
    rows = getattr(candidates, "rows", None) or _rows(task)
    scorer, metric = _scorer(task, _encode(task, rows.y)), task.metric_info
    counts = _greedy([c.oof for c in candidates], lambda p: _gain(metric, scorer(p)), rounds=rounds, init=init)
    return {c.name: int(n) for c, n in zip(candidates, counts, strict=True)}


# -- choosing between the ensemble and the best single model --------------------------------------


@dataclass(frozen=True, eq=False)
class Selection:
    """What the final step submits, and why: the chosen kind, its weights, an honest score and its spread."""

    kind: Literal["ensemble", "stack", "single"]
    weights: dict[str, int]
    """Weight per candidate of what is submitted (the single model has 1, every other 0; a stack 1 for every input)."""
    cv: float
    """Nested estimate of the chosen option: predictions for each OOF row made by a choice that did not see it."""
    spread: float
    """Standard deviation of the chosen option's score over the nested folds (like an experiment's cv_std)."""
    rationale: str
    oof: np.ndarray
    """The chosen option's raw OOF predictions (for an ensemble: weights fitted on all rows, so in-sample)."""
    test: np.ndarray
    """The chosen option's raw test predictions, rows in the test file's order."""
    test_ids: np.ndarray
    metric: str
    best_single: str
    ensemble_weights: dict[str, int]
    """Greedy weights on all OOF rows, whichever kind was chosen."""
    ensemble_cv: float
    single_cv: float
    gain: float
    """Nested ensemble score minus nested single score, in the metric's better direction (positive: ensemble better)."""
    gain_se: float
    """Paired bootstrap standard error of `gain`."""
    in_sample: float
    """The chosen option's score on its own OOF rows (optimistic for an ensemble)."""
    candidate_scores: dict[str, float]
    class_weights: list[float] | None = None
    """The decision for a metric that `decides` labels: labels are the argmax of `test` x these weights, fitted on
    the chosen option's OOF rows."""
    fold_scores: dict[str, list[float]] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    stacker: Any = None
    """For a stack: its fitted linear model, which reads `stack_inputs` of the `stacked_on` candidates' predictions
    (in that order) and predicts with `stack_predict`."""
    stacked_on: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Everything but the prediction arrays, JSON-ready (for the blackboard or a report)."""
        return {"kind": self.kind, "metric": self.metric, "cv": self.cv, "spread": self.spread,
                "weights": self.weights, "best_single": self.best_single, "ensemble_weights": self.ensemble_weights,
                "ensemble_cv": self.ensemble_cv, "single_cv": self.single_cv, "gain": self.gain,
                "gain_se": self.gain_se, "in_sample": self.in_sample, "candidate_scores": self.candidate_scores,
                "fold_scores": self.fold_scores, "rationale": self.rationale, "class_weights": self.class_weights,
                "skipped": [{"folder": str(s.folder), "reason": s.reason} for s in self.skipped]}


def _outer_folds(task: Task, y: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    n = len(y)
    folds = max(2, min(folds, n // 2))
    if task.target_type != "regression":
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= folds:
            splitter: KFold | StratifiedKFold = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            return [held for _, held in splitter.split(np.zeros(n), y)]
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return [held for _, held in splitter.split(np.zeros(n))]


def _fmt(value: float) -> str:
    return f"{value:.5g}"


def _decides(task: Task) -> bool:
    """Whether the task's labels are decided from probabilities with fitted class weights (`Metric.decides`)."""
    return task.metric_info.decides and task.target_type != "regression"


def _decision(task: Task, target: np.ndarray, raw: np.ndarray) -> np.ndarray | None:
    """Class weights fitted on these rows for a metric that `decides` labels (see `crew.tools.script.fit_weights`),
    else None (plain argmax, or not labels at all)."""
    if not _decides(task):
        return None
    scorer = _scorer(task, target)
    return fit_weights(target, raw, lambda _, r: scorer(r))


def _proxy(task: Task, target: np.ndarray) -> Scorer:
    """What greedy weights are fitted to: the metric itself, or for a metric that decides labels the log loss of
    the blend (its decision is fitted afterwards; a blend's probabilities are what the decision needs)."""
    if _decides(task):
        fast = METRICS["log_loss"].fast
        assert fast is not None
        loss = fast(target, task.classes, str(task.target_type))
        return lambda p: -loss(p)
    metric = task.metric_info
    scorer = _scorer(task, target)
    return lambda p: _gain(metric, scorer(p))


DECIDED_SHORTLIST = 3
"""For a metric that decides labels, the best single model is chosen among this many candidates with the best
log loss: fitting a decision to every candidate on every fold costs seconds the run's reserve does not have."""


def _best(task: Task, preds: Sequence[np.ndarray], target: np.ndarray, gain: Callable[[np.ndarray], float]) -> int:
    """The index of the candidate with the best `gain` on these rows (for a deciding metric, among the
    `DECIDED_SHORTLIST` with the best log loss)."""
    indices = list(range(len(preds)))
    if _decides(task) and len(preds) > DECIDED_SHORTLIST:
        proxy = _proxy(task, target)
        indices = sorted(indices, key=lambda i: proxy(preds[i]), reverse=True)[:DECIDED_SHORTLIST]
    return max(indices, key=lambda i: gain(preds[i]))


def stack_inputs(regression: bool, preds: Sequence[np.ndarray]) -> np.ndarray:
    """What the stacker reads: each candidate's values, or its class log-probabilities (one column for binary)."""
    if regression:
        return np.column_stack([np.asarray(p, dtype=float).reshape(len(p), -1) for p in preds])
    columns = []
    for p in preds:
        logs = np.log(np.clip(p, 1e-6, 1.0))
        columns.append(logs[:, 1:2] - logs[:, 0:1] if p.shape[1] == 2 else logs)
    return np.column_stack(columns)


STACK_INPUTS = 5
"""The stack reads the best this many candidates (by their own OOF score): more inputs than that add variance,
and time (a multinomial fit grows with candidates x classes)."""
STACK_SECONDS = 10.0
"""Final selection gives up the stack when its nested fits have taken this long (the run's reserve is small)."""


def _stack(task: Task, X: np.ndarray, y: np.ndarray, X_new: np.ndarray, width: int) -> np.ndarray:
    """A linear model fitted on candidates' OOF predictions `X` (ridge with its penalty chosen by leave-one-out, or
    a regularised logistic regression on standardized log-odds), predicting raw values or class probabilities
    for `X_new`."""
    return stack_predict(_stacker(task, X, y), X_new, width)


def stack_predict(model: Any, X: np.ndarray, width: int) -> np.ndarray:
    """A fitted stacker's raw predictions for stack inputs `X` (`stack_inputs`): values, or probabilities in
    `width` class columns (a class the stacker never saw gets 0)."""
    if not hasattr(model, "predict_proba"):
        return np.asarray(model.predict(X), dtype=float)
    raw = np.zeros((len(X), width))
    raw[:, model.classes_] = model.predict_proba(X)
    return raw


def _stacker(task: Task, X: np.ndarray, y: np.ndarray) -> Any:
    """The stack's linear model, fitted on candidates' OOF predictions `X` (see `_stack`)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task.target_type == "regression":
        return RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(X, y)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=300))
    with warnings.catch_warnings():  # 300 iterations of standardized inputs: close enough when not converged
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return model


def choose(task: Task, candidates: Sequence[Candidate], *, rounds: int = 25, init: int = 1, folds: int = 5,
           margin: float = 0.0, bootstraps: int = 200, seed: int = 0, stack: bool = True) -> Selection:
    """Pick the greedy ensemble or the best single model, on evidence that is not biased towards the ensemble.

    Nested selection: the OOF rows are split into `folds`; on each, the
    greedy weights and the best single model are chosen on the other folds
    and both scored on the held-out one. That gives every row an honest
    ensemble prediction and an honest single-model prediction. Their paired
    difference is bootstrapped over rows (`bootstraps` resamples) for its
    standard error. The ensemble wins when its nested gain is positive and
    exceeds `margin` standard errors (0 by default: the nested estimate is
    already unbiased, and an averaged blend rarely loses what it gains).
    A stacking layer (a linear model on the candidates' OOF predictions;
    `stack=False` leaves it out) is checked the same nested way and takes the
    blend's place when its nested score is better.
    For a metric that `decides` labels, the blend is fitted to the log loss
    and each option's decision (class weights) is fitted on the same rows
    as its choice, then applied to the held-out ones.
    """
    if rounds < 1 or init < 1 or folds < 2 or margin < 0 or bootstraps < 2:
        raise ValueError("need rounds >= 1, init >= 1, folds >= 2, margin >= 0 and bootstraps >= 2")
    if not candidates:
        skipped = getattr(candidates, "skipped", [])
        detail = "; ".join(str(s) for s in skipped) or "no folders given"
        raise EnsembleError(f"no usable experiment predictions to select from ({detail})")
    rows = getattr(candidates, "rows", None) or _rows(task)
    skipped = list(getattr(candidates, "skipped", []))
    metric = task.metric_info
    y = _encode(task, rows.y)
    preds = [c.oof for c in candidates]
    names = [c.name for c in candidates]

    def gain_on(idx: np.ndarray | None) -> Callable[[np.ndarray], float]:
        """The decided score on these rows: the decision fitted on them first, when the metric has one."""
        target = y if idx is None else y[idx]
        scorer = _scorer(task, target)
        return lambda p: _gain(metric, scorer(_decided(p, _decision(task, target, p))))

    # Nested: choose on K-1 folds, predict the held-out one.
    ensemble_nested = np.zeros_like(preds[0], dtype=float)
    single_nested = np.zeros_like(preds[0], dtype=float)
    stack_nested = np.zeros_like(preds[0], dtype=float)
    inputs = sorted(range(len(preds)), key=lambda i: _gain(metric, candidates[i].score), reverse=True)[:STACK_INPUTS]
    regression = task.target_type == "regression"
    stack_X = stack_inputs(regression, [preds[i] for i in inputs]) if stack and len(preds) > 1 else None
    stack_seconds, stack_note = 0.0, ""
    width = preds[0].shape[1] if preds[0].ndim == 2 else 1
    fold_scores: dict[str, list[float]] = {"ensemble": [], "single": [], "stack": []}
    outer = _outer_folds(task, y, folds, seed)
    everything = np.arange(len(y))
    for held in outer:
        inner = np.setdiff1d(everything, held, assume_unique=True)
        inner_preds = [p[inner] for p in preds]
        inner_gain = gain_on(inner)
        counts = _greedy_on(task, inner_preds, y[inner], rounds=rounds, init=init, seed=seed)
        best = _best(task, inner_preds, y[inner], inner_gain)
        blend_weights = _decision(task, y[inner], _blend(inner_preds, counts))
        ensemble_nested[held] = _decided(_blend([p[held] for p in preds], counts), blend_weights)
        single_nested[held] = _decided(preds[best][held], _decision(task, y[inner], inner_preds[best]))
        held_score = _scorer(task, y[held])
        fold_scores["ensemble"].append(held_score(ensemble_nested[held]))
        fold_scores["single"].append(held_score(single_nested[held]))
        if stack_X is not None:
            stack_started = time.monotonic()
            stacked = _stack(task, stack_X[inner], y[inner], np.concatenate([stack_X[inner], stack_X[held]]), width)
            stack_nested[held] = _decided(stacked[len(inner):], _decision(task, y[inner], stacked[:len(inner)]))
            fold_scores["stack"].append(held_score(stack_nested[held]))
            stack_seconds += time.monotonic() - stack_started
            if stack_seconds > STACK_SECONDS:
                stack_X, stack_note = None, f"; the stack was given up after {STACK_SECONDS:g}s of nested fits"

    full = _scorer(task, y)
    ensemble_cv, single_cv = full(ensemble_nested), full(single_nested)
    stack_cv = full(stack_nested) if stack_X is not None else math.nan
    stacked_wins = stack_X is not None and _gain(metric, stack_cv) > _gain(metric, ensemble_cv)
    blend_cv = ensemble_cv
    if stacked_wins:  # the stack is the combined option the single model is weighed against
        ensemble_nested, ensemble_cv = stack_nested, stack_cv
    gain = _gain(metric, ensemble_cv) - _gain(metric, single_cv)
    rng = np.random.default_rng(seed)
    diffs = []
    # the SE of a mean over many rows is well estimated from fewer resamples, each of which scores every row
    for _ in range(bootstraps if len(y) <= GREEDY_ROWS else max(2, bootstraps // 4)):
        idx = rng.integers(0, len(y), len(y))
        score = _scorer(task, y[idx])
        d = _gain(metric, score(ensemble_nested[idx])) - _gain(metric, score(single_nested[idx]))
        if math.isfinite(d):
            diffs.append(d)
    gain_se = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else math.inf
    if not math.isfinite(gain):
        gain = 0.0 if ensemble_cv == single_cv else -math.inf

    # Final fits on all OOF rows.
    all_gain = gain_on(None)
    counts = _greedy_on(task, preds, y, rounds=rounds, init=init, seed=seed)
    ensemble_weights = {n: int(c) for n, c in zip(names, counts, strict=True)}
    best = _best(task, preds, y, all_gain)
    used = [n for n, c in ensemble_weights.items() if c]
    prefer_ensemble = (len(used) > 1 or stacked_wins) and gain > 0 and gain > margin * gain_se

    k = len(outer)
    mix = ", ".join(f"{n}×{c}" for n, c in ensemble_weights.items() if c)
    how = (f"nested {k}-fold check: weights and best single model chosen on {k - 1}/{k} of the OOF rows, "
           f"scored on the rest; {metric.name} ensemble {_fmt(ensemble_cv)} vs single {_fmt(single_cv)}, "
           f"gain {_fmt(gain)} with paired bootstrap SE {_fmt(gain_se)}")
    if stacked_wins:
        how += f" (the stack's nested {_fmt(stack_cv)} beat the greedy blend's {_fmt(blend_cv)})"
    stacker, stacked_on = None, []
    if prefer_ensemble and stacked_wins and stack_X is not None:
        kind: Literal["ensemble", "stack", "single"] = "stack"
        weights = {n: int(i in inputs) for i, n in enumerate(names)}
        test_X = stack_inputs(regression, [candidates[i].test for i in inputs])
        stacker = _stacker(task, stack_X, y)
        stacked_on = [names[i] for i in inputs]
        oof, test = stack_predict(stacker, stack_X, width), stack_predict(stacker, test_X, width)
        cv, spread = stack_cv, float(np.std(fold_scores["stack"]))
        verdict = (f"stack (a linear model on the {len(inputs)} best candidates' OOF predictions): its gain is "
                   f"{gain / gain_se if gain_se > 0 else math.inf:.2f} SE, above the margin of {margin:g} SE")
    elif prefer_ensemble:
        kind = "ensemble"
        weights = ensemble_weights
        oof = _blend(preds, counts)
        test = _blend([c.test for c in candidates], counts)
        cv, spread = ensemble_cv, float(np.std(fold_scores["ensemble"]))
        verdict = (f"ensemble ({mix}): its gain is {gain / gain_se if gain_se > 0 else math.inf:.2f} SE, "
                   f"above the margin of {margin:g} SE")
    else:
        kind = "single"
        weights = {n: int(i == best) for i, n in enumerate(names)}
        oof, test = preds[best], candidates[best].test
        cv, spread = single_cv, float(np.std(fold_scores["single"]))
        if len(candidates) == 1:
            verdict = f"single model {names[best]}: the only usable candidate"
        elif len(used) <= 1:
            verdict = f"single model {names[best]}: greedy selection on all rows added nothing to it"
        else:
            verdict = (f"single model {names[best]}: the ensemble ({mix}) does not beat it by more than "
                       f"{margin:g} SE on held-out rows, so its in-sample gain is not trusted")
    decision = _decision(task, y, oof)
    in_sample = full(_decided(oof, decision))
    rationale = (f"{verdict} ({how}{stack_note}); {metric.name} of the submitted option on its own OOF rows "
                 f"{_fmt(in_sample)}")
    if decision is not None:
        rationale += (f"; labels decided with class weights {np.round(decision, 3).tolist()} fitted on those rows "
                      f"(argmax alone: {_fmt(full(oof))})")
    if kind in ("ensemble", "stack"):
        rationale += " (optimistic: the weights were fitted on these rows)"
    if skipped:
        rationale += f"; skipped {len(skipped)} folder(s): " + "; ".join(str(s) for s in skipped)
    return Selection(kind=kind, weights=weights, cv=float(cv), spread=spread, rationale=rationale, oof=oof, test=test,
                     test_ids=rows.test_ids, metric=metric.name, best_single=names[best],
                     ensemble_weights=ensemble_weights, ensemble_cv=float(ensemble_cv), single_cv=float(single_cv),
                     gain=float(gain), gain_se=gain_se, in_sample=float(in_sample),
                     candidate_scores={c.name: c.score for c in candidates},
                     class_weights=None if decision is None else [float(w) for w in decision],
                     fold_scores=fold_scores, skipped=skipped, stacker=stacker, stacked_on=stacked_on)


# -- submission -------------------------------------------------------------------------------------


# -- one call -----------------------------------------------------------------------------------------


def select(task: Task, folders: Iterable[str | Path], *, rounds: int = 25, init: int = 1, folds: int = 5,
           margin: float = 0.0, seed: int = 0, strict: bool = False, stack: bool = True) -> Selection:
    """Load the experiment folders and choose what to submit; `crew.tools.submission.submission_frame(task,
    s.test_ids, s.test)` writes it."""
    candidates = load_candidates(task, folders, strict=strict)
    return choose(task, candidates, rounds=rounds, init=init, folds=folds, margin=margin, seed=seed, stack=stack)
