"""The planner's expert policy: stages, a baseline first, and plans that follow the data and its size."""

from __future__ import annotations

from crew.roles.planner import STAGES, Planner


def _context(rows, target_type="binary", **report):
    base = {"numeric_columns": ["a", "b"], "categorical_columns": [], "datetime_columns": [], "text_columns": [],
            "drop_columns": [], "leakage_suspects": []}
    return {"task": {"rows": rows, "target_type": target_type}, "data_report": {**base, **report}}


def test_small_classification_plan():
    plan = Planner().expert(_context(300))
    assert set(plan.search_space) == set(STAGES)
    assert [s.phase for s in plan.schedule] == ["baseline", "draft", "improve", "ensemble"]
    assert plan.schedule[0].insights == ["linear"] and plan.cv_folds == 10
    assert sum(s.share for s in plan.schedule) <= 1.0
    assert plan.search_space["evaluation"] == ["stratified_kfold_10_x3"] and plan.cv_repeats == 3
    assert "missing_indicators" not in plan.search_space["preprocessing"]
    assert "missing_indicators" in Planner().expert(_context(300, missing_columns=["a"])).search_space["preprocessing"]


def test_plan_follows_the_data_report():
    plan = Planner().expert(_context(5_000, "regression", categorical_columns=["c"], datetime_columns=["d"],
                                     text_columns=["t"], leakage_suspects=["l"], drop_columns=["id"]))
    assert {"datetime_parts", "text_tfidf", "frequency_encoding"} <= set(plan.search_space["feature_engineering"])
    assert {"drop_leakage_suspects", "drop_id_and_constant_columns", "one_hot_low_cardinality"} <= set(
        plan.search_space["preprocessing"])
    assert plan.schedule[0].insights == ["linear"] and plan.search_space["evaluation"] == ["kfold_5_x2"]


def test_large_data_skips_forests_and_starts_with_boosting():
    plan = Planner().expert(_context(300_000))
    assert "random_forest" not in plan.search_space["model"] and (plan.cv_folds, plan.cv_repeats) == (3, 1)
    assert plan.schedule[0].insights == ["lightgbm"]


def test_nb_svm_weights_are_offered_for_text_with_a_binary_target_only():
    features = {t: Planner().expert(_context(5_000, t, text_columns=["t"])).search_space["feature_engineering"]
                for t in ("binary", "multiclass", "regression")}
    assert "nb_weights" in features["binary"] and "text_ngrams" in features["binary"]
    assert "nb_weights" not in features["multiclass"] and "nb_weights" not in features["regression"]
    assert "nb_weights" not in Planner().expert(_context(5_000)).search_space["feature_engineering"]
