"""The metrics of TASK_FORMAT.md, each a thin wrapper over scikit-learn with its direction and kind."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
from sklearn import metrics as skm

__all__ = ["METRICS", "Metric", "best_first", "better", "canonical_labels", "get_metric", "oriented", "positive_label"]

T = TypeVar("T")


def oriented(score: float, higher_is_better: bool) -> float:
    """`score` turned higher-is-better: the one place a metric's direction becomes arithmetic (sort keys, gains,
    score differences)."""
    return score if higher_is_better else -score


def better(a: float, b: float | None, higher_is_better: bool) -> bool:
    """True when `a` beats `b` in the metric's direction (anything beats None)."""
    return b is None or oriented(a, higher_is_better) > oriented(b, higher_is_better)


def best_first(items: Iterable[T], higher_is_better: bool, score: Callable[[T], Any] | None = None) -> list[T]:
    """`items` that have a score, best first; ties keep their order. `score` reads an item's score (default: its
    `.score`), so experiments, rows and plain numbers rank the same way everywhere."""
    read = score or (lambda item: item.score)  # type: ignore[attr-defined]
    scored = [item for item in items if read(item) is not None]
    return sorted(scored, key=lambda item: oriented(read(item), higher_is_better), reverse=True)


def canonical_labels(values: Sequence[object] | np.ndarray) -> np.ndarray:
    """Class labels as strings that compare equal across csv round-trips (`1`, `1.0` and `"1"` agree).

    Submissions are written by many hands: a label column of integers often
    comes back as floats. Grading on raw values would call `1.0` wrong when
    the answer is `1`.
    """
    out = []
    for v in np.asarray(values, dtype=object):
        if isinstance(v, (bool, np.bool_)):
            out.append(str(bool(v)))
        elif isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer()):
            out.append(str(int(v)))
        else:
            out.append(str(v))
    return np.asarray(out, dtype=object)


def positive_label(classes: Sequence[str]) -> str:
    """The class a binary probability column refers to: `1`, else `True`, else the larger label.

    TASK_FORMAT says binary probabilities are for label 1; for other label
    pairs we follow scikit-learn's convention (the greater label is positive).
    """
    labels = sorted(str(c) for c in classes)
    for candidate in ("1", "True", "true", "yes", "Yes"):
        if candidate in labels:
            return candidate
    return labels[-1]


def _normalise_rows(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=float)
    return probs / probs.sum(axis=1, keepdims=True)


