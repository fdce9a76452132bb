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
- a function named `make_model__<family>__<kind>`, `fit__<family>` or
  `space__<family>` is a variant: `render` copies the experiment's one as
  `make_model`, `fit_model` (`fit__plain` for a family without one) or
  `search_space`; `FEATURE_STEPS` lists the feature functions to run, and
  `render` keeps those the spec names;
- classes are copied like functions (a scikit-learn transformer the pipeline
  needs);
- `score` is the metric's (`crew.Metric.template`): `render` writes the task
  metric's body in its place.
"""

import json
import os
import time

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import (
    KFold,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    StratifiedKFold,
    train_test_split,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

TASK: dict = {"name": "example", "train": "train.csv", "test": "test.csv", "target": "y", "id_column": "id",
              "metric": "accuracy", "higher_is_better": True, "target_type": "binary", "classes": ["0", "1"],
              "positive": "1", "submission": "label", "submission_columns": ["id", "y"], "nonnegative": False,
              "decides": False, "calibrates": False, "rows": 100}
COLUMNS: dict = {"numeric": [], "categorical": [], "datetime": [], "text": [], "drop": []}
PREPROCESS: dict = {"impute": True, "indicators": False, "scale": False, "one_hot": False, "native": "",
                    "target_encode": []}
FOLDS = 5
REPEATS = 1
SEED = 0
SUBSAMPLE = None
THREADS = 1
PARAMS: dict = {}
TUNE_TRIALS = 0
TUNE_TIMEOUT = 0.0
TUNE_ROWS = 20_000
BAGS = 1
EARLY_STOPPING = 0
FIXED_ROUNDS = 300
ROUNDS_KEY = ""
REFIT = True
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


def numbers(values):
    """A numeric column as floats: booleans as 0/1, and text that is no number (a missing-value marker such as
    "?", "n/a" or "-", which pandas does not read as missing) as missing."""
    if not pd.api.types.is_numeric_dtype(values):
        values = values.map(lambda v: float(v) if isinstance(v, bool | np.bool_) else v)
    return pd.to_numeric(values, errors="coerce").astype(float)


def parse_dates(values, fmt=None):
    """Text as datetimes in the one format that reads most of a sample (pandas' guess from the values, day first
    and month first, ISO 8601 with or without a time zone), element by element only when no format reads 90%; a
    value it cannot read is missing. `fmt` reads them in a format chosen before. Returns (datetimes, format)."""
    import warnings
    if pd.api.types.is_datetime64_any_dtype(values):
        return values, "datetime"
    from pandas.tseries.api import guess_datetime_format
    text = values.astype("string").str.strip()
    sample = text.dropna().drop_duplicates().head(1000)
    if sample.empty and fmt is None:
        return pd.to_datetime(text, errors="coerce"), "empty"
    formats = ["ISO8601", "%m/%d/%y", "%d/%m/%y", "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt is not None and fmt not in ("datetime", "empty"):
            return pd.to_datetime(text, format=fmt, errors="coerce", utc=True).dt.tz_localize(None), fmt
        for value in sample.head(20):
            for dayfirst in (False, True):
                guess = guess_datetime_format(value, dayfirst=dayfirst)
                if guess and guess not in formats:
                    formats.append(guess)

        def read_as(values, fmt):
            return pd.to_datetime(values, format=fmt, errors="coerce", utc=True).dt.tz_localize(None)

        share = {fmt: read_as(sample, fmt).notna().mean() for fmt in formats}
        best = max(formats, key=lambda fmt: share[fmt])
        if share[best] < 0.9:
            best = "mixed"
        return read_as(text, best), best


def load_data():
    """Train (the rows with a target) and test: the columns the analyst kept, numbers as floats."""
    root = os.environ.get("CREW_DATA", ".")
    train = read(os.path.join(root, TASK["train"]))
    test = read(os.path.join(root, TASK["test"]))
    train = train[train[TASK["target"]].notna()].reset_index(drop=True)
    train_ids = train[TASK["id_column"]] if TASK["id_column"] else pd.Series(np.arange(len(train)), name="row")
    test_ids = test[TASK["id_column"]] if TASK["id_column"] else pd.Series(np.arange(len(test)), name="row")
    keep = [c for c in COLUMNS["numeric"] + COLUMNS["categorical"] + COLUMNS["datetime"] + COLUMNS["text"]
            if c in test.columns and c not in COLUMNS["drop"]]
    X, X_test = train[keep].copy(), test[keep].copy()
    for c in COLUMNS["numeric"]:
        if c in keep:
            X[c], X_test[c] = numbers(X[c]), numbers(X_test[c])
    return X, train[TASK["target"]], X_test, train_ids, test_ids


def encode_target(y):
    if TASK["target_type"] == "regression":
        return y.to_numpy(dtype=float)
    index = {label: i for i, label in enumerate(TASK["classes"])}
    return np.array([index[label] for label in canonical(y.to_numpy())])


def preprocessor(numeric, categorical):
    """Numbers median-imputed (with missing-value indicators) and scaled as PREPROCESS says, or left with their
    missing values for a model that splits on them; categories one-hot (rare ones pooled) for a model that needs
    scale, else as ordinal codes: for a model with native categorical splits (PREPROCESS["native"]) codes with
    unseen values missing, in a frame whose columns `NativeCategories` can find by name. Categories of the
    PREPROCESS["target_encode"] columns also get their target mean, shrunk towards the overall mean by how rare
    they are (scikit-learn's TargetEncoder: out-of-fold within the rows being fitted, so a row never sees its own
    target; one column per class for a multiclass target)."""
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
        elif PREPROCESS["native"]:
            encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                     encoded_missing_value=np.nan)
        else:
            encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
        parts.append(("cat", encoder, categorical))
    encoded = [c for c in PREPROCESS.get("target_encode", []) if c in categorical]
    if encoded:
        from sklearn.preprocessing import TargetEncoder
        if TASK["target_type"] == "regression":
            encoder = TargetEncoder(target_type="continuous", cv=KFold(5, shuffle=True, random_state=SEED))
        else:  # "auto": binary or multiclass by the classes this fit sees
            encoder = TargetEncoder(cv=StratifiedKFold(5, shuffle=True, random_state=SEED))
        parts.append(("te", encoder, encoded))
    sparse_text = [c for c in PREPROCESS.get("sparse_text", []) if c not in numeric + categorical]
    for c in sparse_text:  # words and their pairs, and character 2-5-grams within words: sparse, for a linear model
        from sklearn.feature_extraction.text import TfidfVectorizer
        words = TfidfVectorizer(ngram_range=(1, 2), max_features=50_000, sublinear_tf=True, strip_accents="unicode",
                                dtype=np.float32)
        chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), max_features=50_000, sublinear_tf=True,
                                dtype=np.float32)
        if PREPROCESS.get("nb_weights"):
            words, chars = make_pipeline(words, NBWeights()), make_pipeline(chars, NBWeights())
        parts.append((f"words_{c}", words, c))
        parts.append((f"chars_{c}", chars, c))
    transformer = ColumnTransformer(parts, remainder="drop", sparse_threshold=1.0 if sparse_text else 0.0)
    return transformer.set_output(transform="pandas") if PREPROCESS["native"] else transformer


class NBWeights(TransformerMixin, BaseEstimator):
    """NB-SVM's feature weights (Wang and Manning, 2012): each n-gram scaled by how unevenly the classes use it,
    the naive Bayes log-count ratio log((p / |p|) / (q / |q|)) of a class's rows (p) against the others' (q),
    smoothed by `alpha`; averaged in absolute value over the classes (for two, the plain ratio's size). Learnt
    from the rows a fit sees, so a fold's held-out rows never shape it."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def fit(self, X, y):
        X = sparse.csr_matrix(X)
        y = np.asarray(y)
        labels = np.unique(y)
        ratios = []
        for label in labels[1:] if len(labels) == 2 else labels:
            p = np.asarray(X[y == label].sum(axis=0)).ravel() + self.alpha
            q = np.asarray(X[y != label].sum(axis=0)).ravel() + self.alpha
            ratios.append(np.log((p / p.sum()) / (q / q.sum())))
        self.weights_ = np.abs(np.vstack(ratios)).mean(axis=0) if ratios else np.ones(X.shape[1])
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        return sparse.csr_matrix(X).multiply(self.weights_.astype(np.float32)).tocsr()

    def as_scaler(self):
        """The same scaling as a plain scikit-learn MaxAbsScaler, which a saved model can hold (skops loads
        scikit-learn's own classes, not the experiment's)."""
        scaler = MaxAbsScaler()
        weights = np.where(self.weights_ > 0, self.weights_, 1e-12)
        scaler.scale_ = 1.0 / weights
        scaler.max_abs_ = scaler.scale_.copy()
        scaler.n_samples_seen_ = 1
        scaler.n_features_in_ = self.n_features_in_
        return scaler


def _saveable(preprocessor):
    """A fitted preprocessing with every NBWeights step as its MaxAbsScaler, fitted and unfitted (for saving)."""
    for fitted in (True, False):
        for _name, step, _columns in getattr(preprocessor, "transformers_" if fitted else "transformers", []):
            if hasattr(step, "steps") and type(step.steps[-1][1]).__name__ == "NBWeights":
                last = step.steps[-1][1]
                step.steps[-1] = (step.steps[-1][0], last.as_scaler() if fitted else MaxAbsScaler())
    return preprocessor


class NativeCategories(TransformerMixin, BaseEstimator):
    """Categorical columns (`cat__*` ordinal codes) as pandas categories with the levels seen in fit, which
    LightGBM, XGBoost and HistGradientBoosting split on natively (any subset of levels per split, rather than
    codes in alphabetical order); `codes=True` gives integer codes, -1 for unseen, as CatBoost takes them.
    A column of more than 255 levels stays numeric codes (HistGradientBoosting's limit, and where native
    splits start to overfit)."""

    def __init__(self, codes=False):
        self.codes = codes

    def fit(self, X, y=None):
        self.levels_ = {c: int(X[c].max()) + 1 for c in X.columns
                        if c.startswith("cat__") and X[c].notna().any() and X[c].max() < 255}
        return self

    def transform(self, X):
        X = X.copy()
        for c, n in self.levels_.items():
            codes = X[c].fillna(-1).astype(int)
            X[c] = codes if self.codes else pd.Categorical.from_codes(codes, categories=np.arange(n))
        return X


# ---- stage: feature_engineering ----
def datetime_parts(both, numeric, categorical, state):
    """Year, month, day, day of the year, weekday, hour and days since 1970 of every date column, each read in
    the format that read it first."""
    formats = state.setdefault("date_formats", {})
    for c in state["columns"]["datetime"]:
        when, formats[c] = parse_dates(both[c], formats.get(c))
        for part in ("year", "month", "day", "day_of_year", "day_of_week", "hour"):
            both[f"{c}__{part}"] = getattr(when.dt, part).astype(float)
            numeric.append(f"{c}__{part}")
        both[f"{c}__epoch_days"] = (when - pd.Timestamp("1970-01-01")).dt.days.astype(float)
        numeric.append(f"{c}__epoch_days")


def text_tfidf(both, numeric, categorical, state):
    """TF-IDF of every text column (words and word pairs), reduced to at most 32 SVD components."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    fitted = state.setdefault("tfidf", {})
    for c in state["columns"]["text"]:
        text = both[c].fillna("").astype(str)
        if c not in fitted:
            vectorizer = TfidfVectorizer(max_features=5000, ngram_range=(1, 2), sublinear_tf=True).fit(text)
            matrix = vectorizer.transform(text)
            k = max(1, min(32, matrix.shape[1] - 1))
            fitted[c] = [vectorizer, TruncatedSVD(n_components=k, random_state=SEED).fit(matrix)]
        vectorizer, svd = fitted[c]
        reduced = svd.transform(vectorizer.transform(text))
        for i in range(reduced.shape[1]):
            both[f"{c}__svd{i}"] = reduced[:, i]
            numeric.append(f"{c}__svd{i}")


def text_ngrams(both, numeric, categorical, state):
    """Keep every text column as text (missing as empty) for the preprocessing's sparse word and character n-gram
    TF-IDF (PREPROCESS["sparse_text"]), the first thing a Kaggle expert fits a linear model on."""
    kept = state.setdefault("sparse_text", list(state["columns"]["text"]))
    for c in kept:
        both[c] = both[c].fillna("").astype(str)


def numeric_interactions(both, numeric, categorical, state):
    """Products and ratios of the first six numeric columns that are not binary."""
    if "interactions" not in state:
        state["interactions"] = [c for c in numeric if both[c].nunique() > 2][:6]
    base = state["interactions"]
    for i, a in enumerate(base):
        for b in base[i + 1:]:
            both[f"{a}*{b}"] = both[a] * both[b]
            both[f"{a}/{b}"] = both[a] / both[b].replace(0, np.nan)
            numeric += [f"{a}*{b}", f"{a}/{b}"]


def frequency_encoding(both, numeric, categorical, state):
    """Each category's share of the rows (train and test together), as a number."""
    shares = state.setdefault("frequencies", {})
    for c in categorical:
        values = both[c].astype("string")
        if c not in shares:
            shares[c] = {str(k): float(v) for k, v in values.value_counts(normalize=True).items()}
        both[f"{c}__freq"] = values.map(shares[c]).astype(float)
        numeric.append(f"{c}__freq")


FEATURE_STEPS = [datetime_parts, text_tfidf, text_ngrams, numeric_interactions, frequency_encoding]


def add_features(X, X_test, state=None):
    """Each of FEATURE_STEPS on train and test together, then the lengths of text columns; date and text
    columns themselves are dropped and missing categories become their own value.

    `state` collects what the steps learn from these rows (the columns and steps, the date formats, the fitted
    TF-IDF and SVD, the interaction columns, the category shares), so that a saved model can compute the same
    features for new rows: given a filled one, every step applies it instead of learning again."""
    state = {} if state is None else state
    kept = state.setdefault("columns", {k: list(COLUMNS[k]) for k in ("numeric", "categorical", "datetime", "text")})
    steps = state.setdefault("steps", [step.__name__ for step in FEATURE_STEPS])
    both = pd.concat([X, X_test], keys=["train", "test"])
    numeric = [c for c in kept["numeric"] if c in both.columns]
    categorical = [c for c in kept["categorical"] if c in both.columns]
    for name in steps:
        globals()[name](both, numeric, categorical, state)
    for c in kept["text"]:
        both[f"{c}__chars"] = both[c].fillna("").astype(str).str.len().astype(float)
        both[f"{c}__words"] = both[c].fillna("").astype(str).str.split().str.len().astype(float)
        numeric += [f"{c}__chars", f"{c}__words"]
    for c in kept["datetime"] + kept["text"]:
        if c not in state.get("sparse_text", []):  # text kept as text for the sparse n-grams
            both = both.drop(columns=c)
    for c in categorical:
        both[c] = both[c].astype("string").fillna("__missing__")
    return both.iloc[:len(X)].reset_index(drop=True), both.iloc[len(X):].reset_index(drop=True), numeric, categorical


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
    return HistGradientBoostingClassifier(**params, early_stopping=False, random_state=seed,
                                          categorical_features="from_dtype")


def make_model__hist_gradient_boosting__regression(params, seed=SEED):
    from sklearn.ensemble import HistGradientBoostingRegressor
    loss = "absolute_error" if TASK["metric"] == "mae" else "squared_error"
    return HistGradientBoostingRegressor(**params, loss=loss, early_stopping=False, random_state=seed,
                                         categorical_features="from_dtype")


def make_model__lightgbm__classification(params, seed=SEED):
    from lightgbm import LGBMClassifier
    return LGBMClassifier(**params, n_jobs=THREADS, random_state=seed, verbose=-1)


def make_model__lightgbm__regression(params, seed=SEED):
    from lightgbm import LGBMRegressor
    objective = "l1" if TASK["metric"] == "mae" else "regression"  # the loss the metric scores
    return LGBMRegressor(**params, objective=objective, n_jobs=THREADS, random_state=seed, verbose=-1)


def make_model__xgboost__classification(params, seed=SEED):
    from xgboost import XGBClassifier
    return XGBClassifier(**params, n_jobs=THREADS, random_state=seed, tree_method="hist", verbosity=0,
                         enable_categorical=True)


def make_model__xgboost__regression(params, seed=SEED):
    from xgboost import XGBRegressor
    objective = "reg:absoluteerror" if TASK["metric"] == "mae" else "reg:squarederror"
    return XGBRegressor(**params, objective=objective, n_jobs=THREADS, random_state=seed, tree_method="hist",
                        verbosity=0, enable_categorical=True)


def make_model__catboost__classification(params, seed=SEED):
    from catboost import CatBoostClassifier
    return CatBoostClassifier(**params, thread_count=THREADS, random_seed=seed, verbose=0, allow_writing_files=False)


def make_model__catboost__regression(params, seed=SEED):
    from catboost import CatBoostRegressor
    loss = "MAE" if TASK["metric"] == "mae" else "RMSE"
    return CatBoostRegressor(**params, loss_function=loss, thread_count=THREADS, random_seed=seed, verbose=0,
                             allow_writing_files=False)


def fit__plain(model, X, y, X_stop=None, y_stop=None):
    """Fit on every row given; no boosting rounds to choose."""
    model.fit(X, y)


def fit__lightgbm(model, X, y, X_stop=None, y_stop=None):
    """Fit; with rows to stop on, stop after EARLY_STOPPING rounds without gain there and keep the best round."""
    if X_stop is None:
        model.fit(X, y)
        return None
    from lightgbm import early_stopping
    model.fit(X, y, eval_X=(X_stop,), eval_y=(y_stop,), callbacks=[early_stopping(EARLY_STOPPING, verbose=False)])
    return int(model.best_iteration_ or model.n_estimators)


def fit__xgboost(model, X, y, X_stop=None, y_stop=None):
    """Fit; with rows to stop on, stop after EARLY_STOPPING rounds without gain there and keep the best round."""
    if X_stop is None:
        model.fit(X, y, verbose=False)
        return None
    model.set_params(early_stopping_rounds=EARLY_STOPPING)
    model.fit(X, y, eval_set=[(X_stop, y_stop)], verbose=False)
    return int(model.best_iteration) + 1


def fit__hist_gradient_boosting(model, X, y, X_stop=None, y_stop=None):
    """Fit; with rows to stop on, scikit-learn's own early stopping on a held-out share of that size."""
    if X_stop is None:
        model.fit(X, y)
        return None
    model.set_params(early_stopping=True, n_iter_no_change=EARLY_STOPPING,
                     validation_fraction=len(y_stop) / (len(y) + len(y_stop)))
    both = pd.concat([X, X_stop]) if isinstance(X, pd.DataFrame) else np.concatenate([X, X_stop])
    model.fit(both, np.concatenate([y, y_stop]))
    return int(model.n_iter_)


def fit__catboost(model, X, y, X_stop=None, y_stop=None):
    """Fit with the integer-coded categorical columns as CatBoost's own (ordered target statistics); with rows to
    stop on, stop after EARLY_STOPPING rounds without gain there and keep the best round."""
    categorical = [c for c in X.columns if c.startswith("cat__") and X[c].dtype.kind == "i"]
    if X_stop is None:
        model.fit(X, y, cat_features=categorical)
        return None
    model.fit(X, y, cat_features=categorical, eval_set=(X_stop, y_stop), early_stopping_rounds=EARLY_STOPPING,
              use_best_model=True)
    return int(model.get_best_iteration()) + 1


# ---- stage: evaluation ----
def score(y, raw):
    """The task's metric on encoded targets and raw predictions (class probabilities or values). Its body is
    the metric's own (`crew.Metric.template`), which `render` writes here; this module's, for the example
    TASK above, is accuracy's."""
    from sklearn import metrics
    return metrics.accuracy_score(y, raw.argmax(axis=1))


def splitter(y):
    """K folds, stratified for a class target. A class with fewer rows than folds still keeps its rows spread
    over the folds it can fill (scikit-learn only warns), rather than giving up stratification for every class."""
    import warnings
    warnings.filterwarnings("ignore", message="The least populated class")
    stratify = TASK["target_type"] != "regression" and np.bincount(y).max() >= FOLDS
    if REPEATS > 1:
        kind = RepeatedStratifiedKFold if stratify else RepeatedKFold
        return kind(n_splits=FOLDS, n_repeats=REPEATS, random_state=SEED)
    if stratify:
        return StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
    return KFold(n_splits=FOLDS, shuffle=True, random_state=SEED)


def holdout(y, seed, size=None):
    """A tenth of the rows (or `size` of them; stratified where every class has two) for a booster's early
    stopping, and the rest."""
    n_stop = size or max(20, len(y) // 10)
    if TASK["target_type"] != "regression" and np.bincount(y)[np.unique(y)].min() >= 2:
        fit_idx, stop_idx = train_test_split(np.arange(len(y)), test_size=n_stop, stratify=y, random_state=seed)
        return fit_idx, stop_idx
    order = np.random.default_rng(seed).permutation(len(y))
    return order[n_stop:], order[:n_stop]


def fit_pipeline(X, y, numeric, categorical, params, seed, rounds=None, early=True):
    """Preprocessing and the model, fitted; returns (pipeline, boosting rounds kept or None).

    A booster (EARLY_STOPPING > 0) holds out a tenth of its rows, stops after EARLY_STOPPING rounds without gain
    on them and keeps its best round, so the learning rate and the number of rounds are chosen together and the
    held-out scores stay honest; below 100 rows there is too little to stop on, and it fits FIXED_ROUNDS rounds
    (or its cap, if smaller). `rounds` fixes the rounds instead, `early=False` fits every row as given (the
    refit on every row). Class targets are fitted on the classes present, densely coded (a fold may miss a rare
    class); `labels_` maps them back."""
    stopping = early and EARLY_STOPPING and rounds is None and len(y) >= 100
    if rounds is not None and ROUNDS_KEY:
        params = {**params, ROUNDS_KEY: rounds}
    elif ROUNDS_KEY and not stopping:  # nothing to stop on: the cap is not a choice, take fewer
        params = {**params, ROUNDS_KEY: min(params[ROUNDS_KEY], FIXED_ROUNDS)}
    steps = [preprocessor(numeric, categorical)]
    if PREPROCESS["native"]:
        steps.append(NativeCategories(codes=PREPROCESS["native"] == "codes"))
    pipeline = make_pipeline(*steps, make_model(params, seed=seed))
    head, model = pipeline[:-1], pipeline[-1]
    labels = None
    if TASK["target_type"] != "regression":
        labels = np.unique(y)
        y = np.searchsorted(labels, y)
    kept = None
    if stopping:
        fit_idx, stop_idx = holdout(y, seed)
        stop_idx = stop_idx[np.isin(y[stop_idx], y[fit_idx])] if labels is not None else stop_idx
        X_fit = head.fit_transform(X.iloc[fit_idx], y[fit_idx])
        kept = fit_model(model, X_fit, y[fit_idx], head.transform(X.iloc[stop_idx]), y[stop_idx])
    else:
        fit_model(model, head.fit_transform(X, y), y)
    pipeline.labels_ = labels
    return pipeline, kept


def predict_raw(model, X):
    if TASK["target_type"] == "regression":
        return model.predict(X)
    raw = np.zeros((X.shape[0], len(TASK["classes"])))
    labels = getattr(model, "labels_", None)
    labels = model.classes_ if labels is None else labels
    if hasattr(model, "predict_proba"):
        raw[:, labels] = model.predict_proba(X)
    else:
        raw[np.arange(X.shape[0]), labels[model.predict(X)]] = 1.0
    return raw


def target_forward(y):
    return np.log1p(np.clip(y, 0, None)) if LOG_TARGET else y


def target_back(values):
    return np.expm1(values) if LOG_TARGET else values


def values(raw):
    """Predictions on the target's own scale (a log-target model's back-transformed), ready to average."""
    return target_back(raw) if TASK["target_type"] == "regression" else raw


def cross_validate(X, y, X_test, numeric, categorical, params, folds=None, bags=None, after_fold=None):
    """Fit `bags` pipelines per fold (seeds SEED, SEED+1, ...; their predictions averaged, a seed bag);
    out-of-fold predictions for the train set (averaged over the REPEATS redrawn splits), and, unless REFIT
    fits test's models on every row, fold-averaged ones for test. `folds` keeps only the first splits (tuning's
    quick estimate); `after_fold(i, parts)` is called after each (tuning stops a bad trial there). Returns them
    with each fold's (validation rows, their predictions, some training rows, their
    predictions), for scoring once the decision is fitted, and the boosting rounds early stopping kept."""
    bags = bags or BAGS
    rng = np.random.default_rng(SEED)
    width = len(TASK["classes"]) if TASK["target_type"] != "regression" else None
    oof = np.zeros((len(y), width) if width else len(y))
    test_pred = np.zeros((len(X_test), width) if width else len(X_test)) if X_test is not None else None
    parts, rounds = [], []
    splits = list(splitter(y).split(X, y))
    repeats = len(splits) // FOLDS if not folds else 1
    for train_idx, valid_idx in splits[:folds] if folds else splits:
        if SUBSAMPLE and len(train_idx) > SUBSAMPLE:
            train_idx = rng.choice(train_idx, SUBSAMPLE, replace=False)
        fit_y = target_forward(y[train_idx]) if TASK["target_type"] == "regression" else y[train_idx]
        seen = train_idx[:2000]
        valid, fitted, pred = 0.0, 0.0, 0.0
        for bag in range(bags):
            model, kept = fit_pipeline(X.iloc[train_idx], fit_y, numeric, categorical, params, SEED + bag)
            if kept:
                rounds.append(kept)
            valid = valid + values(predict_raw(model, X.iloc[valid_idx])) / bags
            fitted = fitted + values(predict_raw(model, X.iloc[seen])) / bags
            if test_pred is not None:
                pred = pred + values(predict_raw(model, X_test)) / bags
        oof[valid_idx] += valid / repeats
        parts.append((valid_idx, valid, seen, fitted))
        if test_pred is not None:
            test_pred += pred / len(splits)
        if after_fold is not None:
            after_fold(len(parts) - 1, parts)
    return oof, test_pred, parts, rounds


def fit_weights(y, raw, scorer):
    """Per-class weights on the probabilities whose argmax scores best (`scorer(y, raw)`, higher is better): the
    decision threshold for f1 or balanced accuracy, the prior correction and more for macro metrics. Coordinate
    ascent on a log grid, from plain argmax (all ones); only a strict gain moves a weight."""
    k = raw.shape[1]
    weights = np.ones(k)
    best = scorer(y, raw)
    grid = np.exp(np.linspace(-4.0, 4.0, 81))
    free = range(k) if k > 2 else [1]  # a binary decision is one threshold
    for _ in range(2 if k > 2 else 1):
        for c in free:
            for g in grid:
                trial = weights.copy()
                trial[c] = g
                value = scorer(y, raw * trial)
                if value > best + 1e-12:
                    best, weights = value, trial
    return weights


def temperature(y, raw):
    """For a metric that scores the probabilities themselves (log loss, TASK["calibrates"]): the temperature T
    whose probabilities p ** (1 / T), renormalized, score best on out-of-fold predictions, T >= 1: it softens an
    over-confident model (a forest's votes, a booster past its best round). It never sharpens: the test
    predictions come from a refit on every row, already surer than the folds' models, and on small data the
    out-of-fold rows may all be right (seen: T = 0.2 on 143 rows, a test log loss 45% worse). One number fitted on
    every out-of-fold row, so it hardly flatters the CV score. 1 (unchanged) otherwise."""
    if not TASK.get("calibrates") or raw.ndim != 2:
        return 1.0
    from scipy.optimize import minimize_scalar
    sign = -1.0 if TASK["higher_is_better"] else 1.0
    found = minimize_scalar(lambda t: sign * score(y, calibrated(raw, t)), bounds=(1.0, 5.0), method="bounded",
                            options={"xatol": 1e-3})
    return round(float(found.x), 4) if found.fun < sign * score(y, raw) - 1e-9 else 1.0


def calibrated(raw, t):
    """Class probabilities at temperature `t` (see `temperature`)."""
    if t == 1.0 or raw.ndim != 2:
        return raw
    logp = np.log(np.clip(raw, 1e-15, 1.0)) / t
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def decision(y, raw):
    """The class weights labels are decided with: fitted on out-of-fold predictions when the metric scores labels
    and the most probable class is not its best guess (TASK["decides"]); ones (argmax) otherwise."""
    if TASK["target_type"] == "regression" or not TASK["decides"]:
        return np.ones(raw.shape[1]) if raw.ndim == 2 else None
    return fit_weights(y, raw, score)


def decided(raw, weights):
    """Raw predictions with the decision applied: class scores whose argmax is the label to submit."""
    return raw if weights is None else raw * weights


def fold_scores(y, parts, weights):
    """Each fold's validation score and training-rows score, with the decision applied."""
    return ([score(y[v], decided(p, weights)) for v, p, _, _ in parts],
            [score(y[s], decided(f, weights)) for _, _, s, f in parts])


def refit_rounds(rounds):
    """The rounds for a fit on every row: the median the folds' early stopping kept, a tenth more for the larger
    data (None when nothing stopped early)."""
    return int(np.ceil(np.median(rounds) * 1.1)) if rounds else None


def refit(X, y, X_test, numeric, categorical, params, rounds):
    """Test predictions of BAGS pipelines fitted on every training row (or SUBSAMPLE of them), with `rounds`
    boosting rounds: each fold's model saw only (k-1)/k of the rows, less the early-stopping share."""
    idx = np.arange(len(y))
    if SUBSAMPLE and len(idx) > SUBSAMPLE:
        idx = np.random.default_rng(SEED).choice(idx, SUBSAMPLE, replace=False)
    fit_y = target_forward(y[idx]) if TASK["target_type"] == "regression" else y[idx]
    pred, models = 0.0, []
    for bag in range(BAGS):
        model, _ = fit_pipeline(X.iloc[idx], fit_y, numeric, categorical, params, SEED + bag,
                                rounds=rounds, early=False)
        pred = pred + values(predict_raw(model, X_test)) / BAGS
        models.append(model)
    return pred, models


def _vectorizers(parts, state):
    """Every fitted TF-IDF vectorizer of a model: in the preprocessing (sparse n-grams) and the features' state."""
    steps = [s for part in parts for _, v, _ in getattr(part["preprocessor"], "transformers_", [])
             for s in ([step for _, step in v.steps] if hasattr(v, "steps") else [v])]
    found = [v for v in steps if type(v).__name__ == "TfidfVectorizer"]
    return found + [pair[0] for pair in state.get("tfidf", {}).values()]


def load_skops():
    """skops.io, loaded without PyTorch. On import skops lists scikit-learn's estimators by walking every sklearn
    package, and the walk imports sklearn's vendored array-API adapter for torch, which imports torch itself (3 s on
    2 cores) where it is installed, though no estimator lives there. torch is blocked while skops loads, unless
    something already loaded it; the list of trusted types is the same."""
    import sys

    if "torch" in sys.modules or "skops.io" in sys.modules:
        import skops.io as sio

        return sio
    sys.modules["torch"] = None  # type: ignore[assignment]  # an import of torch fails at once; the walk skips it
    try:
        import skops.io as sio
    finally:
        del sys.modules["torch"]
    return sio


def save_model(state, models, t, weights, path="model.skops"):
    """What predicts new rows as this experiment predicted test (`crew predict`, `crew.load`): the feature steps'
    state, the pipelines fitted on every row, the temperature and class weights, in skops' format, which loads
    without running code. Returns what was written, or why nothing was: a model over 200 MB (a deep forest on
    many rows) is not kept. The state is learned again when the features came from the stage cache."""
    sio = load_skops()
    if not state:
        X, _, X_test, _, _ = load_data()
        add_features(X, X_test, state)
    parts = []
    for model in models:
        native = next((step for step in model[:-1] if type(step).__name__ == "NativeCategories"), None)
        parts.append({"preprocessor": _saveable(model[0]), "model": model[-1],
                      "labels": None if model.labels_ is None else [int(c) for c in model.labels_],
                      "native": None if native is None else {"levels": native.levels_, "codes": native.codes}})
    largest = 200 * 2**20
    forest = [getattr(m["model"], "estimators_", []) for m in parts]
    nodes = sum(tree.tree_.node_count for trees in forest for tree in trees if hasattr(tree, "tree_"))
    if nodes * 120 > largest:  # checked before serializing: dumping a forest that size would take its memory again
        return f"not saved: about {nodes * 120 / 2**20:.0f} MB of trees"
    # A vocabulary goes in as two arrays (skops writes a dict of 100,000 n-grams one node at a time: a minute);
    # crew.tools.predictor puts it back. The pruned terms are for introspection only and may be millions.
    vectorizers = _vectorizers(parts, state)
    vocabularies = [getattr(v, "vocabulary_", {}) for v in vectorizers]
    for v in vectorizers:
        for name in ("stop_words_", "vocabulary_"):
            if hasattr(v, name):
                delattr(v, name)
    payload = {"format": 1, "task": TASK, "log_target": LOG_TARGET, "features": state, "models": parts,
               "temperature": t, "class_weights": None if weights is None else [float(w) for w in weights],
               "vocabularies": [{"terms": np.array(list(vocab), dtype=str),
                                 "indices": np.fromiter(vocab.values(), dtype=np.int64, count=len(vocab))}
                                for vocab in vocabularies]}
    try:
        blob = sio.dumps(payload)
    finally:
        for v, vocab in zip(vectorizers, vocabularies, strict=True):
            v.vocabulary_ = vocab
    if len(blob) > largest:
        return f"not saved: {len(blob) / 2**20:.0f} MB"
    with open(path, "wb") as handle:
        handle.write(blob)
    return path


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


def space__catboost(trial):
    return {"iterations": PARAMS["iterations"],
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "depth": trial.suggest_int("depth", 3, 10),
            "l2_leaf_reg": trial.suggest_float("l2_leaf_reg", 0.5, 30.0, log=True),
            "random_strength": trial.suggest_float("random_strength", 0.1, 10.0, log=True)}


def tune(X, y, numeric, categorical):
    """Optuna over the model's search space on the same folds, time-boxed by TUNE_TIMEOUT. Cheap first, so that
    more configurations fit the time box: on more than TUNE_ROWS rows the trials fit a sample of that many
    (stratified), and a trial whose score after a fold is worse than the median of earlier trials' at that fold is
    stopped there. Early stopping refits the rounds to all rows afterwards."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if len(y) > TUNE_ROWS:
        sample, _ = holdout(y, SEED, size=len(y) - TUNE_ROWS)
        X, y = X.iloc[np.sort(sample)].reset_index(drop=True), y[np.sort(sample)]

    def scored(parts):
        rows = np.concatenate([v for v, _, _, _ in parts])
        raw = np.concatenate([p for _, p, _, _ in parts])
        return float(score(y[rows], decided(raw, decision(y[rows], raw))))

    def objective(trial):
        def after_fold(i, parts):
            trial.report(scored(parts), i)
            if trial.should_prune():
                raise optuna.TrialPruned()

        _, _, parts, _ = cross_validate(X, y, None, numeric, categorical, search_space(trial),
                                        folds=min(FOLDS, 3), bags=1, after_fold=after_fold)
        return scored(parts)

    study = optuna.create_study(direction="maximize" if TASK["higher_is_better"] else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=SEED),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=5))
    study.enqueue_trial({k: v for k, v in PARAMS.items() if not isinstance(v, str)}, skip_if_exists=True)
    study.optimize(objective, n_trials=TUNE_TRIALS, timeout=TUNE_TIMEOUT or None)
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        return dict(PARAMS), len(study.trials)
    return {**PARAMS, **search_space(optuna.trial.FixedTrial(study.best_params))}, len(study.trials)


def submission_frame(ids, raw, task=None):
    """Raw predictions (decided) in the submission's format: labels, the positive class's probability, one column
    per class, or values (clipped at 0 for a nonnegative metric). `task`: another TASK (a saved model's)."""
    task = task or TASK
    frame = pd.DataFrame({ids.name: ids.to_numpy()}) if task["id_column"] else pd.DataFrame()
    if task["target_type"] == "regression":
        values = np.clip(raw, 0, None) if task["nonnegative"] else raw
        frame[task["target"]] = values
    elif task["submission"] == "label":
        frame[task["target"]] = np.asarray(task["classes"], dtype=object)[raw.argmax(axis=1)]
    elif task["target_type"] == "binary":  # averaged folds, repeats and seeds may sum to 1 + 2e-16: clip
        frame[task["target"]] = np.clip(raw[:, task["classes"].index(task["positive"])], 0, 1)
    else:
        frame = pd.concat([frame, pd.DataFrame(np.clip(raw, 0, 1), columns=task["classes"])], axis=1)
    return frame


def raw_frame(ids, raw):
    if raw.ndim == 1:
        return pd.DataFrame({ids.name: ids.to_numpy(), TASK["target"]: raw})
    return pd.DataFrame({ids.name: ids.to_numpy(), **{label: raw[:, i] for i, label in enumerate(TASK["classes"])}})


def threads_for(rows):
    """The threads a fit may use: THREADS on larger data, one below 20,000 training rows, where waking other
    threads at every tree costs more than they save (sleeping OpenMP waiters make each barrier a system call:
    a 2-thread LightGBM fit on 150 rows ran 10x slower than on one)."""
    return THREADS if rows >= 20_000 else 1


def main():
    global THREADS
    started = time.perf_counter()

    def prepare():
        X, y_raw, X_test, train_ids, test_ids = load_data()
        y = encode_target(y_raw)
        TIMINGS["load"] = time.perf_counter() - started
        mark = time.perf_counter()
        X, X_test, numeric, categorical = add_features(X, X_test, state)
        TIMINGS["features"] = time.perf_counter() - mark
        return X, y, X_test, numeric, categorical, train_ids, test_ids

    state: dict = {}  # what the feature steps learned, for the saved model
    X, y, X_test, numeric, categorical, train_ids, test_ids = cached_stage("features", prepare)
    TIMINGS["prepared"] = time.perf_counter() - started
    from threadpoolctl import threadpool_limits
    THREADS = threads_for(len(y))
    threadpool_limits(THREADS)  # scikit-learn's own OpenMP (HistGradientBoosting) and BLAS too
    params, trials = dict(PARAMS), 0
    if TUNE_TRIALS:
        mark = time.perf_counter()
        params, trials = cached_stage("tune", lambda: tune(X, y, numeric, categorical))
        TIMINGS["tune"] = time.perf_counter() - mark
    mark = time.perf_counter()
    oof, test_pred, parts, rounds = cross_validate(X, y, X_test if not REFIT else None, numeric, categorical, params)
    TIMINGS["cross_validate"] = time.perf_counter() - mark
    refit_with = refit_rounds(rounds)
    models = []
    if REFIT:
        mark = time.perf_counter()
        test_pred, models = refit(X, y, X_test, numeric, categorical, params, refit_with)
        TIMINGS["refit"] = time.perf_counter() - mark
    t = temperature(y, oof)
    oof, test_pred = calibrated(oof, t), calibrated(test_pred, t)
    parts = [(v, calibrated(p, t), s, calibrated(f, t)) for v, p, s, f in parts]
    weights = decision(y, oof)
    folds, trained = fold_scores(y, parts, weights)
    raw_frame(train_ids, oof).to_csv("oof.csv", index=False)
    raw_frame(test_ids, test_pred).to_csv("test_pred.csv", index=False)
    submission_frame(test_ids, decided(test_pred, weights))[TASK["submission_columns"]].to_csv("predictions.csv",
                                                                                                index=False)
    saved = "not saved: no refit on every row"
    if models:
        mark = time.perf_counter()
        try:
            saved = save_model(state, models, t, weights)
        except Exception as exc:  # the predictions stand without a saved model
            saved = f"not saved: {type(exc).__name__}: {exc}"
        TIMINGS["save_model"] = time.perf_counter() - mark
    TIMINGS["total"] = time.perf_counter() - started
    metrics = {"metric": TASK["metric"], "cv": float(score(y, decided(oof, weights))),
               "cv_mean": float(np.mean(folds)), "cv_std": float(np.std(folds)), "folds": [float(s) for s in folds],
               "train_score": float(np.mean(trained)), "higher_is_better": TASK["higher_is_better"],
               "n_train": len(y), "n_features": int(X.shape[1]), "params": params, "tune_trials": trials,
               "threads": THREADS, "fold_rounds": rounds, "refit": REFIT, "refit_rounds": refit_with,
               "temperature": t, "class_weights": None if weights is None or not TASK["decides"] else [float(w) for w in weights],
               "model": saved, "timings": {k: round(v, 4) for k, v in TIMINGS.items()}, "stage_cache": STAGE_CACHE}
    with open("metrics.json", "w") as handle:
        json.dump(metrics, handle, indent=2)
    print(f"{TASK['metric']} cv={metrics['cv']:.5f} +- {metrics['cv_std']:.5f} over {FOLDS} folds "
          f"in {TIMINGS['total']:.1f}s")


make_model = make_model__lightgbm__classification
fit_model = fit__lightgbm
search_space = space__lightgbm
