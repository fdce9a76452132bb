"""The experiment script as real Python: every function a crew experiment's `code.py` is made of.

An experiment is one standalone file (DESIGN.md) that a person or a chat model
can read, edit and run without crew. `crew.tools.pipelines.render` writes it by
copying the functions an experiment needs out of this module's source, under
the experiment's constants (`TASK`, `COLUMNS`, `PARAMS`, ...), one section per
SELA stage. Because they live here, the functions are linted, type-checked and
unit-tested (tests set the constants on the module and call them).

Rules for this module, which `render` relies on:
- top-level imports are the script's (numpy, pandas, scikit-learn); anything
  else is imported inside the function that needs it;
- the upper-case assignments before the first function are the constants
  `render` sets; their values here describe a small binary task;
- a function named `make_model__<family>__<kind>` or `space__<family>` is a
  variant: `render` copies the experiment's one as `make_model` or
  `search_space`; `FEATURE_STEPS` lists the feature functions to run, and
  `render` keeps those the spec names;
- `score` is the metric's (`crew.Metric.template`): `render` writes the task
  metric's body in its place.
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

TASK: dict = {"name": "example", "train": "train.csv", "test": "test.csv", "target": "y", "id_column": "id",
              "metric": "accuracy", "higher_is_better": True, "target_type": "binary", "classes": ["0", "1"],
              "positive": "1", "submission": "label", "submission_columns": ["id", "y"], "nonnegative": False,
              "rows": 100}
COLUMNS: dict = {"numeric": [], "categorical": [], "datetime": [], "text": [], "drop": []}
PREPROCESS: dict = {"impute": True, "indicators": False, "scale": False, "one_hot": False}
FOLDS = 5
REPEATS = 1
SEED = 0
SUBSAMPLE = None
THREADS = 1
PARAMS: dict = {}
TUNE_TRIALS = 0
TUNE_TIMEOUT = 0.0
BAGS = 1
LOG_TARGET = False
STAGE_KEYS: dict = {}
TIMINGS: dict = {}
STAGE_CACHE: dict = {}


def cached_stage(stage, compute):
    """SELA's stage cache: a stage whose code, and the code before it, matches an earlier experiment's is
    loaded from $CREW_SHARED instead of recomputed. The cache is read-only here: this script writes what it
    computed into stages/ of its own folder, and crew promotes it to the cache after review, with the hash of
    every file. Nothing in it can run code on load (parquet, .npy without pickles, JSON)."""
    folder, key = os.environ.get("CREW_SHARED"), STAGE_KEYS.get(stage)
    if not folder or not key:
        return compute()
    cached = os.path.join(folder, f"{stage}-{key}")
    if os.path.exists(os.path.join(cached, "manifest.json")):
        try:
            value = load_stage(cached)
            STAGE_CACHE[stage] = "hit"
            return value
        except Exception as exc:  # torn or foreign: recompute
            STAGE_CACHE[stage] = f"unreadable ({type(exc).__name__})"
    value = compute()
    try:
        save_stage(value, os.path.join("stages", f"{stage}-{key}"))
        STAGE_CACHE.setdefault(stage, "stored")
    except Exception as exc:  # a value with no safe format is simply not cached
        STAGE_CACHE.setdefault(stage, f"not stored ({type(exc).__name__})")
    return value


def _plain(value):
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"{type(value).__name__} has no safe cache format")


def save_stage(value, folder):
    os.makedirs(folder, exist_ok=True)
    items = []
    for i, item in enumerate(value if isinstance(value, tuple) else (value,)):
        name = f"item{i}"
        if isinstance(item, pd.DataFrame):
            item.to_parquet(os.path.join(folder, name + ".parquet"))
            items.append({"kind": "frame", "file": name + ".parquet"})
        elif isinstance(item, pd.Series):
            item.to_frame("value").to_parquet(os.path.join(folder, name + ".parquet"))
            items.append({"kind": "series", "file": name + ".parquet", "name": item.name})
        elif isinstance(item, np.ndarray):
            np.save(os.path.join(folder, name + ".npy"), item, allow_pickle=False)
            items.append({"kind": "array", "file": name + ".npy"})
        else:
            items.append({"kind": "json", "value": json.loads(json.dumps(item, default=_plain))})
    with open(os.path.join(folder, "manifest.json"), "w") as handle:
        json.dump({"tuple": isinstance(value, tuple), "items": items}, handle, default=_plain)


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
                raise ValueError(f"{item['file']} does not match its hash")
        if item["kind"] == "frame":
            out.append(pd.read_parquet(path))
        elif item["kind"] == "series":
            out.append(pd.read_parquet(path)["value"].rename(item["name"]))
        else:
            out.append(np.load(path, allow_pickle=False))
    return tuple(out) if manifest["tuple"] else out[0]


# ---- stage: preprocessing ----
def canonical(values):
    """Labels as strings that survive a csv round-trip (1, 1.0 and "1" agree)."""
    out = []
    for v in values:
        if isinstance(v, bool | np.bool_):
            out.append(str(bool(v)))
        elif isinstance(v, int | np.integer) or (isinstance(v, float) and np.isfinite(v) and v.is_integer()):
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
    index = {label: i for i, label in enumerate(TASK["classes"])}
    return np.array([index[label] for label in canonical(y.to_numpy())])


def preprocessor(numeric, categorical):
    """Numbers median-imputed (with missing-value indicators) and scaled as PREPROCESS says; categories one-hot
    (rare ones pooled) for a model that needs scale, else as ordinal codes for trees."""
    numeric_steps = []
    if PREPROCESS["impute"]:
        numeric_steps.append(SimpleImputer(strategy="median", add_indicator=PREPROCESS["indicators"],
                                           keep_empty_features=True))
    if PREPROCESS["scale"]:
        numeric_steps.append(StandardScaler())
    parts = [("num", make_pipeline(*numeric_steps) if numeric_steps else "passthrough", numeric)]
    if categorical:
        if PREPROCESS["one_hot"]:
            encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=30, min_frequency=3,
                                    sparse_output=False)
        else:
            encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
        parts.append(("cat", encoder, categorical))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


# ---- stage: feature_engineering ----
def datetime_parts(both, numeric, categorical):
    """Year, month, day, weekday, hour and days since 1970 of every date column."""
    for c in COLUMNS["datetime"]:
        when = pd.to_datetime(both[c], errors="coerce")
        for part in ("year", "month", "day", "day_of_week", "hour"):
            both[f"{c}__{part}"] = getattr(when.dt, part).astype(float)
            numeric.append(f"{c}__{part}")
        both[f"{c}__epoch_days"] = (when - pd.Timestamp("1970-01-01")).dt.days.astype(float)
        numeric.append(f"{c}__epoch_days")


def text_tfidf(both, numeric, categorical):
    """TF-IDF of every text column (words and word pairs), reduced to at most 32 SVD components."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    for c in COLUMNS["text"]:
        text = both[c].fillna("").astype(str)
        matrix = TfidfVectorizer(max_features=5000, ngram_range=(1, 2), sublinear_tf=True).fit_transform(text)
        k = max(1, min(32, matrix.shape[1] - 1))
        reduced = TruncatedSVD(n_components=k, random_state=SEED).fit_transform(matrix)
        for i in range(reduced.shape[1]):
            both[f"{c}__svd{i}"] = reduced[:, i]
            numeric.append(f"{c}__svd{i}")


