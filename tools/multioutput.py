"""The experiment script of a several-target task's joint baseline: one set of features, a linear model per column.

crew runs a copy of this file as an experiment's `code.py` (its `TASK` and
`COLUMNS` filled in by `crew.workflows.columns`) before it solves the columns
one at a time: within seconds every column has a real model, which the
column's own run then has to beat. This is how a Kaggle expert starts a
multi-label text task: the features are built once (numbers imputed and
scaled, categories one-hot, text as word 1-2 and character 2-5 n-gram
TF-IDF) and each column gets a logistic regression (a probability) or a
ridge regression (a value; on log1p for a nonnegative metric). A fifth of
the rows is held out to score each column by the task's per-column metric.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pandas as pd
from scipy import sparse

TASK: dict = {"train": "train.csv", "test": "test.csv", "id_column": "id", "targets": ["a", "b"], "metric": "roc_auc",
              "task": "classification", "nonnegative": False}
COLUMNS: dict = {"numeric": [], "categorical": [], "text": []}
PREPROCESS: dict = {"sparse_text": []}
"""The text columns fitted as sparse n-grams (all of COLUMNS["text"]): what the critic prices them by."""
SEED = 0


def read(path):
    return pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path, low_memory=False)


def features():
    """Numbers median-imputed and scaled, categories one-hot (rare ones pooled), text as sparse n-gram TF-IDF."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    if COLUMNS["numeric"]:
        parts.append(("num", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                                           StandardScaler()), COLUMNS["numeric"]))
    if COLUMNS["categorical"]:
        parts.append(("cat", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5, max_categories=50),
                      COLUMNS["categorical"]))
    for c in COLUMNS["text"]:
        parts.append((f"words_{c}", TfidfVectorizer(ngram_range=(1, 2), max_features=50_000, sublinear_tf=True,
                                                    strip_accents="unicode", dtype=np.float32), c))
        parts.append((f"chars_{c}", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), max_features=50_000,
                                                    sublinear_tf=True, dtype=np.float32), c))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=1.0)


def prepared(frame, columns=None):
    """The feature columns as the features read them. `columns`: another COLUMNS (a saved model's)."""
    columns = columns or COLUMNS
    out = frame[columns["numeric"] + columns["categorical"] + columns["text"]].copy()
    for c in columns["numeric"]:
        out[c] = pd.to_numeric(out[c], errors="coerce")
    for c in columns["categorical"]:
        out[c] = out[c].astype(str)
    for c in columns["text"]:
        out[c] = out[c].fillna("").astype(str)
    return out


def log_target(task=None):
    task = task or TASK
    return task["task"] == "regression" and task["nonnegative"]


def fit_column(X, y):
    """A column's model on rows where it has a value: logistic regression for 0/1 labels, ridge for values."""
    from sklearn.linear_model import LogisticRegression, Ridge

    if TASK["task"] == "classification":
        if len(np.unique(y)) < 2:
            return float(np.mean(y))
        return LogisticRegression(C=4.0 if COLUMNS["text"] else 1.0, max_iter=1000).fit(X, y.astype(int))
    return Ridge(alpha=1.0).fit(X, np.log1p(np.clip(y, 0, None)) if log_target() else y)


def predict_column(model, X, task=None):
    """A column's probabilities of 1 or its values. `task`: another TASK (a saved model's)."""
    task = task or TASK
    if isinstance(model, float):
        return np.full(X.shape[0], model)
    if task["task"] == "classification":
        return model.predict_proba(X)[:, list(model.classes_).index(1)]
    values = model.predict(X)
    return np.clip(np.expm1(values), 0, None) if log_target(task) else values


def score(y, p):
    """The task's per-column metric, as crew grades it."""
    from scipy import stats
    from sklearn import metrics

    name = TASK["metric"]
    if name == "roc_auc":
        return metrics.roc_auc_score(y, p) if len(np.unique(y)) == 2 else float("nan")
    if name == "log_loss":
        return metrics.log_loss(y, np.clip(p, np.finfo(float).eps, 1 - np.finfo(float).eps), labels=[0, 1])
    if name == "rmse":
        return metrics.root_mean_squared_error(y, p)
    if name == "rmsle":
        return metrics.root_mean_squared_log_error(y, np.clip(p, 0, None))
    if name == "mae":
        return metrics.mean_absolute_error(y, p)
    if name == "spearman":
        return float(stats.spearmanr(y, p).correlation)
    raise ValueError(f"no per-column metric {name!r}")


