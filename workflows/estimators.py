"""scikit-learn estimators whose `fit` is a crew solve: `CrewClassifier` and `CrewRegressor`.

`fit(X, y)` writes the frame as a task (train: every row; test: the first
rows, which a task needs) into a fresh folder, runs the team on it under
`time_budget`, and keeps the run's final model in memory; `predict`,
`predict_proba` and `score` use that model. Without `run_dir` the folder is
temporary and removed once the model is loaded, as a scikit-learn estimator
leaves nothing on disk; with it, every fit keeps its own folder under
`run_dir` (`run_dir_` names it), so the folds of a `cross_val_score` do not
overwrite one another and each can be reported or loaded later.

A fit is a search under a wall-time budget: on a busy machine two fits with
the same seed may finish different experiments. `max_experiments` caps the
search by count instead, so that a budget with room to spare gives the same
model every time (scikit-learn's `check_estimator` compares two fits). The constructors only store their parameters, as
scikit-learn asks, so the estimators work in `Pipeline`, `cross_val_score`
and `GridSearchCV`; every fit is a whole solve, so give them budgets that
fit the number of fits those make.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_array, column_or_1d

from crew import CrewError, canonical_labels, parse_duration

__all__ = ["CrewClassifier", "CrewRegressor"]

_TEST_ROWS = 50
"""Rows of X written as the task's test file: a task needs one; the predictions that matter come later."""


def _target(estimator: BaseEstimator, y: Any, *, numeric: bool) -> np.ndarray:
    """y as one column of finite values (numbers for a regressor), checked and warned about as scikit-learn does
    (a column vector is raveled with a DataConversionWarning); crew solves one target per fit."""
    if y is None:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, but the target y is None")
    values = check_array(y, ensure_2d=False, dtype="numeric" if numeric else None, ensure_all_finite=True,
                         input_name="y")
    return column_or_1d(values, dtype=float if numeric else None, warn=True)


class _CrewEstimator(BaseEstimator):
    _default_metric = ""

    def __init__(self, metric: str | None = None, time_budget: str = "5m", llm: str | None = None,
                 workers: int | None = None, seed: int = 0, run_dir: str | None = None,
                 max_experiments: int | None = None) -> None:
        self.metric = metric
        self.time_budget = time_budget
        self.llm = llm
        self.workers = workers
        self.seed = seed
        self.run_dir = run_dir
        self.max_experiments = max_experiments

    def __sklearn_tags__(self) -> Any:
        """What crew reads: missing values (imputed or native to the boosters), text and categories in any
        column (a column of strings is a categorical or text feature), never sparse matrices."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        return tags

    def _columns(self, X: Any, *, reset: bool) -> pd.DataFrame:
        """X as a frame of named columns, checked as scikit-learn checks (no complex numbers, no infinities, no
        sparse matrix, at least one row; on predict, the features fit saw); a frame keeps its columns' types."""
        from sklearn.utils.validation import validate_data

        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=reset, skip_check_array=True)
            if X.shape[0] < 1 or X.shape[1] < 1:
                raise ValueError(f"Found array with {X.shape[0]} sample(s) and {X.shape[1]} feature(s) "
                                 "while a minimum of 1 is required.")
            frame = X.copy()
            frame.columns = [str(c) for c in frame.columns]
        else:
            array = validate_data(self, X, reset=reset, dtype=None, ensure_all_finite="allow-nan")
            frame = pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])
        return frame.reset_index(drop=True)

    def _solve(self, X: Any, y: Any) -> pd.DataFrame:
        from crew.workflows.solve import solve

        frame = self._columns(X, reset=True)
        target = np.asarray(y)
        if len(frame) != len(target):
            raise ValueError(f"X has {len(frame)} rows and y {len(target)}")
        if len(frame) < 2:
            raise ValueError("X has 1 sample; crew cross-validates what it fits, which needs two or more")
        if self.run_dir:
            Path(self.run_dir).mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="fit-" if self.run_dir else "crew-fit-", dir=self.run_dir or None))
        task_dir = folder / "task"
        (task_dir / "data").mkdir(parents=True, exist_ok=True)
        names = set(frame.columns)
        id_column = next(n for n in ("row_id", "_row_id", "__row_id") if n not in names)
        target_name = next(n for n in ("target", "_target", "__target") if n not in names)
        train = frame.copy()
        train.insert(0, id_column, np.arange(len(frame)))
        train[target_name] = target
        train.to_csv(task_dir / "data" / "train.csv", index=False)
        train.drop(columns=target_name).head(_TEST_ROWS).to_csv(task_dir / "data" / "test.csv", index=False)
        (task_dir / "task.yaml").write_text(
            f"name: {type(self).__name__.lower()}\nkind: tabular\ndata:\n  train: data/train.csv\n"
            f"  test: data/test.csv\ntarget: {target_name}\nid_column: {id_column}\n"
            f"metric: {self.metric or self._default_metric}\n", encoding="utf-8")
        run = folder / "run"
        summary = solve(task_dir / "task.yaml", out=run, wall_time=parse_duration(self.time_budget),
                        workers=self.workers, seed=self.seed, llm=[self.llm] if self.llm else (),
                        max_experiments=self.max_experiments)
        kept = (summary.get("final") or {}).get("predictor") or {}
        if not kept.get("saved"):
            reason = kept.get("reason") or f"no experiment fitted within time_budget={self.time_budget!r}"
            raise CrewError(f"the run in {run} kept no model ({reason}); give fit a longer time_budget")
        import crew

        self.predictor_ = crew.load(run)
        if self.run_dir:
            self.run_dir_: str | None = str(run)
        else:
            shutil.rmtree(folder, ignore_errors=True)
            self.run_dir_ = None
        return frame

    def _rows(self, X: Any) -> pd.DataFrame:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "predictor_")
        return self._columns(X, reset=False)


class CrewClassifier(ClassifierMixin, _CrewEstimator):
    """A classifier fitted by a crew solve (metric default `accuracy`); `classes_` are y's own labels."""

    _default_metric = "accuracy"

    def fit(self, X: Any, y: Any) -> CrewClassifier:
        from sklearn.utils.multiclass import check_classification_targets

        labels = _target(self, y, numeric=False)
        check_classification_targets(labels)
        self.classes_ = np.unique(labels)
        if len(self.classes_) < 2:
            raise ValueError(f"y has 1 class ({self.classes_[0]!r}); a classifier needs two or more")
        self._canonical = {str(c): k for c, k in zip(canonical_labels(list(self.classes_)), self.classes_,
                                                     strict=True)}
        self._solve(X, labels)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        rows = self._rows(X)
        raw = self.predictor_.predict_proba(rows)
        index = {str(c): i for i, c in enumerate(self.predictor_.classes_)}
        return raw[:, [index[str(c)] for c in canonical_labels(list(self.classes_))]]

    def predict(self, X: Any) -> np.ndarray:
        rows = self._rows(X)
        labels = self.predictor_.predict(rows)
        return np.asarray([self._canonical[str(label)] for label in labels], dtype=self.classes_.dtype)


class CrewRegressor(RegressorMixin, _CrewEstimator):
    """A regressor fitted by a crew solve (metric default `rmse`)."""

    _default_metric = "rmse"

    def fit(self, X: Any, y: Any) -> CrewRegressor:
        self._solve(X, _target(self, y, numeric=True))
        return self

    def predict(self, X: Any) -> np.ndarray:
        rows = self._rows(X)
        return np.asarray(self.predictor_.predict(rows), dtype=float)
