"""Grading a submission against answers, and placing its score on a leaderboard by MLE-bench's medal rule."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel

from crew._long import align
from crew._metrics import Metric, best_first, canonical_labels
from crew._tables import TableError, read_table
from crew._task import Task
from crew.errors import Problem, SubmissionError

__all__ = ["GradeReport", "Placement", "check_submission", "grade", "medal_positions", "place_on_leaderboard"]


class Placement(BaseModel):
    """Where a score lands on a leaderboard: rank among the teams, median and medal."""

    rank: int | None
    of: int
    above_median: bool
    medal: Literal["gold", "silver", "bronze"] | None


class GradeReport(BaseModel):
    """The JSON report of `crew grade` (TASK_FORMAT.md); `leaderboard` only when the task has one."""

    task: str
    metric: str
    score: float | None
    valid_submission: bool
    error: str | None
    leaderboard: Placement | None = None

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=False, exclude={"leaderboard"} if self.leaderboard is None else set())


def medal_positions(n_teams: int) -> tuple[int, int, int]:
    """Leaderboard positions (1-based) a score must match for gold, silver and bronze.

    Kaggle's progression rule as MLE-bench applies it, including its floor of
    position 1 for tiny leaderboards where `int(0.2 * N)` would be 0.
    """
    if n_teams < 1:
        raise ValueError("a leaderboard needs at least one team")
    if n_teams < 100:
        return max(1, int(0.1 * n_teams)), max(1, int(0.2 * n_teams)), max(1, int(0.4 * n_teams))
    if n_teams < 250:
        return 10, max(1, int(0.2 * n_teams)), max(1, int(0.4 * n_teams))
    if n_teams < 1000:
        return 10 + int(0.002 * n_teams), 50, 100
    return 10 + int(0.002 * n_teams), max(1, int(0.05 * n_teams)), max(1, int(0.1 * n_teams))


def place_on_leaderboard(score: float | None, scores: list[float], metric: Metric) -> Placement:
    """Rank, median and medal of `score` among `scores` (any order), in the metric's direction. The score is
    rounded to 5 decimals first, as MLE-bench's grader rounds what it ranks."""
    board = best_first(scores, metric.higher_is_better, score=float)
    n = len(board)
    if score is None:
        return Placement(rank=None, of=n, above_median=False, medal=None)
    score = round(score, 5)
    gold, silver, bronze = medal_positions(n)
    medal: Literal["gold", "silver", "bronze"] | None = None
    for name, position in (("gold", gold), ("silver", silver), ("bronze", bronze)):
        if metric.at_least_as_good(score, board[position - 1]):
            medal = name  # type: ignore[assignment]
            break
    rank = 1 + sum(metric.is_better(s, score) for s in board)
    return Placement(rank=rank, of=n, above_median=metric.is_better(score, float(np.median(board))), medal=medal)


def check_submission(task: Task, submission: pl.DataFrame, answers: pl.DataFrame) -> tuple[str | None, pl.DataFrame]:
    """Why a submission is invalid (or None), and the submission aligned row by row with the answers (a long
    submission, one row per cell, as the table of its columns)."""
    if task.image_target is not None and task.submission is not None:  # one row per pixel: keyed as the answers
        reason, values = align(task.submission, submission, answers[task.submission.key])
        return reason, (submission if reason else values.to_frame())
    if task.submission is not None and task.id_column:
        reason, submission = task.read_submitted(submission, answers[task.id_column].to_list())
        if reason is not None:
            return reason, submission
    expected = task.submission_columns()
    missing = [c for c in expected if c not in submission.columns]
    extra = [c for c in submission.columns if c not in expected]
    if missing:
        return f"missing column(s) {missing}; a submission has columns {expected}", submission
    if extra:
        return f"unexpected column(s) {extra}; a submission has columns {expected}", submission
    if submission.height != answers.height:
        return f"has {submission.height} rows, expected {answers.height} (one per test row)", submission
    for col in expected:
        nulls = submission[col].null_count()
        if submission[col].dtype.is_float():
            nulls += int(submission[col].is_nan().sum())
        if nulls:
            return f"column {col!r} has {nulls} missing value(s)", submission
    if task.id_column:
        ids = submission[task.id_column].cast(pl.Utf8)
        dupes = ids.filter(ids.is_duplicated()).unique().head(3).to_list()
        if dupes:
            return f"duplicated id(s) {dupes}", submission
        want = answers[task.id_column].cast(pl.Utf8)
        unknown = sorted(set(ids.to_list()) - set(want.to_list()))[:3]
        if unknown:
            return f"id(s) {unknown} are not in the test set", submission
        order = pl.DataFrame({"__id": want})
        submission = order.join(submission.with_columns(pl.col(task.id_column).cast(pl.Utf8).alias("__id")),
                                on="__id", how="left").drop("__id")
    metric = task.metric_info
    value_cols = [c for c in expected if c != task.id_column]
    if metric.submission in ("proba", "value"):
        for col in value_cols:
            if not submission[col].dtype.is_numeric():
                return f"column {col!r} is not numeric", submission
            values = submission[col].cast(pl.Float64)
            if not values.is_finite().all():
                return f"column {col!r} has infinite values", submission
            if metric.submission == "proba" and (values.min() < 0 or values.max() > 1):  # type: ignore[operator]
                return f"probabilities must lie in [0, 1]; column {col!r} ranges from {values.min()!r} to {values.max()!r}", submission
            if metric.nonnegative and values.min() < 0:  # type: ignore[operator]
                return f"{metric.name} needs predictions >= 0; column {col!r} goes down to {values.min()!r}", submission
        if len(value_cols) > 1 and not task.targets and (
                submission.select(pl.sum_horizontal(value_cols)).to_series() <= 0).any():
            return "some rows have class probabilities that sum to 0", submission
    return None, submission


