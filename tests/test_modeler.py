"""The modeler's expert: insights that can change a pipeline, and experiments sized to the run's share."""

from __future__ import annotations

import pytest

from crew import Blackboard, Experiment
from crew.roles.modeler import Modeler
from crew.tools.catalogue import applies
from crew.workflows.strategies import improvements_for
from tests.conftest import EXAMPLE_TASK

TASK_YAML = EXAMPLE_TASK / "task.yaml"
REPORT = {"leakage_suspects": [], "drop_columns": ["id"], "numeric_columns": [], "categorical_columns": []}
PLAN = {"cv_folds": 5, "search_space": {"preprocessing": ["impute_median"], "feature_engineering": []}}


def test_insights_that_cannot_change_a_pipeline_are_not_proposed():
    assert not applies("more_estimators", "linear", PLAN) and applies("more_estimators", "extra_trees", PLAN)
    assert not applies("seed_bag", "svm", PLAN) and not applies("seed_bag", "hist_gradient_boosting", PLAN)
    assert applies("seed_bag", "lightgbm", PLAN)
    assert not applies("missing_indicators", "lightgbm", PLAN)  # the data has no missing values
    with_missing = {"search_space": {"preprocessing": ["impute_median", "missing_indicators"]}}
    assert applies("missing_indicators", "lightgbm", with_missing)
    linear = Experiment(id="a", insights=["linear"], code="x", spec={"model": "linear"})
    assert improvements_for(PLAN, linear) == ["tune", "regularize"]
    forest = Experiment(id="b", insights=["random_forest"], code="x", spec={"model": "random_forest"})
    assert improvements_for(PLAN, forest) == ["portfolio_1", "portfolio_2", "tune", "regularize", "more_estimators",
                                              "seed_bag"]


def _design(tmp_path, insight: str, share: float | None, cv_seconds: float = 1.0):
    board = Blackboard(tmp_path / "bb.sqlite")
    spec = {"model": "lightgbm", "params": {"n_estimators": 400, "learning_rate": 0.04}, "preprocessing": [],
            "features": [], "folds": 5, "seed": 0}
    board.add_experiment(Experiment(id="p", insights=["lightgbm"], code="x", spec=spec, status="done", score=0.9,
                                    wall_time=cv_seconds + 1.0,
                                    metrics={"timings": {"cross_validate": cv_seconds}}))
    step = {"phase": "improve", "parent": "p", "model": "lightgbm", "insight": insight}
    if share is not None:
        step["share"] = share
    modeler = Modeler(blackboard=board)
    return modeler.expert(modeler.context({"task": str(TASK_YAML), "data_report": REPORT, "plan": PLAN, "step": step}))


def test_tuning_grows_with_the_share_of_the_run_and_is_time_boxed(tmp_path):
    plain = _design(tmp_path / "a", "tune", None)
    assert (plain.tune_trials, plain.tune_timeout) == (40, 0.0)
    tight = _design(tmp_path / "b", "tune", 10.0)  # 40 trials of 0.6 s do not fit twice in 10 s
    assert (tight.tune_trials, tight.tune_timeout) == (40, 0.0)
    roomy = _design(tmp_path / "c", "tune", 200.0)
    assert roomy.tune_trials == 160 and roomy.tune_timeout == pytest.approx(160.0)


def test_a_seed_bag_averages_more_seeds_when_the_run_has_time(tmp_path):
    assert _design(tmp_path / "a", "seed_bag", None).bags == 2
    assert _design(tmp_path / "b", "seed_bag", 100.0).bags == 8
    bagged = _design(tmp_path / "c", "seed_bag", 100.0)
    assert bagged.seed == 0  # the same folds: the bag's score is comparable with its parent's


def test_greedy_tunes_the_best_of_the_plans_best_families_before_narrowing(tmp_path):
    from crew.workflows.strategies import Greedy

    board = Blackboard(tmp_path / "bb.sqlite")
    for exp_id, model, score in (("lin", "linear", 0.80), ("lgb", "lightgbm", 0.78), ("xgb", "xgboost", 0.77),
                                 ("knn", "knn", 0.70)):
        board.add_experiment(Experiment(id=exp_id, insights=[model], code=exp_id, spec={"model": model},
                                        status="done", score=score))
    plan = {**PLAN, "schedule": [{"phase": "baseline", "insights": ["linear"]},
                                 {"phase": "improve", "insights": ["tune_best_three"]}]}
    steps = Greedy().next_steps(board, plan, 4, higher_is_better=True)
    assert [(s.parent, s.insight) for s in steps] == [("lin", "tune"), ("lgb", "tune"), ("xgb", "tune"),
                                                      ("lin", "regularize")]
    board.add_experiment(Experiment(id="lgb-t", parent="lgb", insights=["lightgbm", "tune"], code="t",
                                    spec={"model": "lightgbm"}, status="done", score=0.79))
    again = Greedy().next_steps(board, plan, 2, higher_is_better=True)
    assert ("lgb", "tune") not in [(s.parent, s.insight) for s in again]


def test_debugging_a_failed_plain_design_changes_the_family(tmp_path):
    """A tuned design that crashed goes back to its family's plain one; a plain one that crashed would crash
    again, so the debug step tries another family on the same data."""
    from crew.tools.catalogue import default_params

    def debug(folder, spec):
        board = Blackboard(folder / "bb.sqlite")
        board.add_experiment(Experiment(id="p", insights=["xgboost"], code="x", spec=spec, status="failed",
                                        error="ValueError: Input contains NaN"))
        modeler = Modeler(blackboard=board)
        step = {"phase": "debug", "parent": "p", "model": spec["model"], "insight": "debug"}
        return modeler.expert(modeler.context({"task": str(TASK_YAML), "data_report": REPORT, "plan": PLAN,
                                               "step": step}))

    plain = {"model": "xgboost", "params": default_params("xgboost", rows=455), "features": [], "folds": 5}
    changed = debug(tmp_path / "a", plain)
    assert changed.model == "linear" and changed.insight == "debug" and "try linear" in changed.rationale
    tuned = {**plain, "params": {**plain["params"], "max_depth": 9}, "tune_trials": 20}
    back = debug(tmp_path / "b", tuned)
    assert back.model == "xgboost" and back.params == plain["params"] and back.tune_trials == 0


def test_a_portfolio_step_swaps_in_the_familys_zero_shot_configuration(tmp_path):
    large = _design(tmp_path, "portfolio_2", None)
    assert large.params["num_leaves"] == 128 and large.params["learning_rate"] == 0.03
    assert large.params["n_estimators"] == 1000  # the round cap stays: early stopping chooses the rounds


def test_drafts_keep_leakage_suspects_and_dropping_them_is_a_step_of_its_own(tmp_path):
    plan = {"cv_folds": 5, "search_space": {"preprocessing": ["impute_median", "drop_leakage_suspects"]}}
    modeler = Modeler(blackboard=Blackboard(tmp_path / "bb.sqlite"))
    step = {"phase": "draft", "parent": None, "model": "lightgbm", "insight": "lightgbm"}
    draft = modeler.expert(modeler.context({"task": str(TASK_YAML), "data_report": REPORT, "plan": plan,
                                            "step": step}))
    assert "drop_leakage_suspects" not in draft.preprocessing  # a column the test set holds is known then
    assert applies("drop_leakage_suspects", "lightgbm", plan) and not applies("drop_leakage_suspects", "lightgbm", PLAN)
    assert "drop_leakage_suspects" in _design(tmp_path / "b", "drop_leakage_suspects", None).preprocessing
