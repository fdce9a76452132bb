"""The catalogue of pipeline steps the offline modeler composes experiment scripts from, and `render`.

An experiment is a standalone script (DESIGN.md): someone can read it, copy
it and run it without crew. So `render` does not emit calls into crew; it
writes plain pandas + scikit-learn (+ LightGBM / XGBoost / Optuna when
asked) code, one block per SELA stage, with the knobs the critic may turn
(`FOLDS`, `REPEATS`, `BAGS`, `SUBSAMPLE`, `PARAMS`, `TUNE_TRIALS`) as top-level constants.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from crew import METRICS, Task, positive_label
from crew import parse_python as parse

__all__ = [
    "FEATURES",
    "MODELS",
    "PREPROCESSING",
    "PipelineSpec",
    "TaskInfo",
    "cached_stages",
    "default_params",
    "promote_stages",
    "render",
    "rendered",
    "spec_from_report",
    "stage_blocks",
    "stage_keys",
]

# family -> (classification estimator, regression estimator, needs scaled one-hot input, handles NaN)
MODELS: dict[str, tuple[str, str, bool, bool]] = {
    "linear": ("sklearn.linear_model.LogisticRegression", "sklearn.linear_model.Ridge", True, False),
    "knn": ("sklearn.neighbors.KNeighborsClassifier", "sklearn.neighbors.KNeighborsRegressor", True, False),
    "svm": ("sklearn.svm.SVC", "sklearn.svm.SVR", True, False),
    "random_forest": ("sklearn.ensemble.RandomForestClassifier", "sklearn.ensemble.RandomForestRegressor", False, False),
    "extra_trees": ("sklearn.ensemble.ExtraTreesClassifier", "sklearn.ensemble.ExtraTreesRegressor", False, False),
    "hist_gradient_boosting": ("sklearn.ensemble.HistGradientBoostingClassifier",
                               "sklearn.ensemble.HistGradientBoostingRegressor", False, True),
    "lightgbm": ("lightgbm.LGBMClassifier", "lightgbm.LGBMRegressor", False, True),
    "xgboost": ("xgboost.XGBClassifier", "xgboost.XGBRegressor", False, True),
}
"""Model families the expert knows; the critic's cost model has a prior for each."""

PREPROCESSING = ("impute_median", "missing_indicators", "scale_numeric", "one_hot_low_cardinality",
                 "ordinal_high_cardinality", "drop_id_and_constant_columns", "drop_leakage_suspects")
FEATURES = ("datetime_parts", "text_tfidf", "numeric_interactions", "frequency_encoding", "log_target")

