"""The catalogue: the model families and insights the offline expert composes experiments from, as typed records.

One home for what the team knows about a family or an insight. The planner
reads which families to draft and which insights suit the data, the modeler
how to start and change a family's parameters, the strategies which insights
can still change an experiment, the experiment script (`crew.tools.script`)
how to build and tune each family, and the critic's cost model
(`crew.tools.cost.PRIORS`, keyed by the same names) what each costs. Adding a
family is one `Family` here, its `make_model` and search space in the script,
and its cost prior; `tests/test_catalogue.py` checks that the three agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from crew import Experiment

__all__ = ["FAMILIES", "FEATURES", "IMPROVEMENTS", "INSIGHTS", "PREPROCESSING", "Family", "Insight", "Stage",
           "applies", "debug_depth", "default_params", "stage_of"]

Stage = Literal["preprocessing", "feature_engineering", "model", "evaluation"]
Params = dict[str, Any]

PORTFOLIO_SIZE = 2
"""Zero-shot configurations per family beyond its defaults (`Family.portfolio`)."""

SMALL_DATA_ROWS = 2_000
"""Below this many training rows a family starts from its `small_data` parameters."""


def _same(params: Params) -> Params:
    return params


def _more_estimators(params: Params) -> Params:
    """Twice the trees or rounds; boosters at half the learning rate, so the ensemble grows without overfitting."""
    out = dict(params)
    for key in ("n_estimators", "max_iter", "iterations"):
        if key in out:
            out[key] = int(out[key] * 2)
    if "learning_rate" in out:
        out["learning_rate"] = round(out["learning_rate"] / 2, 5)
    return out


@dataclass(frozen=True)
class Family:
    """A model family: its scikit-learn-style estimators, the input it needs, and how the expert sets and changes
    its parameters."""

    name: str
    classifier: str
    """Dotted path of the estimator for class targets."""
    regressor: str
    scaled: bool
    """Needs imputed, scaled, one-hot input (a linear, distance or kernel model) rather than ordinal codes."""
    handles_nan: bool
    """Fits on missing values as they are (no imputation needed)."""
    seeded: bool
    """Its fit depends on the seed (row or column sampling): a seed bag averages something."""
    ensemble: bool
    """A sum or average of trees: more of them can change the predictions."""
    defaults: Mapping[str, Any]
    small_data: Mapping[str, Any] = field(default_factory=dict)
    """Overrides below `SMALL_DATA_ROWS` rows: smaller leaves and slower learning so trees do not overfit."""
    regression_keys: tuple[str, ...] | None = None
    classification_keys: tuple[str, ...] | None = None
    """The defaults each kind of target uses, when they differ (a linear model's C or alpha)."""
    draft_max_rows: int | None = None
    """Drafted only up to this many rows: beyond it the family costs much for little (kernels, forests)."""
    draft_max_classes: int | None = None
    """Drafted only up to this many classes (CatBoost's multi-class fits are several times slower per class)."""
    regularize: Callable[[Params], Params] = _same
    """The parameters one step more regularized than `params`."""
    rounds_key: str = ""
    """The parameter that counts boosting rounds: set for a booster, whose rounds early stopping chooses (its
    value in `defaults` is then a cap, not a guess)."""
    portfolio: tuple[Mapping[str, Any], ...] = ()
    """Zero-shot alternatives to `defaults` (AutoGluon's and FLAML's habit of several strong default configurations
    per family, tried before any tuning): overrides of `params()`, one per `portfolio_<i>` insight."""
    sparse_text: bool = False
    """Fits on sparse word and character n-grams of text columns (`text_ngrams`): a linear model, which a
    hundred thousand TF-IDF columns suit, where trees take text reduced to a few dozen SVD components."""
    text_params: Mapping[str, Any] = field(default_factory=dict)
    """Overrides of its starting parameters when it fits on text n-grams (weaker regularization: TF-IDF rows are
    unit-length and the signal is spread over many columns)."""
    native_categories: Literal["", "category", "codes"] = ""
    """How it takes categorical columns natively: as pandas categories, as integer codes (CatBoost), or not at
    all (ordinal codes as numbers, or one-hot for a scaled model)."""

    def drafted(self, rows: int, classes: int = 0) -> bool:
        """Whether drafts try it on data of `rows` rows and `classes` classes (0 for regression)."""
        return ((self.draft_max_rows is None or rows <= self.draft_max_rows)
                and (self.draft_max_classes is None or classes <= self.draft_max_classes))

    def estimator(self, regression: bool) -> str:
        return self.regressor if regression else self.classifier

    def params(self, *, rows: int = 10_000, regression: bool = False, text: bool = False) -> Params:
        """Sensible starting parameters for data of `rows` training rows (`text`: fitting on text n-grams)."""
        params = {**self.defaults, **(self.small_data if rows < SMALL_DATA_ROWS else {}),
                  **(self.text_params if text else {})}
        keys = self.regression_keys if regression else self.classification_keys
        return {k: params[k] for k in keys} if keys is not None else params

    def alternative(self, index: int, *, rows: int = 10_000, regression: bool = False) -> Params:
        """The starting parameters with the `index`-th (0-based) portfolio configuration over them."""
        return {**self.params(rows=rows, regression=regression), **self.portfolio[index]}

    def more_estimators(self, params: Params) -> Params:
        return _more_estimators(params) if self.ensemble else dict(params)


def _updated(**changes: Callable[[Params], Any]) -> Callable[[Params], Params]:
    def change(params: Params) -> Params:
        return {**params, **{key: rule(params) for key, rule in changes.items()}}
    return change


def _regularize_linear(params: Params) -> Params:
    out = dict(params)
    if "C" in out:
        out["C"] = out["C"] / 4
    if "alpha" in out:
        out["alpha"] = out["alpha"] * 4
    return out


_FOREST = {"n_estimators": 300, "min_samples_leaf": 1, "max_features": "sqrt"}
_FOREST_PORTFOLIO = ({"max_features": 0.5}, {"max_features": 1.0, "min_samples_leaf": 3})
_regularize_forest = _updated(min_samples_leaf=lambda p: max(3, p.get("min_samples_leaf", 1) * 3))

FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("linear", "sklearn.linear_model.LogisticRegression", "sklearn.linear_model.Ridge",
           scaled=True, handles_nan=False, seeded=False, ensemble=False, defaults={"C": 1.0, "alpha": 1.0},
           classification_keys=("C",), regression_keys=("alpha",), regularize=_regularize_linear, sparse_text=True,
           text_params={"C": 4.0}),
    Family("lightgbm", "lightgbm.LGBMClassifier", "lightgbm.LGBMRegressor", scaled=False, handles_nan=True,
           seeded=True, ensemble=True, rounds_key="n_estimators", native_categories="category",
           defaults={"n_estimators": 1000, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20,
                     "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 1e-6},
           small_data={"num_leaves": 15, "min_child_samples": 10, "learning_rate": 0.03},
           portfolio=({"extra_trees": True},
                      {"learning_rate": 0.03, "num_leaves": 128, "colsample_bytree": 0.9, "min_child_samples": 3}),
           regularize=_updated(num_leaves=lambda p: max(4, p.get("num_leaves", 31) // 2),
                               min_child_samples=lambda p: p.get("min_child_samples", 20) * 2,
                               reg_lambda=lambda p: max(1.0, p.get("reg_lambda", 0.0) * 4))),
    Family("xgboost", "xgboost.XGBClassifier", "xgboost.XGBRegressor", scaled=False, handles_nan=True, seeded=True,
           ensemble=True, rounds_key="n_estimators", native_categories="category",
           defaults={"n_estimators": 1000, "learning_rate": 0.05, "max_depth": 6, "min_child_weight": 1.0,
                     "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0},
           small_data={"max_depth": 4, "learning_rate": 0.03},
           portfolio=({"max_depth": 8, "learning_rate": 0.03, "min_child_weight": 0.5, "colsample_bytree": 0.6},
                      {"max_depth": 3, "learning_rate": 0.1, "subsample": 0.7}),
           regularize=_updated(max_depth=lambda p: max(2, p.get("max_depth", 6) - 2),
                               min_child_weight=lambda p: p.get("min_child_weight", 1.0) * 4)),
    Family("hist_gradient_boosting", "sklearn.ensemble.HistGradientBoostingClassifier",
           "sklearn.ensemble.HistGradientBoostingRegressor", scaled=False, handles_nan=True, seeded=False,
           ensemble=True, rounds_key="max_iter", native_categories="category",
           defaults={"max_iter": 1000, "learning_rate": 0.06, "max_leaf_nodes": 31, "l2_regularization": 1e-6,
                     "min_samples_leaf": 20},
           small_data={"max_leaf_nodes": 15, "min_samples_leaf": 10, "learning_rate": 0.04},
           portfolio=({"max_leaf_nodes": 63, "min_samples_leaf": 5, "learning_rate": 0.03},
                      {"max_leaf_nodes": 8, "l2_regularization": 1.0, "learning_rate": 0.1}),
           regularize=_updated(max_leaf_nodes=lambda p: max(4, p.get("max_leaf_nodes", 31) // 2),
                               l2_regularization=lambda p: max(1.0, p.get("l2_regularization", 0.0) * 4))),
    Family("catboost", "catboost.CatBoostClassifier", "catboost.CatBoostRegressor", scaled=False, handles_nan=True,
           seeded=True, ensemble=True, rounds_key="iterations", native_categories="codes", draft_max_classes=4,
           defaults={"iterations": 1000, "learning_rate": 0.08, "depth": 6, "l2_leaf_reg": 3.0},
           portfolio=({"depth": 8, "l2_leaf_reg": 1.0, "learning_rate": 0.05}, {"depth": 4, "l2_leaf_reg": 10.0}),
           regularize=_updated(depth=lambda p: max(3, p.get("depth", 6) - 2),
                               l2_leaf_reg=lambda p: p.get("l2_leaf_reg", 3.0) * 3)),
    Family("extra_trees", "sklearn.ensemble.ExtraTreesClassifier", "sklearn.ensemble.ExtraTreesRegressor",
           scaled=False, handles_nan=False, seeded=True, ensemble=True, defaults=_FOREST, draft_max_rows=200_000,
           regularize=_regularize_forest, portfolio=_FOREST_PORTFOLIO),
    Family("random_forest", "sklearn.ensemble.RandomForestClassifier", "sklearn.ensemble.RandomForestRegressor",
           scaled=False, handles_nan=False, seeded=True, ensemble=True, defaults=_FOREST, draft_max_rows=200_000,
           regularize=_regularize_forest, portfolio=_FOREST_PORTFOLIO),
    Family("svm", "sklearn.svm.SVC", "sklearn.svm.SVR", scaled=True, handles_nan=False, seeded=False, ensemble=False,
           defaults={"C": 1.0}, draft_max_rows=20_000, regularize=_updated(C=lambda p: p.get("C", 1.0) / 4)),
    Family("knn", "sklearn.neighbors.KNeighborsClassifier", "sklearn.neighbors.KNeighborsRegressor", scaled=True,
           handles_nan=False, seeded=False, ensemble=False, defaults={"n_neighbors": 15}, draft_max_rows=20_000,
           regularize=_updated(n_neighbors=lambda p: p.get("n_neighbors", 15) * 2)),
)}
"""The families the expert knows, in the order the planner drafts them."""


def default_params(model: str, *, rows: int = 10_000, regression: bool = False, text: bool = False) -> Params:
    """A family's starting parameters (`Family.params`)."""
    return FAMILIES[model].params(rows=rows, regression=regression, text=text)


@dataclass(frozen=True)
class Insight:
    """One idea an experiment can add: its SELA stage, when the planner suggests it, and whom it can change."""

    name: str
    stage: Stage
    description: str
    suggest: Callable[[Mapping[str, Any]], bool] | None = None
    """Whether the planner offers it for data with this analyst report (None: never on its own)."""
    draft: bool = False
    """Drafts start with it when the plan offers it (a date column's parts: without them a draft would not see
    the column at all)."""
    applies: Callable[[Family | None, Mapping[str, Any]], bool] | None = None
    """Whether adding it to a family's pipeline (None: a script of a chat model's own) can change its predictions
    at all, given the plan; None: always."""
    target_types: tuple[str, ...] | None = None
    """The target types the planner offers it for (None: every type)."""


def _has(key: str, at_least: int = 1) -> Callable[[Mapping[str, Any]], bool]:
    return lambda report: len(report.get(key) or []) >= at_least


def _always(report: Mapping[str, Any]) -> bool:
    return True


def _has_portfolio(index: int) -> Callable[[Family | None, Mapping[str, Any]], bool]:
    return lambda family, plan: family is not None and len(family.portfolio) > index


INSIGHTS: dict[str, Insight] = {i.name: i for i in (
    Insight("impute_median", "preprocessing", "median-impute missing numbers", suggest=_always, draft=True),
    Insight("scale_numeric", "preprocessing", "standardize numbers", suggest=_always),
    Insight("missing_indicators", "preprocessing", "a 0/1 column per number that has missing values",
            suggest=_has("missing_columns"),
            applies=lambda family, plan: "missing_indicators" in plan.get("search_space", {}).get("preprocessing", [])),
    Insight("one_hot_low_cardinality", "preprocessing", "one-hot categories (rare ones pooled) for scaled models",
            suggest=_has("categorical_columns"), draft=True),
    Insight("ordinal_high_cardinality", "preprocessing", "categories as ordinal codes for trees",
            suggest=_has("categorical_columns"), draft=True),
    Insight("native_categories", "preprocessing", "categories split natively by the booster (any subset of levels "
            "per split) instead of as ordinal codes", suggest=_has("categorical_columns"),
            applies=lambda family, plan: family is not None and family.native_categories == "category"
            and "native_categories" in plan.get("search_space", {}).get("preprocessing", [])),
    Insight("drop_id_and_constant_columns", "preprocessing", "drop ids and constant columns",
            suggest=_has("drop_columns")),
    Insight("drop_leakage_suspects", "preprocessing", "drop columns that predict the target too well to be true "
            "(drafts keep them: a column the test set holds is known at prediction time; dropping them is a "
            "with/without comparison the search makes)", suggest=_has("leakage_suspects"),
            applies=lambda family, plan: "drop_leakage_suspects" in plan.get("search_space", {}).get("preprocessing",
                                                                                                      [])),
    Insight("datetime_parts", "feature_engineering", "year, month, day, day of year, weekday, hour and epoch days "
            "of dates", suggest=_has("datetime_columns"), draft=True),
    Insight("text_tfidf", "feature_engineering", "TF-IDF of text columns reduced by truncated SVD",
            suggest=_has("text_columns"), draft=True,
            applies=lambda family, plan: family is None or not family.sparse_text),
    Insight("text_ngrams", "feature_engineering", "word (1-2) and character (2-5) n-gram TF-IDF of text columns, "
            "kept sparse for a linear model", suggest=_has("text_columns"), draft=True,
            applies=lambda family, plan: family is not None and family.sparse_text),
    Insight("nb_weights", "feature_engineering", "NB-SVM: the text n-grams scaled by naive Bayes log-count ratios "
            "of the two classes, learnt within each fold", suggest=_has("text_columns"), target_types=("binary",),
            draft=True, applies=lambda family, plan: family is not None and family.sparse_text),
    Insight("target_encoding", "feature_engineering", "out-of-fold target means of categories with many levels, "
            "beside their codes", suggest=_has("high_cardinality_columns")),
    Insight("numeric_interactions", "feature_engineering", "products and ratios of the first numeric columns",
            suggest=_has("numeric_columns", 2)),
    Insight("frequency_encoding", "feature_engineering", "each category's share of the rows",
            suggest=_has("categorical_columns")),
    Insight("log_target", "feature_engineering", "fit on log1p of a nonnegative target, predict back with expm1",
            suggest=lambda report: bool(report.get("skewed_target"))),
    *(Insight(f"portfolio_{i + 1}", "model", f"the family's zero-shot configuration {i + 1} instead of its defaults",
              applies=_has_portfolio(i)) for i in range(PORTFOLIO_SIZE)),
    Insight("tune", "model", "optuna over the family's search space, time-boxed"),
    Insight("regularize", "model", "one step more regularized parameters"),
    Insight("more_estimators", "model", "twice the trees or rounds",
            applies=lambda family, plan: family is not None and family.ensemble),
    Insight("seed_bag", "model", "several seeds per fold, predictions averaged",
            applies=lambda family, plan: family is not None and family.seeded),
    Insight("debug", "model", "fix what killed the parent, changing nothing else"),
)}
"""Every insight the expert names, grouped by stage in the order the planner lists them."""

PREPROCESSING = tuple(n for n, i in INSIGHTS.items() if i.stage == "preprocessing")
FEATURES = tuple(n for n, i in INSIGHTS.items() if i.stage == "feature_engineering")
IMPROVEMENTS = (*(f"portfolio_{i + 1}" for i in range(PORTFOLIO_SIZE)), "tune", "regularize", "more_estimators",
                "missing_indicators", "native_categories", "drop_leakage_suspects", "seed_bag")
"""Insights the expert adds to a parent besides `FEATURES`, in the order strategies try them."""


def stage_of(insight: str) -> str:
    """The SELA stage an insight belongs to (a family's name is the model stage; anything else, evaluation)."""
    if insight in INSIGHTS:
        return INSIGHTS[insight].stage
    return "model" if insight in FAMILIES else "evaluation"


def applies(insight: str, model: str | None, plan: Mapping[str, Any]) -> bool:
    """Whether adding `insight` to a `model` pipeline can change its predictions at all. An insight that cannot
    (more trees for a linear model, seeds for a deterministic one, missing-value indicators on complete data)
    would spend one of the run's experiments on a copy of its parent and a noisy score."""
    known = INSIGHTS.get(insight)
    return known is None or known.applies is None or known.applies(FAMILIES.get(model or ""), plan)


def debug_depth(exp: Experiment, by_id: Mapping[str, Experiment]) -> int:
    """How many `debug` steps in a row led to `exp`."""
    depth = 0
    while exp.insights and exp.insights[-1] == "debug" and exp.parent is not None and exp.parent in by_id:
        depth += 1
        exp = by_id[exp.parent]
    return depth