def numeric_interactions(both, numeric, categorical):
    """Products and ratios of the first six numeric columns that are not binary."""
    base = [c for c in numeric if both[c].nunique() > 2][:6]
    for i, a in enumerate(base):
        for b in base[i + 1:]:
            both[f"{a}*{b}"] = both[a] * both[b]
            both[f"{a}/{b}"] = both[a] / both[b].replace(0, np.nan)
            numeric += [f"{a}*{b}", f"{a}/{b}"]


def frequency_encoding(both, numeric, categorical):
    """Each category's share of the rows (train and test together), as a number."""
    for c in categorical:
        both[f"{c}__freq"] = both[c].map(both[c].value_counts(normalize=True)).astype(float)
        numeric.append(f"{c}__freq")


FEATURE_STEPS = [datetime_parts, text_tfidf, numeric_interactions, frequency_encoding]


def add_features(X, X_test):
    """Each of FEATURE_STEPS on train and test together, then the lengths of text columns; date and text
    columns themselves are dropped and missing categories become their own value."""
    both = pd.concat([X, X_test], keys=["train", "test"])
    numeric = [c for c in COLUMNS["numeric"] if c in both.columns]
    categorical = [c for c in COLUMNS["categorical"] if c in both.columns]
    for step in FEATURE_STEPS:
        step(both, numeric, categorical)
    for c in COLUMNS["text"]:
        both[f"{c}__chars"] = both[c].fillna("").astype(str).str.len().astype(float)
        both[f"{c}__words"] = both[c].fillna("").astype(str).str.split().str.len().astype(float)
        numeric += [f"{c}__chars", f"{c}__words"]
    for c in COLUMNS["datetime"] + COLUMNS["text"]:
        both = both.drop(columns=c)
    for c in categorical:
        both[c] = both[c].astype("string").fillna("__missing__")
    return both.loc["train"].reset_index(drop=True), both.loc["test"].reset_index(drop=True), numeric, categorical