_DEFAULTS: dict[str, dict[str, Any]] = {
    "linear": {"C": 1.0, "alpha": 1.0},
    "knn": {"n_neighbors": 15},
    "svm": {"C": 1.0},
    "random_forest": {"n_estimators": 300, "min_samples_leaf": 1, "max_features": "sqrt"},
    "extra_trees": {"n_estimators": 300, "min_samples_leaf": 1, "max_features": "sqrt"},
    "hist_gradient_boosting": {"max_iter": 300, "learning_rate": 0.06, "max_leaf_nodes": 31, "l2_regularization": 1e-6,
                               "min_samples_leaf": 20},
    "lightgbm": {"n_estimators": 400, "learning_rate": 0.04, "num_leaves": 31, "min_child_samples": 20,
                 "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 1e-6},
    "xgboost": {"n_estimators": 400, "learning_rate": 0.05, "max_depth": 6, "min_child_weight": 1.0, "subsample": 0.8,
                "colsample_bytree": 0.8, "reg_lambda": 1.0},
}


def default_params(model: str, *, rows: int = 10_000, regression: bool = False) -> dict[str, Any]:
    """Sensible starting parameters; small data gets smaller leaves and slower learning so trees do not overfit."""
    params = dict(_DEFAULTS[model])
    if rows < 2_000:
        if model == "lightgbm":
            params.update(num_leaves=15, min_child_samples=10, learning_rate=0.03)
        elif model == "xgboost":
            params.update(max_depth=4, learning_rate=0.03)
        elif model == "hist_gradient_boosting":
            params.update(max_leaf_nodes=15, min_samples_leaf=10, learning_rate=0.04)
    if model == "linear":
        return {"alpha": params["alpha"]} if regression else {"C": params["C"]}
    return params


class TaskInfo(BaseModel):
    """What a script must know about the task; paths are relative to the task folder ($CREW_DATA)."""

    name: str
    train: str
    test: str
    target: str
    id_column: str | None
    metric: str
    higher_is_better: bool
    target_type: str
    classes: list[str] = Field(default_factory=list)
    positive: str | None = None
    submission: str = Field(description="label, proba or value: what the submission's target column holds")
    submission_columns: list[str]
    rows: int = Field(default=10_000, description="train rows, for defaults that depend on data size")

    @classmethod
    def from_task(cls, task: Task) -> TaskInfo:
        assert task.data is not None and task.target is not None and task.metric is not None
        info = task.metric_info
        classes = task.classes
        return cls(name=task.name, train=task.data.train, test=task.data.test, target=task.target,
                   id_column=task.id_column, metric=task.metric, higher_is_better=info.higher_is_better,
                   target_type=task.target_type or "regression", classes=classes,
                   positive=positive_label(classes) if task.target_type == "binary" else None,
                   submission=info.submission, submission_columns=task.submission_columns(),
                   rows=task.shapes.get("train", (10_000, 0))[0])


class PipelineSpec(BaseModel):
    """One experiment as the expert sees it: a model family, its parameters, and one insight per stage."""

    model: str
    params: dict[str, Any] = Field(default_factory=dict)
    preprocessing: list[str] = Field(default_factory=lambda: ["impute_median", "one_hot_low_cardinality",
                                                             "ordinal_high_cardinality"])
    features: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    datetime: list[str] = Field(default_factory=list)
    text: list[str] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list)
    folds: int = Field(default=5, ge=2)
    repeats: int = Field(default=1, ge=1, description="times the k-fold split is redrawn; out-of-fold predictions "
                                                       "are averaged over them")
    seed: int = 0
    subsample: int | None = Field(default=None, description="largest number of training rows a fold fits on")
    tune_trials: int = Field(default=0, ge=0)
    tune_timeout: float = Field(default=0.0, ge=0)
    bags: int = Field(default=1, ge=1, description="models per fold, on seeds SEED, SEED+1, ...; predictions averaged")
    threads: int = Field(default=1, ge=1)

    def insights(self) -> list[str]:
        extra = [f"tune_{self.tune_trials}_trials"] if self.tune_trials else []
        extra += [f"bag_of_{self.bags}"] if self.bags > 1 else []
        extra += [f"cv_{self.repeats}x{self.folds}"] if self.repeats > 1 else []
        return [*self.preprocessing, *self.features, self.model, *extra]


def _py(value: Any) -> str:
    """A Python literal for JSON-like data (json.dumps is close, but None/True/False differ)."""
    return repr(json.loads(json.dumps(value)))


