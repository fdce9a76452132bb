"""The plain text baseline crew's text pipelines are measured against: word TF-IDF and a logistic (or ridge)
regression, nothing tuned.

    python bench/text_baseline.py TASK_DIR [TASK_DIR ...] [--out FILE]

Each task's text columns (as crew's profile reads them) become a word
unigram-and-bigram TF-IDF, its numeric columns are median-imputed and
scaled beside it, and scikit-learn's LogisticRegression (C=1) or Ridge is
fitted on every training row; the test predictions are graded against the
task folder's `grading/answers.csv` with crew's grader. Prints one line per
task (score, seconds) and writes the records as JSON with `--out`. Use it
with `bench/text_tasks.py` and `bench/compare.py --task-dir` (crew, FLAML and
AutoGluon on the same tasks at the same budget).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def baseline(task_dir: Path) -> dict[str, Any]:
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    from crew import Task, grade, positive_label
    from crew.tools.profile import profile_task

    start = time.perf_counter()
    task = Task.load(task_dir)
    assert task.data is not None and task.target is not None
    report = profile_task(task)
    train, test = pd.read_csv(task.path(task.data.train)), pd.read_csv(task.path(task.data.test))
    texts = report.of_kind("text")
    numeric = [c for c in report.of_kind("numeric") if c in test.columns]
    blocks, test_blocks = [], []
    for c in texts:
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        blocks.append(vectorizer.fit_transform(train[c].fillna("").astype(str)))
        test_blocks.append(vectorizer.transform(test[c].fillna("").astype(str)))
    if numeric:
        scale = StandardScaler().fit(SimpleImputer().fit_transform(train[numeric]))
        imputer = SimpleImputer().fit(train[numeric])
        blocks.append(sparse.csr_matrix(scale.transform(imputer.transform(train[numeric]))))
        test_blocks.append(sparse.csr_matrix(scale.transform(imputer.transform(test[numeric]))))
    X, X_test = sparse.hstack(blocks).tocsr(), sparse.hstack(test_blocks).tocsr()
    y = train[task.target]
    out = pd.DataFrame({task.id_column: test[task.id_column]}) if task.id_column else pd.DataFrame(index=test.index)
    if task.target_type == "regression":
        out[task.target] = Ridge(alpha=1.0).fit(X, y.astype(float)).predict(X_test)
    else:
        model = LogisticRegression(C=1.0, max_iter=2000).fit(X, y.astype(str))
        proba = model.predict_proba(X_test)
        classes = [str(c) for c in model.classes_]
        if task.metric_info.submission == "label":
            out[task.target] = np.asarray(classes)[proba.argmax(axis=1)]
        elif task.target_type == "binary":
            out[task.target] = proba[:, classes.index(positive_label(task.classes))]
        else:
            for c in task.classes:
                out[c] = proba[:, classes.index(c)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "submission.csv"
        out.to_csv(path, index=False)
        report_ = grade(task, path, task_dir / "grading" / "answers.csv")
    return {"task": task.name, "metric": task.metric, "score": report_.score, "valid": report_.valid_submission,
            "seconds": round(time.perf_counter() - start, 2), "text_columns": texts}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", type=Path, nargs="+")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for folder in args.tasks:
        row = baseline(folder)
        print(f"{row['task']}: {row['metric']} {row['score']:.5f} in {row['seconds']} s (text: {row['text_columns']})")
        rows.append(row)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return rows


if __name__ == "__main__":
    main()