# ---- stage: model ----
def _no_sqrt(params):
    """A regression forest considers every feature at a split (scikit-learn's default) where a classifier's
    default samples their square root."""
    return {**params, "max_features": 1.0 if params.get("max_features") == "sqrt" else params.get("max_features")}


def make_model__linear__classification(params, seed=SEED):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=params.get("C", 1.0), max_iter=2000)


def make_model__linear__regression(params, seed=SEED):
    from sklearn.linear_model import Ridge
    return Ridge(alpha=params.get("alpha", 1.0), random_state=seed)


def make_model__knn__classification(params, seed=SEED):
    from sklearn.neighbors import KNeighborsClassifier
    return KNeighborsClassifier(n_neighbors=params["n_neighbors"], weights="distance", n_jobs=THREADS)


def make_model__knn__regression(params, seed=SEED):
    from sklearn.neighbors import KNeighborsRegressor
    return KNeighborsRegressor(n_neighbors=params["n_neighbors"], weights="distance", n_jobs=THREADS)


def make_model__svm__classification(params, seed=SEED):
    from sklearn.svm import SVC
    return SVC(C=params["C"], probability=True, random_state=seed)


def make_model__svm__regression(params, seed=SEED):
    from sklearn.svm import SVR
    return SVR(C=params["C"])


def make_model__random_forest__classification(params, seed=SEED):
    from sklearn.ensemble import RandomForestClassifier
    return RandomForestClassifier(**params, n_jobs=THREADS, random_state=seed)


def make_model__random_forest__regression(params, seed=SEED):
    from sklearn.ensemble import RandomForestRegressor
    return RandomForestRegressor(**_no_sqrt(params), n_jobs=THREADS, random_state=seed)


def make_model__extra_trees__classification(params, seed=SEED):
    from sklearn.ensemble import ExtraTreesClassifier
    return ExtraTreesClassifier(**params, n_jobs=THREADS, random_state=seed)


def make_model__extra_trees__regression(params, seed=SEED):
    from sklearn.ensemble import ExtraTreesRegressor
    return ExtraTreesRegressor(**_no_sqrt(params), n_jobs=THREADS, random_state=seed)


def make_model__hist_gradient_boosting__classification(params, seed=SEED):
    from sklearn.ensemble import HistGradientBoostingClassifier
    return HistGradientBoostingClassifier(**params, early_stopping=False, random_state=seed)


def make_model__hist_gradient_boosting__regression(params, seed=SEED):
    from sklearn.ensemble import HistGradientBoostingRegressor
    return HistGradientBoostingRegressor(**params, early_stopping=False, random_state=seed)


def make_model__lightgbm__classification(params, seed=SEED):
    from lightgbm import LGBMClassifier
    return LGBMClassifier(**params, n_jobs=THREADS, random_state=seed, verbose=-1)


def make_model__lightgbm__regression(params, seed=SEED):
    from lightgbm import LGBMRegressor
    return LGBMRegressor(**params, n_jobs=THREADS, random_state=seed, verbose=-1)


def make_model__xgboost__classification(params, seed=SEED):
    from xgboost import XGBClassifier
    return XGBClassifier(**params, n_jobs=THREADS, random_state=seed, tree_method="hist", verbosity=0)