_HEADER = '''"""crew experiment: {title}

Written by crew's modeler from its pipeline catalogue. Standalone: reads the task's data from
$CREW_DATA (read-only), cross-validates, and writes metrics.json, oof.csv (out-of-fold predictions),
test_pred.csv (the same for the test set) and predictions.csv (the submission).
"""
import json
import os
import time

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, RepeatedKFold, RepeatedStratifiedKFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

TASK = {task}
COLUMNS = {columns}
FOLDS = {folds}
REPEATS = {repeats}
SEED = {seed}
SUBSAMPLE = {subsample}
THREADS = {threads}
PARAMS = {params}
TUNE_TRIALS = {tune_trials}
TUNE_TIMEOUT = {tune_timeout}
BAGS = {bags}
STAGE_KEYS = {stage_keys}
TIMINGS = {{}}
STAGE_CACHE = {{}}


def cached_stage(stage, compute):
    """SELA's stage cache: a stage whose code, and the code before it, matches an earlier experiment's is
    loaded from $CREW_SHARED instead of recomputed. The cache is read-only here: this script writes what it
    computed into stages/ of its own folder, and crew promotes it to the cache after review, with the hash of
    every file. Nothing in it can run code on load (parquet, .npy without pickles, JSON)."""
    folder, key = os.environ.get("CREW_SHARED"), STAGE_KEYS.get(stage)
    if not folder or not key:
        return compute()
    cached = os.path.join(folder, f"{{stage}}-{{key}}")
    if os.path.exists(os.path.join(cached, "manifest.json")):
        try:
            value = load_stage(cached)
            STAGE_CACHE[stage] = "hit"
            return value
        except Exception as exc:  # torn or foreign: recompute
            STAGE_CACHE[stage] = f"unreadable ({{type(exc).__name__}})"
    value = compute()
    try:
        save_stage(value, os.path.join("stages", f"{{stage}}-{{key}}"))
        STAGE_CACHE.setdefault(stage, "stored")
    except Exception as exc:  # a value with no safe format is simply not cached
        STAGE_CACHE.setdefault(stage, f"not stored ({{type(exc).__name__}})")
    return value


def _plain(value):
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"{{type(value).__name__}} has no safe cache format")


def save_stage(value, folder):
    os.makedirs(folder, exist_ok=True)
    items = []
    for i, item in enumerate(value if isinstance(value, tuple) else (value,)):
        name = f"item{{i}}"
        if isinstance(item, pd.DataFrame):
            item.to_parquet(os.path.join(folder, name + ".parquet"))
            items.append({{"kind": "frame", "file": name + ".parquet"}})
        elif isinstance(item, pd.Series):
            item.to_frame("value").to_parquet(os.path.join(folder, name + ".parquet"))
            items.append({{"kind": "series", "file": name + ".parquet", "name": item.name}})
        elif isinstance(item, np.ndarray):
            np.save(os.path.join(folder, name + ".npy"), item, allow_pickle=False)
            items.append({{"kind": "array", "file": name + ".npy"}})
        else:
            items.append({{"kind": "json", "value": json.loads(json.dumps(item, default=_plain))}})
    with open(os.path.join(folder, "manifest.json"), "w") as handle:
        json.dump({{"tuple": isinstance(value, tuple), "items": items}}, handle, default=_plain)


def load_stage(folder):
    import hashlib
    with open(os.path.join(folder, "manifest.json")) as handle:
        manifest = json.load(handle)
    out = []
    for item in manifest["items"]:
        if item["kind"] == "json":
            out.append(item["value"])
            continue
        path = os.path.join(folder, os.path.basename(item["file"]))
        with open(path, "rb") as handle:
            if hashlib.sha256(handle.read()).hexdigest() != manifest["sha256"][item["file"]]:
                raise ValueError(f"{{item['file']}} does not match its hash")
        if item["kind"] == "frame":
            out.append(pd.read_parquet(path))
        elif item["kind"] == "series":
            out.append(pd.read_parquet(path)["value"].rename(item["name"]))
        else:
            out.append(np.load(path, allow_pickle=False))
    return tuple(out) if manifest["tuple"] else out[0]
'''

_PREPROCESSING = '''

# ---- stage: preprocessing ----
def canonical(values):
    """Labels as strings that survive a csv round-trip (1, 1.0 and "1" agree)."""
    out = []
    for v in values:
        if isinstance(v, (bool, np.bool_)):
            out.append(str(bool(v)))
        elif isinstance(v, (int, np.integer)) or (isinstance(v, float) and np.isfinite(v) and v.is_integer()):
            out.append(str(int(v)))
        else:
            out.append(str(v))
    return np.asarray(out, dtype=object)


def read(path):
    return pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path, low_memory=False)


def load_data():
    root = os.environ.get("CREW_DATA", ".")
    train = read(os.path.join(root, TASK["train"]))
    test = read(os.path.join(root, TASK["test"]))
    train = train[train[TASK["target"]].notna()].reset_index(drop=True)
    train_ids = train[TASK["id_column"]] if TASK["id_column"] else pd.Series(np.arange(len(train)), name="row")
    test_ids = test[TASK["id_column"]] if TASK["id_column"] else pd.Series(np.arange(len(test)), name="row")
    keep = [c for c in COLUMNS["numeric"] + COLUMNS["categorical"] + COLUMNS["datetime"] + COLUMNS["text"]
            if c in test.columns and c not in COLUMNS["drop"]]
    return train[keep].copy(), train[TASK["target"]], test[keep].copy(), train_ids, test_ids


def encode_target(y):
    if TASK["target_type"] == "regression":
        return y.to_numpy(dtype=float)
    index = {{label: i for i, label in enumerate(TASK["classes"])}}
    return np.array([index[label] for label in canonical(y.to_numpy())])


def preprocessor(numeric, categorical):
    """{prep_doc}"""
    numeric_steps = {numeric_steps}
    parts = [("num", make_pipeline(*numeric_steps) if numeric_steps else "passthrough", numeric)]
    if categorical:
        parts.append(("cat", {categorical_step}, categorical))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
'''

_FEATURES = '''

# ---- stage: feature_engineering ----
def add_features(X, X_test):
    """{doc}"""
    both = pd.concat([X, X_test], keys=["train", "test"])
    numeric = [c for c in COLUMNS["numeric"] if c in both.columns]
    categorical = [c for c in COLUMNS["categorical"] if c in both.columns]
{body}    for c in categorical:
        both[c] = both[c].astype("string").fillna("__missing__")
    return both.loc["train"].reset_index(drop=True), both.loc["test"].reset_index(drop=True), numeric, categorical
'''