def fit_all(frame):
    """Features fitted on `frame`, and one model per target column (its rows with a value)."""
    transformer = features()
    X = sparse.csr_matrix(transformer.fit_transform(prepared(frame)))
    models = {}
    for column in TASK["targets"]:
        known = frame[column].notna().to_numpy()
        models[column] = fit_column(X[known], frame[column].to_numpy(dtype=float)[known])
    return transformer, models


def load_skops():
    """skops.io, loaded without PyTorch. On import skops lists scikit-learn's estimators by walking every sklearn
    package, and the walk imports sklearn's vendored array-API adapter for torch, which imports torch itself (3 s on
    2 cores) where it is installed, though no estimator lives there. torch is blocked while skops loads, unless
    something already loaded it; the list of trusted types is the same."""
    import sys

    if "torch" in sys.modules or "skops.io" in sys.modules:
        import skops.io as sio

        return sio
    sys.modules["torch"] = None  # an import of torch fails at once; the walk skips it
    try:
        import skops.io as sio
    finally:
        del sys.modules["torch"]
    return sio


def save(transformer, models, path="model.skops"):
    """The features and the models in skops' format (scikit-learn's types only); each TF-IDF vocabulary as two
    arrays (skops writes a dict of 100,000 n-grams one node at a time)."""
    sio = load_skops()

    vectorizers = [v for _, v, _ in transformer.transformers_ if type(v).__name__ == "TfidfVectorizer"]
    vocabularies = [v.vocabulary_ for v in vectorizers]
    for v in vectorizers:
        for name in ("stop_words_", "vocabulary_"):
            if hasattr(v, name):
                delattr(v, name)
    try:
        blob = sio.dumps({"format": 1, "kind": "joint", "task": TASK, "columns": COLUMNS, "features": transformer,
                          "models": models, "vocabularies": [
                              {"terms": np.array(list(vocab), dtype=str),
                               "indices": np.fromiter(vocab.values(), dtype=np.int64, count=len(vocab))}
                              for vocab in vocabularies]})
    finally:
        for v, vocab in zip(vectorizers, vocabularies, strict=True):
            v.vocabulary_ = vocab
    with open(path, "wb") as handle:
        handle.write(blob)


def main():
    started = time.time()
    root = os.environ.get("CREW_DATA", ".")
    train, test = read(os.path.join(root, TASK["train"])), read(os.path.join(root, TASK["test"]))
    rng = np.random.default_rng(SEED)
    held = rng.random(len(train)) < 0.2
    transformer, models = fit_all(train[~held])
    X_held = sparse.csr_matrix(transformer.transform(prepared(train[held])))
    per_column = {}
    for column in TASK["targets"]:
        y = train.loc[held, column].to_numpy(dtype=float)
        keep = ~np.isnan(y) & (y >= 0 if TASK["task"] == "classification" else True)
        per_column[column] = float(score(y[keep], predict_column(models[column], X_held[keep])))
    transformer, models = fit_all(train)
    X_test = sparse.csr_matrix(transformer.transform(prepared(test)))
    ids = test[TASK["id_column"]] if TASK["id_column"] else pd.Series(np.arange(len(test)), name="row")
    out = pd.DataFrame({ids.name: ids.to_numpy()})
    for column in TASK["targets"]:
        out[column] = predict_column(models[column], X_test)
    out.to_csv("predictions.csv", index=False)
    save(transformer, models)
    values = [v for v in per_column.values() if np.isfinite(v)]
    metrics = {"metric": TASK["metric"], "cv": float(np.mean(values)) if values else None, "per_column": per_column,
               "holdout_rows": int(held.sum()), "seconds": round(time.time() - started, 2)}
    with open("metrics.json", "w", encoding="utf-8") as fh:
        json.dump(metrics, fh)
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
