"""The catalogue: every family is complete across its three homes, and insights say where they apply."""

from __future__ import annotations

import importlib

import pytest

from crew import METRICS
from crew.tools import script
from crew.tools.catalogue import (
    FAMILIES,
    FEATURES,
    IMPROVEMENTS,
    INSIGHTS,
    PREPROCESSING,
    applies,
    default_params,
    stage_of,
)
from crew.tools.cost import PRIORS
from crew.tools.pipelines import FEATURE_STEPS


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_has_a_model_for_both_kinds_a_search_space_and_a_cost_prior(name: str) -> None:
    family = FAMILIES[name]
    for kind in ("classification", "regression"):
        assert callable(getattr(script, f"make_model__{name}__{kind}"))
    assert callable(getattr(script, f"space__{name}"))
    assert name in PRIORS
    for dotted in (family.classifier, family.regressor):
        module, _, cls = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), cls), dotted


def test_the_script_has_no_variant_the_catalogue_does_not_name() -> None:
    variants = {n.split("__")[1] for n in vars(script) if n.startswith(("make_model__", "space__"))}
    assert variants == set(FAMILIES)


def test_every_feature_insight_is_a_script_step_except_those_that_need_the_target() -> None:
    # a log target and target means are fitted inside each fold (LOG_TARGET, PREPROCESS["target_encode"]), not on
    # train and test together as the feature steps are
    assert set(FEATURE_STEPS) == set(FEATURES) - {"log_target", "target_encoding", "nb_weights"}


def test_small_data_and_target_kind_shape_the_starting_parameters() -> None:
    assert default_params("linear") == {"C": 1.0} and default_params("linear", regression=True) == {"alpha": 1.0}
    assert default_params("lightgbm", rows=500)["num_leaves"] == 15
    assert default_params("lightgbm", rows=50_000)["num_leaves"] == 31
    assert default_params("random_forest") is not FAMILIES["random_forest"].defaults  # a copy to change freely


def test_regularizing_and_growing_change_the_parameters_that_matter() -> None:
    lgbm = default_params("lightgbm")
    tighter = FAMILIES["lightgbm"].regularize(lgbm)
    assert tighter["num_leaves"] < lgbm["num_leaves"] and tighter["min_child_samples"] > lgbm["min_child_samples"]
    assert FAMILIES["linear"].regularize({"C": 1.0}) == {"C": 0.25}
    assert FAMILIES["linear"].regularize({"alpha": 1.0}) == {"alpha": 4.0}
    grown = FAMILIES["xgboost"].more_estimators(default_params("xgboost"))
    assert grown["n_estimators"] == 2000 and grown["learning_rate"] == 0.025  # the cap early stopping works under
    assert FAMILIES["svm"].more_estimators({"C": 1.0}) == {"C": 1.0}


def test_insights_know_their_stage_and_where_they_can_change_anything() -> None:
    assert {stage_of(i) for i in PREPROCESSING} == {"preprocessing"}
    assert {stage_of(i) for i in FEATURES} == {"feature_engineering"}
    assert stage_of("lightgbm") == "model" and stage_of("debug") == "model" and stage_of("speed:x") == "evaluation"
    assert all(i in INSIGHTS for i in IMPROVEMENTS)
    plan = {"search_space": {"preprocessing": ["impute_median"]}}
    assert not applies("seed_bag", "hist_gradient_boosting", plan) and applies("seed_bag", "xgboost", plan)
    assert not applies("more_estimators", "knn", plan) and not applies("more_estimators", None, plan)
    assert applies("tune", None, plan) and applies("anything new", "linear", plan)


def test_the_planner_suggests_insights_from_the_report() -> None:
    report = {"categorical_columns": ["c"], "numeric_columns": ["a"], "datetime_columns": []}
    suggested = [n for n, i in INSIGHTS.items() if i.suggest and i.suggest(report)]
    assert "frequency_encoding" in suggested and "one_hot_low_cardinality" in suggested
    assert "numeric_interactions" not in suggested and "datetime_parts" not in suggested  # one number, no dates
    assert "log_target" not in suggested  # the script applies it for the metric, never the planner


def test_the_script_modules_own_score_is_that_of_its_example_metric() -> None:
    """The module stands for a rendered script of its example TASK: its score body is that metric's template."""
    import inspect

    body = inspect.getsource(script.score).split('from sklearn import metrics\n')[1].rstrip("\n")
    assert body == METRICS[script.TASK["metric"]].template


def test_the_speed_optimizer_is_a_role_of_its_own() -> None:
    """The optimizer's pipeline half, split from the kernel optimizer: it passes the role contract alone."""
    from crew.roles.speed_optimizer import SpeedOptimizer
    from crew.testing import check_role

    check_role(SpeedOptimizer())


def test_a_portfolio_configuration_is_an_improvement_tried_before_tuning() -> None:
    from crew.tools.catalogue import PORTFOLIO_SIZE
    assert IMPROVEMENTS[:PORTFOLIO_SIZE + 1] == ("portfolio_1", "portfolio_2", "tune")
    plan: dict = {"search_space": {}}
    assert applies("portfolio_2", "lightgbm", plan) and not applies("portfolio_1", "linear", plan)
    large = FAMILIES["lightgbm"].alternative(1, rows=50_000)
    assert large["num_leaves"] == 128 and large["n_estimators"] == default_params("lightgbm")["n_estimators"]
    for family in FAMILIES.values():  # every override is a parameter the family's estimator takes
        for config in family.portfolio:
            for regression in (False, True):
                kind = "regression" if regression else "classification"
                model = getattr(script, f"make_model__{family.name}__{kind}")
                script_params = {**family.params(regression=regression), **config}
                assert set(config) <= set(model(script_params).get_params()), (family.name, config)