_FEATURE_BODIES = {
    "datetime_parts": '''    for c in COLUMNS["datetime"]:
        when = pd.to_datetime(both[c], errors="coerce")
        for part in ("year", "month", "day", "dayofweek", "hour"):
            both[f"{c}__{part}"] = getattr(when.dt, part).astype(float)
            numeric.append(f"{c}__{part}")
        both[f"{c}__epoch_days"] = (when - pd.Timestamp("1970-01-01")).dt.days.astype(float)
        numeric.append(f"{c}__epoch_days")
''',
    "text_tfidf": '''    for c in COLUMNS["text"]:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        text = both[c].fillna("").astype(str)
        matrix = TfidfVectorizer(max_features=5000, ngram_range=(1, 2), sublinear_tf=True).fit_transform(text)
        k = max(1, min(32, matrix.shape[1] - 1))
        reduced = TruncatedSVD(n_components=k, random_state=SEED).fit_transform(matrix)
        for i in range(reduced.shape[1]):
            both[f"{c}__svd{i}"] = reduced[:, i]
            numeric.append(f"{c}__svd{i}")
''',
    "numeric_interactions": '''    base = [c for c in numeric if both[c].nunique() > 2][:6]
    for i, a in enumerate(base):
        for b in base[i + 1:]:
            both[f"{a}*{b}"] = both[a] * both[b]
            both[f"{a}/{b}"] = both[a] / both[b].replace(0, np.nan)
            numeric += [f"{a}*{b}", f"{a}/{b}"]
''',
    "frequency_encoding": '''    for c in categorical:
        both[f"{c}__freq"] = both[c].map(both[c].value_counts(normalize=True)).astype(float)
        numeric.append(f"{c}__freq")
''',
}
_ALWAYS = '''    for c in COLUMNS["text"]:
        both[f"{c}__chars"] = both[c].fillna("").astype(str).str.len().astype(float)
        both[f"{c}__words"] = both[c].fillna("").astype(str).str.split().str.len().astype(float)
        numeric += [f"{c}__chars", f"{c}__words"]
    for c in COLUMNS["datetime"] + COLUMNS["text"]:
        both = both.drop(columns=c)
'''

_MODEL = '''

# ---- stage: model ----
def make_model(params, seed=SEED):
    """{doc}"""
{body}
'''

_MODEL_BODIES = {
    ("linear", "classification"): '''    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=params.get("C", 1.0), max_iter=2000)''',
    ("linear", "regression"): '''    from sklearn.linear_model import Ridge
    return Ridge(alpha=params.get("alpha", 1.0), random_state=seed)''',
    ("knn", "classification"): '''    from sklearn.neighbors import KNeighborsClassifier
    return KNeighborsClassifier(n_neighbors=params["n_neighbors"], weights="distance", n_jobs=THREADS)''',
    ("knn", "regression"): '''    from sklearn.neighbors import KNeighborsRegressor
    return KNeighborsRegressor(n_neighbors=params["n_neighbors"], weights="distance", n_jobs=THREADS)''',
    ("svm", "classification"): '''    from sklearn.svm import SVC
    return SVC(C=params["C"], probability=True, random_state=seed)''',
    ("svm", "regression"): '''    from sklearn.svm import SVR
    return SVR(C=params["C"])''',
    ("random_forest", "classification"): '''    from sklearn.ensemble import RandomForestClassifier
    return RandomForestClassifier(**params, n_jobs=THREADS, random_state=seed)''',
    ("random_forest", "regression"): '''    from sklearn.ensemble import RandomForestRegressor
    return RandomForestRegressor(**{**params, "max_features": 1.0 if params.get("max_features") == "sqrt" else params.get("max_features")}, n_jobs=THREADS, random_state=seed)''',
    ("extra_trees", "classification"): '''    from sklearn.ensemble import ExtraTreesClassifier
    return ExtraTreesClassifier(**params, n_jobs=THREADS, random_state=seed)''',
    ("extra_trees", "regression"): '''    from sklearn.ensemble import ExtraTreesRegressor
    return ExtraTreesRegressor(**{**params, "max_features": 1.0 if params.get("max_features") == "sqrt" else params.get("max_features")}, n_jobs=THREADS, random_state=seed)''',
    ("hist_gradient_boosting", "classification"): '''    from sklearn.ensemble import HistGradientBoostingClassifier
    return HistGradientBoostingClassifier(**params, early_stopping=False, random_state=seed)''',
    ("hist_gradient_boosting", "regression"): '''    from sklearn.ensemble import HistGradientBoostingRegressor
    return HistGradientBoostingRegressor(**params, early_stopping=False, random_state=seed)''',
    ("lightgbm", "classification"): '''    from lightgbm import LGBMClassifier
    return LGBMClassifier(**params, n_jobs=THREADS, random_state=seed, verbose=-1)''',
    ("lightgbm", "regression"): '''    from lightgbm import LGBMRegressor
    return LGBMRegressor(**params, n_jobs=THREADS, random_state=seed, verbose=-1)''',
    ("xgboost", "classification"): '''    from xgboost import XGBClassifier
    return XGBClassifier(**params, n_jobs=THREADS, random_state=seed, tree_method="hist", verbosity=0)''',
    ("xgboost", "regression"): '''    from xgboost import XGBRegressor
    return XGBRegressor(**params, n_jobs=THREADS, random_state=seed, tree_method="hist", verbosity=0)''',
}