def _binary(y_true: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    return (canonical_labels(y_true) == positive_label(classes)).astype(int)


def _roc_auc(y_true: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> float:
    if pred.ndim == 1:
        return float(skm.roc_auc_score(_binary(y_true, classes), pred))
    return float(skm.roc_auc_score(canonical_labels(y_true), _normalise_rows(pred), multi_class="ovr", labels=list(classes)))


def _log_loss(y_true: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> float:
    """scikit-learn's log loss, which clips at the machine epsilon as MLE-bench's graders do (1e-15, Kaggle's old
    clip, scores hard 0/1 predictions differently)."""
    if pred.ndim == 1:
        return float(skm.log_loss(_binary(y_true, classes), np.asarray(pred, dtype=float), labels=[0, 1]))
    return float(skm.log_loss(canonical_labels(y_true), _normalise_rows(pred), labels=list(classes)))


def _ordinal(values: np.ndarray) -> np.ndarray:
    """Labels as the numbers they name (quadratic weighted kappa weighs a miss by how far apart the ratings are)."""
    try:
        return np.asarray(canonical_labels(values), dtype=float)
    except ValueError:
        raise ValueError("quadratic weighted kappa needs numeric class labels (ratings such as 1..6)") from None


def _qwk(y_true: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> float:
    return float(skm.cohen_kappa_score(_ordinal(y_true), _ordinal(pred), weights="quadratic"))


def _f1(y_true: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> float:
    return float(skm.f1_score(canonical_labels(y_true), canonical_labels(pred), pos_label=positive_label(classes), average="binary"))


def _labels(fn: Callable[..., float], **kwargs: object) -> Callable[[np.ndarray, np.ndarray, Sequence[str]], float]:
    return lambda y, p, classes: float(fn(canonical_labels(y), canonical_labels(p), **kwargs))


def _values(fn: Callable[..., float]) -> Callable[[np.ndarray, np.ndarray, Sequence[str]], float]:
    return lambda y, p, classes: float(fn(np.asarray(y, dtype=float), np.asarray(p, dtype=float)))


# -- fast scorers of raw predictions ------------------------------------------------------------------
# Final selection scores candidates x rounds x folds x resamples times; scikit-learn's input validation costs more
# than the arithmetic, so each metric may carry `fast`: given the encoded target (class indices into `classes`, or
# floats) it returns a scorer of raw predictions (class probabilities or values) equal to grading's (tested).

Scorer = Callable[[np.ndarray], float]


def _auc(positive: np.ndarray, values: np.ndarray) -> float:
    """Binary ROC AUC as the Mann-Whitney statistic with average ranks for ties (what scikit-learn's trapezoids give).

    Ranked by hand rather than with scipy's `rankdata`: this is the inner
    loop of greedy selection and the hand-rolled version is ~3x faster.
    """
    n = len(values)
    n_pos = int(positive.sum())
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(values)
    ordered = values[order]
    new_value = np.empty(n, dtype=bool)
    new_value[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new_value[1:])
    starts = np.flatnonzero(new_value)
    average_rank = (starts + np.append(starts[1:], n) + 1) / 2
    ranks = average_rank[np.cumsum(new_value) - 1]
    return float((ranks[positive[order]].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _confusion(codes: np.ndarray, k: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda p: np.bincount(codes * k + p.argmax(axis=1), minlength=k * k).reshape(k, k)


def _fast_accuracy(target: np.ndarray, classes: Sequence[str], kind: str) -> Scorer:
    codes = np.asarray(target, dtype=int)
    return lambda p: float(np.mean(p.argmax(axis=1) == codes))


def _fast_balanced_accuracy(target: np.ndarray, classes: Sequence[str], kind: str) -> Scorer:
    confusion = _confusion(np.asarray(target, dtype=int), len(classes))

    def balanced(p: np.ndarray) -> float:
        cm = confusion(p)
        support = cm.sum(axis=1)
        present = support > 0
        return float(np.mean(np.diag(cm)[present] / support[present]))
    return balanced


def _f1s(target: np.ndarray, classes: Sequence[str]) -> Callable[[np.ndarray], np.ndarray]:
    confusion = _confusion(np.asarray(target, dtype=int), len(classes))

    def f1s(p: np.ndarray) -> np.ndarray:
        cm = confusion(p)
        tp = np.diag(cm).astype(float)
        denominator = cm.sum(axis=0) + cm.sum(axis=1)  # 2tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), np.nan)
    return f1s


def _fast_f1(target: np.ndarray, classes: Sequence[str], kind: str) -> Scorer:
    f1s, positive = _f1s(target, classes), list(classes).index(positive_label(classes))
    return lambda p: float(np.nan_to_num(f1s(p)[positive]))


def _fast_f1_macro(target: np.ndarray, classes: Sequence[str], kind: str) -> Scorer:
    f1s = _f1s(target, classes)
    return lambda p: float(np.nanmean(f1s(p)))  # scikit-learn averages over labels seen in y or predictions


def _fast_qwk(target: np.ndarray, classes: Sequence[str], kind: str) -> Scorer:
    """Quadratic weighted kappa from the confusion matrix, over the ratings present in the target or the
    predictions (what scikit-learn's cohen_kappa_score weighs, by their order as numbers)."""
    order = np.argsort(_ordinal(np.asarray(classes, dtype=object)))
    k = len(classes)
    rank = np.empty(k, dtype=int)
    rank[order] = np.arange(k)
    truth = rank[np.asarray(target, dtype=int)] * k

    def qwk(p: np.ndarray) -> float:
        # argmax in the task's class order (ties break as grading's labels do), then each class's rank as a number
        cm = np.bincount(truth + rank[p.argmax(axis=1)], minlength=k * k).reshape(k, k).astype(float)
        present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
        cm = cm[np.ix_(present, present)]
        n = len(cm)
        if n < 2:
            return 1.0 if n == 1 else math.nan
        i = np.arange(n)
        weights = (i[:, None] - i[None, :]) ** 2
        expected = np.outer(cm.sum(axis=1), cm.sum(axis=0)) / cm.sum()
        return float(1.0 - (weights * cm).sum() / (weights * expected).sum())
    return qwk


def _fast_log_loss(target: np.ndarray, classes: Sequence[str], kind: str) -> Scorer:
    codes = np.asarray(target, dtype=int)
    eps = float(np.finfo(float).eps)
    rows = np.arange(len(codes))
    if kind == "binary":
        positive = list(classes).index(positive_label(classes))
        is_pos = codes == positive

        def binary_loss(p: np.ndarray) -> float:
            q = p[:, positive]
            return float(-np.mean(np.log(np.clip(np.where(is_pos, q, 1 - q), eps, 1 - eps))))
        return binary_loss
    return lambda p: float(-np.mean(np.log(np.clip((p / p.sum(axis=1, keepdims=True))[rows, codes], eps, 1 - eps))))


def _fast_roc_auc(target: np.ndarray, classes: Sequence[str], kind: str) -> Scorer:
    codes = np.asarray(target, dtype=int)
    if kind == "binary":
        positive = list(classes).index(positive_label(classes))
        return lambda p: _auc(codes == positive, p[:, positive])

    def ovr(p: np.ndarray) -> float:
        q = p / p.sum(axis=1, keepdims=True)
        return float(np.mean([_auc(codes == c, q[:, c]) for c in range(len(classes))]))
    return ovr


def _fast_rmse(target: np.ndarray, classes: Sequence[str], kind: str) -> Scorer:
    t = np.asarray(target, dtype=float)
    return lambda p: float(np.sqrt(np.mean((p - t) ** 2)))


def _fast_mae(target: np.ndarray, classes: Sequence[str], kind: str) -> Scorer:
    t = np.asarray(target, dtype=float)
    return lambda p: float(np.mean(np.abs(p - t)))


def _fast_rmsle(target: np.ndarray, classes: Sequence[str], kind: str) -> Scorer:
    lt = np.log1p(np.asarray(target, dtype=float))
    return lambda p: float(np.sqrt(np.mean((np.log1p(np.clip(p, 0, None)) - lt) ** 2)))


def _fast_r2(target: np.ndarray, classes: Sequence[str], kind: str) -> Scorer:
    t = np.asarray(target, dtype=float)
    total = float(((t - t.mean()) ** 2).sum())

    def r2(p: np.ndarray) -> float:
        residual = float(((t - p) ** 2).sum())
        if total == 0:
            return 1.0 if residual == 0 else 0.0
        return 1.0 - residual / total
    return r2



def _fast_pearson(target: np.ndarray, classes: Sequence[str], kind: str) -> Scorer:
    t = np.asarray(target, dtype=float)
    centred = t - t.mean()
    norm = float(np.sqrt((centred**2).sum()))

    def pearson(p: np.ndarray) -> float:
        q = np.asarray(p, dtype=float) - float(np.mean(p))
        spread = float(np.sqrt((q**2).sum()))
        return float((centred * q).sum() / (norm * spread)) if norm and spread else float("nan")
    return pearson


def _pearson(y: np.ndarray, p: np.ndarray) -> float:
    """scipy's pearsonr, as MLE-bench's graders call it: NaN (not an error) when either side is constant."""
    import warnings

    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant input warns and gives NaN
        return float(stats.pearsonr(y, p)[0])


def _spearman(y: np.ndarray, p: np.ndarray) -> float:
    """scipy's spearmanr correlation, as MLE-bench's graders call it (ties share their mean rank)."""
    import warnings

    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(y, p).correlation)


@dataclass(frozen=True)
class Metric:
    """Everything crew knows about a metric, in one record: adding a metric is one `Metric(...)` in `METRICS`.

    `submission` is `label` (predicted classes), `proba` (probabilities: one
    column for a binary target, one per class otherwise) or `value` (numbers).
    `template` is the body of the experiment script's `score(y, raw)`: encoded
    targets and raw predictions (class probabilities or values), with
    `metrics` (scikit-learn's), `np` and the script's `TASK` in scope; it is
    rendered into every `code.py`, so a script scores itself as grading will.
    `best` is the best possible score when the metric has one (1 for the
    bounded scores, 0 for a loss; the reviewer calls a CV within a hair of it
    "too good"), and `nonnegative` says predictions and targets must be >= 0
    (they are clipped at 0 before scoring). `fast(target, classes, target_type)` is an optional scorer factory
    for final selection's inner loop (see above); without one, selection scores through `score`.
    """

    name: str
    higher_is_better: bool
    task: Literal["classification", "regression"]
    submission: Literal["label", "proba", "value"]
    binary_only: bool
    _fn: Callable[[np.ndarray, np.ndarray, Sequence[str]], float]
    template: str = ""
    best: float | None = None
    nonnegative: bool = False
    log_probabilities: bool = False
    """Scored on the log of the probabilities (log_loss): it takes every class's column even for a binary target,
    clipped away from 0."""
    fast: Callable[[np.ndarray, Sequence[str], str], Scorer] | None = None
    per_column: str | None = None
    """A metric of several targets: the one-target metric each column is solved with. A task with such a metric is
    solved one column at a time, each scored by this metric; grading averages them (or pools them, `pooled`)."""
    pooled: bool = False
    """Scored once over every (row, column) cell, not averaged over columns (mlsp-2013-birds' one ROC AUC over
    all pairs): the columns' own scores do not add up to it, and each column is solved for calibrated
    probabilities (log_loss), since a cell is ranked against every other column's cells."""
    ordinal: bool = False
    """Scored on labels as the numbers they name (quadratic weighted kappa): the task's classes must be numeric."""
    decides: bool = False
    """Scored on labels whose best choice is not always the most probable class (a threshold for f1, the class
    priors for balanced accuracy and macro averages): labels are decided from the probabilities with per-class
    weights fitted on out-of-fold predictions (the experiment script's `fit_weights`)."""

    def score(self, y_true: Sequence[object] | np.ndarray, y_pred: Sequence[object] | np.ndarray,
              classes: Sequence[str] = ()) -> float:
        """Score predictions; `classes` (canonical labels) is needed by probability metrics."""
        return self._fn(np.asarray(y_true, dtype=object), np.asarray(y_pred), list(classes))

    def is_better(self, a: float, b: float | None) -> bool:
        """True when score `a` is strictly better than `b` in this metric's direction."""
        return better(a, b, self.higher_is_better)

    def at_least_as_good(self, a: float, b: float) -> bool:
        return oriented(a, self.higher_is_better) >= oriented(b, self.higher_is_better)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", True, "classification", "label", False, _labels(skm.accuracy_score),
               template="    return metrics.accuracy_score(y, raw.argmax(axis=1))", best=1.0,
               fast=_fast_accuracy),
        Metric("balanced_accuracy", True, "classification", "label", False, _labels(skm.balanced_accuracy_score),
               template="    return metrics.balanced_accuracy_score(y, raw.argmax(axis=1))", best=1.0,
               fast=_fast_balanced_accuracy, decides=True),
        Metric("f1", True, "classification", "label", True, _f1,
               template='    positive = TASK["classes"].index(TASK["positive"])\n'
                        "    return metrics.f1_score(y == positive, raw.argmax(axis=1) == positive)", best=1.0, fast=_fast_f1,
               decides=True),
        Metric("f1_macro", True, "classification", "label", False, _labels(skm.f1_score, average="macro"),
               template='    return metrics.f1_score(y, raw.argmax(axis=1), average="macro", '
                        'labels=range(len(TASK["classes"])))', best=1.0,
               fast=_fast_f1_macro, decides=True),
        Metric("qwk", True, "classification", "label", False, _qwk,
               template='    ratings = np.asarray([float(c) for c in TASK["classes"]])\n'
                        '    return metrics.cohen_kappa_score(ratings[y], ratings[raw.argmax(axis=1)], weights="quadratic")',
               best=1.0, decides=True, ordinal=True, fast=_fast_qwk),
        Metric("roc_auc", True, "classification", "proba", False, _roc_auc,
               template='    if TASK["target_type"] == "binary":\n'
                        '        positive = TASK["classes"].index(TASK["positive"])\n'
                        "        return metrics.roc_auc_score(y == positive, raw[:, positive])\n"
                        "    raw = raw / raw.sum(axis=1, keepdims=True)\n"
                        '    return metrics.roc_auc_score(y, raw, multi_class="ovr", labels=range(len(TASK["classes"])))',
               best=1.0, fast=_fast_roc_auc),
        Metric("log_loss", False, "classification", "proba", False, _log_loss,
               template="    raw = np.clip(raw, np.finfo(float).eps, 1)\n"
                        '    return metrics.log_loss(y, raw / raw.sum(axis=1, keepdims=True), '
                        'labels=range(len(TASK["classes"])))', best=0.0, log_probabilities=True, fast=_fast_log_loss),
        Metric("rmse", False, "regression", "value", False, _values(skm.root_mean_squared_error),
               template="    return metrics.root_mean_squared_error(y, raw)", best=0.0,
               fast=_fast_rmse),
        Metric("mae", False, "regression", "value", False, _values(skm.mean_absolute_error),
               template="    return metrics.mean_absolute_error(y, raw)", best=0.0,
               fast=_fast_mae),
        Metric("rmsle", False, "regression", "value", False, _values(skm.root_mean_squared_log_error),
               template="    return metrics.root_mean_squared_log_error(y, np.clip(raw, 0, None))", best=0.0,
               nonnegative=True, fast=_fast_rmsle),
        Metric("r2", True, "regression", "value", False, _values(skm.r2_score),
               template="    return metrics.r2_score(y, raw)", best=1.0,
               fast=_fast_r2),
        Metric("pearson", True, "regression", "value", False, _values(_pearson),
               template="    from scipy import stats\n    return float(stats.pearsonr(y, raw)[0])", best=1.0,
               fast=_fast_pearson),
        Metric("spearman", True, "regression", "value", False, _values(_spearman),
               template="    from scipy import stats\n    return float(stats.spearmanr(y, raw).correlation)", best=1.0),
    )
}


def _columnwise(base: str) -> Callable[[np.ndarray, np.ndarray, Sequence[str]], float]:
    """The mean over columns of `base` on each column (an n x k table of answers against one of predictions).
    A row whose answers are all negative is not scored: Kaggle's mark for a test row left out of scoring
    (jigsaw-toxic-comment-classification-challenge's -1 rows, which MLE-bench's grader skips too)."""

    def score(y_true: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> float:
        truth = np.asarray(y_true, dtype=float).reshape(len(y_true), -1)
        guess = np.asarray(pred, dtype=float).reshape(len(pred), -1)
        keep = ~(truth < 0).all(axis=1)
        metric = METRICS[base]
        labels = ["0", "1"] if metric.task == "classification" else []
        return float(np.mean([metric.score(truth[keep, j].astype(int) if labels else truth[keep, j], guess[keep, j],
                                           labels) for j in range(truth.shape[1])]))
    return score


def _pooled_roc_auc(y_true: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> float:
    """One ROC AUC over every cell of an n x k table (scikit-learn's average="micro"), rows whose answers are all
    negative left out as `_columnwise` leaves them."""
    truth = np.asarray(y_true, dtype=float).reshape(len(y_true), -1)
    guess = np.asarray(pred, dtype=float).reshape(len(pred), -1)
    keep = ~(truth < 0).all(axis=1)
    return _roc_auc(truth[keep].reshape(-1).astype(int), guess[keep].reshape(-1), ["0", "1"])


_COLUMNWISE = (
    Metric("roc_auc_columns", True, "classification", "proba", False, _columnwise("roc_auc"), best=1.0,
           per_column="roc_auc"),
    Metric("log_loss_columns", False, "classification", "proba", False, _columnwise("log_loss"), best=0.0,
           per_column="log_loss"),
    Metric("mcrmse", False, "regression", "value", False, _columnwise("rmse"), best=0.0, per_column="rmse"),
    Metric("rmsle_columns", False, "regression", "value", False, _columnwise("rmsle"), best=0.0, nonnegative=True,
           per_column="rmsle"),
    Metric("mae_columns", False, "regression", "value", False, _columnwise("mae"), best=0.0, per_column="mae"),
    Metric("spearman_columns", True, "regression", "value", False, _columnwise("spearman"), best=1.0,
           per_column="spearman"),
    Metric("roc_auc_micro", True, "classification", "proba", False, _pooled_roc_auc, best=1.0,
           per_column="log_loss", pooled=True),
)
METRICS.update({m.name: m for m in _COLUMNWISE})


def get_metric(name: str) -> Metric:
    """The metric called `name`; KeyError lists the known ones."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None
