"""scikit-learn estimators whose `fit` is a crew solve: `CrewClassifier` and `CrewRegressor`.

`fit(X, y)` writes the frame as a task (train: every row; test: the first
rows, which a task needs) into a run folder, runs the team on it under
`time_budget`, and keeps the run's final model; `predict`, `predict_proba`
and `score` use that model. The constructors only store their parameters, as
scikit-learn asks, so the estimators work in `Pipeline`, `cross_val_score`
and `GridSearchCV`; every fit is a whole solve, so give them budgets that
fit the number of fits those make.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from crew import CrewError, canonical_labels, parse_duration

__all__ = ["CrewClassifier", "CrewRegressor"]

_TEST_ROWS = 50
"""Rows of X written as the task's test file: a task needs one; the predictions that matter come later."""


class _CrewEstimator(BaseEstimator):
    _default_metric = ""

    def __init__(self, metric: str | None = None, time_budget: str = "5m", llm: str | None = None,
                 workers: int | None = None, seed: int = 0, run_dir: str | None = None) -> None:
        self.metric = metric
        self.time_budget = time_budget
        self.llm = llm
        self.workers = workers
        self.seed = seed
        self.run_dir = run_dir

    def _columns(self, X: Any) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            frame = X.copy()
            frame.columns = [str(c) for c in frame.columns]
        else:
            array = np.asarray(X)
            if array.ndim != 2:
                raise ValueError(f"X must be 2-dimensional, got shape {array.shape}")
            frame = pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])
        return frame.reset_index(drop=True)

    def _solve(self, X: Any, y: Any) -> pd.DataFrame:
        from crew.workflows.solve import solve

        frame = self._columns(X)
        target = np.asarray(y)
        if len(frame) != len(target):
            raise ValueError(f"X has {len(frame)} rows and y {len(target)}")
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = frame.shape[1]
        folder = Path(self.run_dir) if self.run_dir else Path(tempfile.mkdtemp(prefix="crew-fit-"))
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
                        workers=self.workers, seed=self.seed, llm=[self.llm] if self.llm else ())
        kept = (summary.get("final") or {}).get("predictor") or {}
        if not kept.get("saved"):
            raise CrewError(f"the run in {run} kept no model: {kept.get('reason', 'no experiment passed review')}")
        import crew

        self.run_dir_ = str(run)
        self.predictor_ = crew.load(run)
        return frame

    def _rows(self, X: Any) -> pd.DataFrame:
        if not hasattr(self, "predictor_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")
        frame = self._columns(X)
        if frame.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {frame.shape[1]} features, but {type(self).__name__} was fitted with "
                             f"{self.n_features_in_}")
        return frame


class CrewClassifier(ClassifierMixin, _CrewEstimator):
    """A classifier fitted by a crew solve (metric default `accuracy`); `classes_` are y's own labels."""

    _default_metric = "accuracy"

    def fit(self, X: Any, y: Any) -> CrewClassifier:
        labels = np.asarray(y)
        self.classes_ = np.unique(labels)
        self._canonical = {str(c): k for c, k in zip(canonical_labels(list(self.classes_)), self.classes_,
                                                     strict=True)}
        self._solve(X, labels)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        raw = self.predictor_.predict_proba(self._rows(X))
        index = {str(c): i for i, c in enumerate(self.predictor_.classes_)}
        return raw[:, [index[str(c)] for c in canonical_labels(list(self.classes_))]]

    def predict(self, X: Any) -> np.ndarray:
        labels = self.predictor_.predict(self._rows(X))
        return np.asarray([self._canonical[str(label)] for label in labels], dtype=self.classes_.dtype)


class CrewRegressor(RegressorMixin, _CrewEstimator):
    """A regressor fitted by a crew solve (metric default `rmse`)."""

    _default_metric = "rmse"

    def fit(self, X: Any, y: Any) -> CrewRegressor:
        self._solve(X, np.asarray(y, dtype=float))
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.predictor_.predict(self._rows(X)), dtype=float)