_SEARCH_SPACES = {
    "linear": '''    if TASK["target_type"] == "regression":
        return {"alpha": trial.suggest_float("alpha", 1e-3, 1e3, log=True)}
    return {"C": trial.suggest_float("C", 1e-3, 1e2, log=True)}''',
    "knn": '''    return {"n_neighbors": trial.suggest_int("n_neighbors", 3, 60, log=True)}''',
    "svm": '''    return {"C": trial.suggest_float("C", 1e-2, 1e2, log=True)}''',
    "random_forest": '''    return {"n_estimators": PARAMS["n_estimators"], "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 10),
            "max_features": trial.suggest_float("max_features", 0.2, 1.0)}''',
    "extra_trees": '''    return {"n_estimators": PARAMS["n_estimators"], "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 10),
            "max_features": trial.suggest_float("max_features", 0.2, 1.0)}''',
    "hist_gradient_boosting": '''    return {"max_iter": PARAMS["max_iter"], "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 4, 64, log=True),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 2, 60, log=True),
            "l2_regularization": trial.suggest_float("l2_regularization", 1e-6, 10.0, log=True)}''',
    "lightgbm": '''    return {"n_estimators": PARAMS["n_estimators"], "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 128, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 2, 80, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0), "subsample_freq": 1,
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-6, 10.0, log=True)}''',
    "xgboost": '''    return {"n_estimators": PARAMS["n_estimators"], "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "max_depth": trial.suggest_int("max_depth", 2, 10),
            "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20.0, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-6, 10.0, log=True)}''',
}

