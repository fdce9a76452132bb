"""crew's grading against MLE-bench's own graders (tests/mlebench_graders/, copied from openai/mle-bench) on the
same random submissions, for every competition crew imports: the scores agree."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from crew import Task, grade
from crew.workflows.mlebench import import_mlebench

from .test_mlebench import SUPPORTED, replica

GRADERS = Path(__file__).parent / "mlebench_graders"
BY_POSITION = {"nomad2018-predict-transparent-conductors"}
"""Graders that match a submission's rows to the answers' by position, not by id: crew matches by id and writes
its submissions in the test's order, so the two agree on any submission in that order (tested), and crew is right
where they differ (a shuffled file)."""


def mlebench_grade(competition: str):
    """The competition's `grade(submission, answers)` from MLE-bench's own source."""
    if str(GRADERS) not in sys.path:
        sys.path.insert(0, str(GRADERS))
    return importlib.import_module(f"mlebench.competitions.{competition.replace('-', '_')}.grade").grade


def random_submission(task: Task, ids: pd.Series, rng: np.random.Generator, kind: str,
                      answers: pd.DataFrame) -> pd.DataFrame:
    """A submission in crew's format: `kind` is `soft` (probabilities or values anywhere in range) or `hard`
    (0/1 probabilities, the extremes a clipped metric must treat as MLE-bench does); text is the answer or not."""
    n = len(ids)
    frame = pd.DataFrame({task.id_column: ids.to_numpy()})
    metric = task.metric_info
    if task.target_type == "image":  # a grey level for every test pixel
        assert task.submission is not None
        frame = pd.DataFrame({task.submission.key: ids.to_numpy(), task.submission.value: rng.uniform(size=n) if
                              kind == "soft" else rng.integers(0, 2, size=n).astype(float)})
    elif task.target_type == "text":  # right for about half the rows, wrong for the rest
        right = answers.set_index(task.id_column).loc[ids, task.target].astype(str).to_numpy()
        frame[task.target] = np.where(rng.uniform(size=n) < 0.5, right, np.char.add(right.astype(str), "x"))
    elif task.target_type in ("regression", "multioutput"):
        for column in task.target_columns:
            frame[column] = rng.lognormal(size=n)
    elif task.target_type == "multilabel" or (task.target_type == "binary" and metric.submission == "proba"):
        for column in task.target_columns:
            frame[column] = rng.uniform(size=n) if kind == "soft" else rng.integers(0, 2, size=n).astype(float)
    elif metric.submission == "label":
        frame[task.target] = rng.choice(np.asarray(task.classes, dtype=object), size=n)
        if metric.ordinal:
            frame[task.target] = frame[task.target].astype(int)
    else:  # one probability column per class, each row summing to 1
        p = rng.dirichlet(np.ones(len(task.classes)), size=n) if kind == "soft" else \
            np.eye(len(task.classes))[rng.integers(0, len(task.classes), size=n)]
        frame = pd.concat([frame, pd.DataFrame(p, columns=task.classes)], axis=1)
    return frame


@pytest.mark.parametrize("competition", SUPPORTED)
def test_crew_grades_as_mlebench_does(tmp_path, competition):
    from crew.workflows.competitions import competitions

    c = competitions()[competition]
    public = replica(tmp_path, competition, m=300)  # enough test rows that every column has both classes
    private = public.parent / "private"
    task = Task.load(import_mlebench(public, out=tmp_path / "task", private_dir=private))
    answers = pd.read_csv(private / c.files.answers)
    # a long submission's answers are keyed by cell (mlsp's Id): the rows are the test table's
    ids = answers[c.id_column] if c.id_column in answers else pd.read_parquet(task.path(task.data.test))[c.id_column]
    theirs = mlebench_grade(competition)
    rng = np.random.default_rng(0)
    for trial in range(6):
        shuffle = trial % 2 and competition not in BY_POSITION
        frame = random_submission(task, ids.sample(frac=1, random_state=trial) if shuffle else ids, rng,
                                  "hard" if trial >= 4 else "soft", answers)
        frame = task.as_submitted(pl.from_pandas(frame)).to_pandas()  # one row per cell for a long submission
        path = tmp_path / f"submission-{trial}.csv"
        frame.to_csv(path, index=False)
        ours = grade(task, path, tmp_path / "task" / "grading" / "answers.csv")
        assert ours.valid_submission, (competition, ours.error)
        expected = theirs(pd.read_csv(path), answers.copy())
        assert np.isfinite(expected) and ours.score == pytest.approx(expected, rel=1e-9, abs=1e-12), \
            (competition, trial)