def grade(task: Task, submission: str | Path, answers: str | Path) -> GradeReport:
    """Score a submission file against an answers file; an invalid submission scores None, with the reason."""
    answers_table = _read_answers(task, Path(answers))
    report: dict[str, Any] = {"task": task.name, "metric": task.metric or "", "score": None, "valid_submission": False,
                              "error": None}
    try:
        table = read_table(Path(submission), as_text=task.kind == "seq2seq")
    except TableError as exc:
        report["error"] = f"could not read the submission: {exc.message}"
    else:
        reason, aligned = check_submission(task, table, answers_table)
        if reason is not None:
            report["error"] = reason
        else:
            report.update(score=_score(task, aligned, answers_table), valid_submission=True)
    result = GradeReport(**report)
    board = task.root / "leaderboard.csv"
    if board.is_file():
        result.leaderboard = place_on_leaderboard(result.score, _read_leaderboard(board), task.metric_info)
    return result


def _score(task: Task, submission: pl.DataFrame, answers: pl.DataFrame) -> float:
    metric = task.metric_info
    if task.image_target is not None and task.submission is not None:  # every pixel of every test image
        value = task.submission.value
        score = metric.score(answers[value].cast(pl.Float64).to_numpy(), submission[value].to_numpy())
        return score if math.isfinite(score) else float("nan")
    if task.targets:  # column-wise: an n x k table of answers against the submission's same columns
        score = metric.score(answers.select(task.targets).cast(pl.Float64).to_numpy(),
                             submission.select(task.targets).cast(pl.Float64).to_numpy())
        return score if math.isfinite(score) else float("nan")
    assert task.target is not None
    if task.kind == "seq2seq":  # text out: exact matches of the text as written, as MLE-bench's graders compare
        matches = (submission[task.target].cast(pl.Utf8) == answers[task.target].cast(pl.Utf8)).cast(pl.Float64)
        return float(matches.mean() or 0.0)  # type: ignore[arg-type]
    y_true = answers[task.target].to_numpy()
    cols = [c for c in task.submission_columns() if c != task.id_column]
    if metric.submission == "proba":
        pred = submission.select(cols).cast(pl.Float64).to_numpy()
        pred = pred[:, 0] if pred.shape[1] == 1 else pred
    elif metric.submission == "value":
        pred = submission[cols[0]].cast(pl.Float64).to_numpy()
    else:
        pred = canonical_labels(submission[cols[0]].to_list())
    score = metric.score(y_true, pred, task.classes)
    return score if math.isfinite(score) else float("nan")


def _read_answers(task: Task, path: Path) -> pl.DataFrame:
    try:
        answers = read_table(path, as_text=task.kind == "seq2seq")
    except TableError as exc:
        raise SubmissionError(exc.problem(str(path), "--answers")) from None
    needed = [c for c in (task.id_column, *task.target_columns) if c]
    long = task.submission
    if task.image_target is not None and long is not None:  # the test images' pixels, one row each
        needed = [long.key, long.value]
    elif long is not None and task.data is not None and {long.key, long.value} <= set(answers.columns):
        # the competition's own answers, one row per cell: read as the table of columns, test rows in order
        ids = read_table(task.path(task.data.test))[str(task.id_column)].to_list()
        reason, answers = task.read_submitted(answers.select(long.key, long.value), ids)
        if reason is not None:
            raise SubmissionError(Problem(str(path), "--answers", reason, "pass the answers of this task's test rows"))
    missing = [c for c in needed if c not in answers.columns]
    if missing:
        raise SubmissionError(Problem(str(path), "--answers", f"lacks column(s) {missing}",
                                      f"answers need the columns {needed} (the test ids and the true target)"))
    return answers


def _read_leaderboard(path: Path) -> list[float]:
    try:
        board = read_table(path)
    except TableError as exc:
        raise SubmissionError(exc.problem(str(path), "leaderboard")) from None
    if "score" not in board.columns or not board["score"].dtype.is_numeric():
        raise SubmissionError(Problem(str(path), "score", "needs a numeric `score` column", "write one score per team in a `score` column"))
    scores = board["score"].drop_nulls().cast(pl.Float64).to_list()
    if not scores:
        raise SubmissionError(Problem(str(path), "score", "has no scores", "write one row per team"))
    return scores