_EVALUATION = '''

# ---- stage: evaluation ----
def score(y, raw):
    """The task's metric ({metric}) on encoded targets and raw predictions (class probabilities or values)."""
    from sklearn import metrics
{score_body}


def splitter(y):
    stratify = TASK["target_type"] != "regression" and np.bincount(y).min() >= FOLDS
    if REPEATS > 1:
        kind = RepeatedStratifiedKFold if stratify else RepeatedKFold
        return kind(n_splits=FOLDS, n_repeats=REPEATS, random_state=SEED)
    if stratify:
        return StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
    return KFold(n_splits=FOLDS, shuffle=True, random_state=SEED)


def predict_raw(model, X):
    if TASK["target_type"] == "regression":
        return model.predict(X)
    raw = np.zeros((X.shape[0], len(TASK["classes"])))
    if hasattr(model, "predict_proba"):
        raw[:, model.classes_] = model.predict_proba(X)
    else:
        raw[np.arange(X.shape[0]), model.predict(X)] = 1.0
    return raw


def target_forward(y):
    return np.log1p(np.clip(y, 0, None)) if LOG_TARGET else y


def target_back(values):
    return np.expm1(values) if LOG_TARGET else values


def values(raw):
    """Predictions on the target's own scale (a log-target model's back-transformed), ready to average."""
    return target_back(raw) if TASK["target_type"] == "regression" else raw


def cross_validate(X, y, X_test, numeric, categorical, params, folds=None, bags=None):
    """Fit `bags` pipelines per fold (seeds SEED, SEED+1, ...; their predictions averaged, a seed bag);
    out-of-fold predictions for the train set (averaged over the REPEATS redrawn splits), fold-averaged ones
    for test. `folds` keeps only the first splits (tuning's quick estimate)."""
    bags = bags or BAGS
    rng = np.random.default_rng(SEED)
    width = len(TASK["classes"]) if TASK["target_type"] != "regression" else None
    oof = np.zeros((len(y), width) if width else len(y))
    test_pred = np.zeros((len(X_test), width) if width else len(X_test)) if X_test is not None else None
    fold_scores, train_scores = [], []
    splits = list(splitter(y).split(X, y))
    repeats = len(splits) // FOLDS if not folds else 1
    for train_idx, valid_idx in splits[:folds] if folds else splits:
        if SUBSAMPLE and len(train_idx) > SUBSAMPLE:
            train_idx = rng.choice(train_idx, SUBSAMPLE, replace=False)
        fit_y = target_forward(y[train_idx]) if TASK["target_type"] == "regression" else y[train_idx]
        seen = train_idx[:2000]
        valid, fitted, pred = 0.0, 0.0, 0.0
        for bag in range(bags):
            model = make_pipeline(preprocessor(numeric, categorical), make_model(params, seed=SEED + bag))
            model.fit(X.iloc[train_idx], fit_y)
            valid = valid + values(predict_raw(model, X.iloc[valid_idx])) / bags
            fitted = fitted + values(predict_raw(model, X.iloc[seen])) / bags
            if X_test is not None:
                pred = pred + values(predict_raw(model, X_test)) / bags
        oof[valid_idx] += valid / repeats
        fold_scores.append(score(y[valid_idx], valid))
        train_scores.append(score(y[seen], fitted))
        if X_test is not None:
            test_pred += pred / len(splits)
    return oof, test_pred, fold_scores, train_scores


def tune(X, y, numeric, categorical):
    """Optuna over the model's search space on the same folds, time-boxed by TUNE_TIMEOUT."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def space(trial):
{space}

    def objective(trial):
        _, _, scores, _ = cross_validate(X, y, None, numeric, categorical, space(trial), folds=min(FOLDS, 3),
                                         bags=1)
        return float(np.mean(scores))

    study = optuna.create_study(direction="maximize" if TASK["higher_is_better"] else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=SEED))
    study.enqueue_trial({{k: v for k, v in PARAMS.items() if not isinstance(v, str)}}, skip_if_exists=True)
    study.optimize(objective, n_trials=TUNE_TRIALS, timeout=TUNE_TIMEOUT or None)
    return {{**PARAMS, **space(optuna.trial.FixedTrial(study.best_params))}}, len(study.trials)


def submission_frame(ids, raw):
    frame = pd.DataFrame({{ids.name: ids.to_numpy()}}) if TASK["id_column"] else pd.DataFrame()
    if TASK["target_type"] == "regression":
        values = np.clip(raw, 0, None) if TASK["metric"] == "rmsle" else raw
        frame[TASK["target"]] = values
    elif TASK["submission"] == "label":
        frame[TASK["target"]] = np.asarray(TASK["classes"], dtype=object)[raw.argmax(axis=1)]
    elif TASK["target_type"] == "binary":  # averaged folds, repeats and seeds may sum to 1 + 2e-16: clip
        frame[TASK["target"]] = np.clip(raw[:, TASK["classes"].index(TASK["positive"])], 0, 1)
    else:
        for i, label in enumerate(TASK["classes"]):
            frame[label] = np.clip(raw[:, i], 0, 1)
    return frame


def raw_frame(ids, raw):
    frame = pd.DataFrame({{ids.name: ids.to_numpy()}})
    if raw.ndim == 1:
        frame[TASK["target"]] = raw
    else:
        for i, label in enumerate(TASK["classes"]):
            frame[label] = raw[:, i]
    return frame


def main():
    started = time.perf_counter()

    def prepare():
        X, y_raw, X_test, train_ids, test_ids = load_data()
        y = encode_target(y_raw)
        TIMINGS["load"] = time.perf_counter() - started
        mark = time.perf_counter()
        X, X_test, numeric, categorical = add_features(X, X_test)
        TIMINGS["features"] = time.perf_counter() - mark
        return X, y, X_test, numeric, categorical, train_ids, test_ids

    X, y, X_test, numeric, categorical, train_ids, test_ids = cached_stage("features", prepare)
    TIMINGS["prepared"] = time.perf_counter() - started
    params, trials = dict(PARAMS), 0
    if TUNE_TRIALS:
        mark = time.perf_counter()
        params, trials = cached_stage("tune", lambda: tune(X, y, numeric, categorical))
        TIMINGS["tune"] = time.perf_counter() - mark
    mark = time.perf_counter()
    oof, test_pred, fold_scores, train_scores = cross_validate(X, y, X_test, numeric, categorical, params)
    TIMINGS["cross_validate"] = time.perf_counter() - mark
    raw_frame(train_ids, oof).to_csv("oof.csv", index=False)
    raw_frame(test_ids, test_pred).to_csv("test_pred.csv", index=False)
    submission_frame(test_ids, test_pred)[TASK["submission_columns"]].to_csv("predictions.csv", index=False)
    TIMINGS["total"] = time.perf_counter() - started
    metrics = {{"metric": TASK["metric"], "cv": float(score(y, oof)), "cv_mean": float(np.mean(fold_scores)),
               "cv_std": float(np.std(fold_scores)), "folds": [float(s) for s in fold_scores],
               "train_score": float(np.mean(train_scores)), "higher_is_better": TASK["higher_is_better"],
               "n_train": int(len(y)), "n_features": int(X.shape[1]), "params": params, "tune_trials": trials,
               "timings": {{k: round(v, 4) for k, v in TIMINGS.items()}}, "stage_cache": STAGE_CACHE}}
    with open("metrics.json", "w") as handle:
        json.dump(metrics, handle, indent=2)
    print(f"{{TASK['metric']}} cv={{metrics['cv']:.5f}} +- {{metrics['cv_std']:.5f}} over {{FOLDS}} folds "
          f"in {{TIMINGS['total']:.1f}}s")


if __name__ == "__main__":
    main()
'''