def make_model__xgboost__regression(params, seed=SEED):
    from xgboost import XGBRegressor
    return XGBRegressor(**params, n_jobs=THREADS, random_state=seed, tree_method="hist", verbosity=0)


# ---- stage: evaluation ----
def score(y, raw):
    """The task's metric on encoded targets and raw predictions (class probabilities or values). Its body is
    the metric's own (`crew.Metric.template`), which `render` writes here; this module's, for the example
    TASK above, is accuracy's."""
    from sklearn import metrics
    return metrics.accuracy_score(y, raw.argmax(axis=1))


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
        if test_pred is not None:
            test_pred += pred / len(splits)
    return oof, test_pred, fold_scores, train_scores


def space__linear(trial):
    if TASK["target_type"] == "regression":
        return {"alpha": trial.suggest_float("alpha", 1e-3, 1e3, log=True)}
    return {"C": trial.suggest_float("C", 1e-3, 1e2, log=True)}


def space__knn(trial):
    return {"n_neighbors": trial.suggest_int("n_neighbors", 3, 60, log=True)}


def space__svm(trial):
    return {"C": trial.suggest_float("C", 1e-2, 1e2, log=True)}


def space__random_forest(trial):
    return {"n_estimators": PARAMS["n_estimators"], "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 10),
            "max_features": trial.suggest_float("max_features", 0.2, 1.0)}


def space__extra_trees(trial):
    return {"n_estimators": PARAMS["n_estimators"], "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 10),
            "max_features": trial.suggest_float("max_features", 0.2, 1.0)}


def space__hist_gradient_boosting(trial):
    return {"max_iter": PARAMS["max_iter"],
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 4, 64, log=True),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 2, 60, log=True),
            "l2_regularization": trial.suggest_float("l2_regularization", 1e-6, 10.0, log=True)}


def space__lightgbm(trial):
    return {"n_estimators": PARAMS["n_estimators"],
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 128, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 2, 80, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0), "subsample_freq": 1,
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-6, 10.0, log=True)}


def space__xgboost(trial):
    return {"n_estimators": PARAMS["n_estimators"],
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "max_depth": trial.suggest_int("max_depth", 2, 10),
            "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20.0, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-6, 10.0, log=True)}


def tune(X, y, numeric, categorical):
    """Optuna over the model's search space on the same folds, time-boxed by TUNE_TIMEOUT."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        _, _, scores, _ = cross_validate(X, y, None, numeric, categorical, search_space(trial),
                                         folds=min(FOLDS, 3), bags=1)
        return float(np.mean(scores))

    study = optuna.create_study(direction="maximize" if TASK["higher_is_better"] else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=SEED))
    study.enqueue_trial({k: v for k, v in PARAMS.items() if not isinstance(v, str)}, skip_if_exists=True)
    study.optimize(objective, n_trials=TUNE_TRIALS, timeout=TUNE_TIMEOUT or None)
    return {**PARAMS, **search_space(optuna.trial.FixedTrial(study.best_params))}, len(study.trials)


def submission_frame(ids, raw):
    frame = pd.DataFrame({ids.name: ids.to_numpy()}) if TASK["id_column"] else pd.DataFrame()
    if TASK["target_type"] == "regression":
        values = np.clip(raw, 0, None) if TASK["nonnegative"] else raw
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
    frame = pd.DataFrame({ids.name: ids.to_numpy()})
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
    metrics = {"metric": TASK["metric"], "cv": float(score(y, oof)), "cv_mean": float(np.mean(fold_scores)),
               "cv_std": float(np.std(fold_scores)), "folds": [float(s) for s in fold_scores],
               "train_score": float(np.mean(train_scores)), "higher_is_better": TASK["higher_is_better"],
               "n_train": len(y), "n_features": int(X.shape[1]), "params": params, "tune_trials": trials,
               "timings": {k: round(v, 4) for k, v in TIMINGS.items()}, "stage_cache": STAGE_CACHE}
    with open("metrics.json", "w") as handle:
        json.dump(metrics, handle, indent=2)
    print(f"{TASK['metric']} cv={metrics['cv']:.5f} +- {metrics['cv_std']:.5f} over {FOLDS} folds "
          f"in {TIMINGS['total']:.1f}s")


make_model = make_model__lightgbm__classification
search_space = space__lightgbm