def _preprocessing_block(spec: PipelineSpec) -> str:
    scaled = MODELS[spec.model][2]
    nan_ok = MODELS[spec.model][3]
    steps = []
    if "impute_median" in spec.preprocessing or not nan_ok:
        indicator = "missing_indicators" in spec.preprocessing or scaled
        steps.append(f'SimpleImputer(strategy="median", add_indicator={indicator}, keep_empty_features=True)')
    if scaled or "scale_numeric" in spec.preprocessing:
        steps.append("StandardScaler()")
    if scaled and "one_hot_low_cardinality" in spec.preprocessing:
        categorical = ('OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=30, min_frequency=3, '
                       'sparse_output=False)')
        doc = "Median-impute and scale numbers; one-hot categories (rare ones pooled) for a model that needs scale."
    else:
        categorical = 'OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)'
        doc = "Numbers as they are (imputed where the model needs it); categories as ordinal codes for trees."
    return _PREPROCESSING.format(prep_doc=doc, numeric_steps="[" + ", ".join(steps) + "]", categorical_step=categorical)


def _features_block(spec: PipelineSpec) -> str:
    chosen = [f for f in spec.features if f in _FEATURE_BODIES]
    body = "".join(_FEATURE_BODIES[f] for f in chosen) + _ALWAYS
    doc = "Feature engineering: " + (", ".join(chosen) if chosen else "none beyond text lengths") + "."
    return _FEATURES.format(doc=doc, body=body)


def stage_blocks(spec: PipelineSpec, info: TaskInfo) -> dict[str, str]:
    """The code of each SELA stage; identical blocks across experiments are what the stage cache keys on."""
    task = "classification" if info.target_type != "regression" else "regression"
    model_doc = f"{spec.model} ({MODELS[spec.model][0 if task == 'classification' else 1]})"
    evaluation = _EVALUATION.format(metric=info.metric, score_body=METRICS[info.metric].template,
                                    space=textwrap.indent(_SEARCH_SPACES[spec.model], "    "))
    log_target = info.target_type == "regression" and ("log_target" in spec.features or METRICS[info.metric].nonnegative)
    return {
        "preprocessing": _preprocessing_block(spec),
        "feature_engineering": _features_block(spec),
        "model": _MODEL.format(doc=model_doc, body=_MODEL_BODIES[(spec.model, task)]),
        "evaluation": f"\n\nLOG_TARGET = {log_target}" + evaluation,
    }


def render(spec: PipelineSpec, info: TaskInfo | Task) -> str:
    """The experiment script for `spec` on the task: header constants then one block per stage."""
    if isinstance(info, Task):
        info = TaskInfo.from_task(info)
    if spec.model not in MODELS:
        raise ValueError(f"unknown model family {spec.model!r}; known: {', '.join(MODELS)}")
    params = spec.params or default_params(spec.model, rows=info.rows, regression=info.target_type == "regression")
    columns = {"numeric": spec.numeric, "categorical": spec.categorical, "datetime": spec.datetime,
               "text": spec.text, "drop": spec.drop}
    title = ", ".join(spec.insights())
    blocks = stage_blocks(spec, info)
    task, columns_text, params_text = _py(info.model_dump()), _py(columns), _py(params)
    features_key = _digest(task, columns_text, spec.seed, blocks["preprocessing"].split("\n\ndef preprocessor(")[0],
                           blocks["feature_engineering"])
    keys = {"features": features_key}
    if spec.tune_trials:
        keys["tune"] = _digest(features_key, blocks["preprocessing"], blocks["model"], blocks["evaluation"], params_text,
                               spec.folds, spec.repeats, spec.subsample, spec.tune_trials, spec.tune_timeout)
    header = _HEADER.format(title=title, task=task, columns=columns_text, folds=spec.folds, repeats=spec.repeats,
                            seed=spec.seed, subsample=spec.subsample, threads=spec.threads, params=params_text,
                            tune_trials=spec.tune_trials, tune_timeout=spec.tune_timeout, bags=spec.bags,
                            stage_keys=_py(keys))
    return header + "".join(blocks.values())


def _digest(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:20]


def stage_keys(code: str) -> dict[str, str]:
    """The `STAGE_KEYS` literal of an experiment script (empty for code that has none, e.g. an LLM's)."""
    try:
        tree = parse(code)
    except SyntaxError:
        return {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "STAGE_KEYS" for t in node.targets)):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return {}
            return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
    return {}


def cached_stages(code: str, folder: str | os.PathLike[str] | None) -> list[str]:
    """Stages of `code` whose results already sit in the stage cache `folder`: they will be loaded, not run."""
    if not folder:
        return []
    return [stage for stage, key in stage_keys(code).items()
            if os.path.exists(os.path.join(folder, f"{stage}-{key}", "manifest.json"))]


_STAGE_FILE = re.compile(r"item\d{1,3}\.(parquet|npy)")
_MANIFEST_BYTES = 4 * 1024**2


def rendered(code: str, spec: Mapping[str, Any], info: TaskInfo | Task) -> bool:
    """Whether `code` is exactly crew's own script for `spec`: the provenance the stage cache trusts."""
    fields = {k: v for k, v in spec.items() if k in PipelineSpec.model_fields}
    try:
        return bool(code) and render(PipelineSpec(**fields), info) == code
    except (ValueError, TypeError, KeyError):
        return False


def promote_stages(code: str, workdir: str | os.PathLike[str], cache: str | os.PathLike[str]) -> list[str]:
    """Copy the stages an experiment computed (`stages/<stage>-<key>/` in its work folder) into the run's cache,
    where later experiments read them; returns the stages promoted.

    Call it only for an experiment that finished, passed review and whose code crew rendered itself (`render` of
    its spec): the key names the code that computed the stage, and code crew did not write could claim any key.
    The copy is bytes only (nothing is parsed but the small manifest), and the manifest crew writes records the
    SHA-256 of every file, which the loading script checks. A stage already in the cache is never replaced.
    """
    promoted = []
    for stage, key in stage_keys(code).items():
        name = f"{stage}-{key}"
        source, target = Path(workdir) / "stages" / name, Path(cache) / name
        manifest_path = source / "manifest.json"
        if target.exists() or not manifest_path.is_file() or manifest_path.is_symlink() \
                or manifest_path.stat().st_size > _MANIFEST_BYTES:
            continue
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            files = [item["file"] for item in manifest["items"] if item["kind"] != "json"]
        except (ValueError, KeyError, TypeError):
            continue
        if not all(isinstance(f, str) and _STAGE_FILE.fullmatch(f) and (source / f).is_file()
                   and not (source / f).is_symlink() for f in files):
            continue
        staging = Path(cache) / f".{name}.{os.getpid()}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        digests = {}
        for file in files:
            shutil.copyfile(source / file, staging / file, follow_symlinks=False)
            digests[file] = hashlib.sha256((staging / file).read_bytes()).hexdigest()
        (staging / "manifest.json").write_text(json.dumps({**manifest, "sha256": digests}), encoding="utf-8")
        try:
            staging.rename(target)
            promoted.append(stage)
        except OSError:  # a twin promoted it first
            shutil.rmtree(staging, ignore_errors=True)
    return promoted


def spec_from_report(model: str, report: Mapping[str, Any], **fields: Any) -> PipelineSpec:
    """A spec whose column lists come from the analyst's data report."""
    drop = list(report.get("drop_columns", []))
    if "drop_leakage_suspects" in fields.get("preprocessing", ()):
        drop += list(report.get("leakage_suspects", []))
    return PipelineSpec(model=model, numeric=list(report.get("numeric_columns", [])),
                        categorical=list(report.get("categorical_columns", [])),
                        datetime=list(report.get("datetime_columns", [])), text=list(report.get("text_columns", [])),
                        drop=drop, **fields)
