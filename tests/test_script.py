"""The experiment script's functions, called as functions: the module's constants set per test, no subprocess."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crew.tools import script

REGRESSION = {**script.TASK, "target_type": "regression", "metric": "rmsle", "classes": [], "positive": None,
              "submission": "value", "nonnegative": True}


def test_labels_agree_whatever_type_the_csv_gave_them() -> None:
    assert list(script.canonical([1, 1.0, "1", True, np.int64(2), 2.5])) == ["1", "1", "1", "True", "2", "2.5"]


def test_classes_are_encoded_in_the_tasks_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(script, "TASK", {**script.TASK, "classes": ["no", "yes"]})
    assert list(script.encode_target(pd.Series(["yes", "no", "yes"]))) == [1, 0, 1]


@pytest.mark.parametrize(("preprocess", "width"), [
    ({"impute": True, "indicators": True, "scale": True, "one_hot": True, "native": ""}, 1 + 1 + 3),  # a, a missing,
    ({"impute": False, "indicators": False, "scale": False, "one_hot": False, "native": ""}, 1 + 1),  # 3 colours
])
def test_the_preprocessor_follows_the_spec(monkeypatch: pytest.MonkeyPatch, preprocess: dict, width: int) -> None:
    monkeypatch.setattr(script, "PREPROCESS", preprocess)
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0] * 4, "colour": ["red", "blue", "green"] * 4})
    out = script.preprocessor(["a"], ["colour"]).fit_transform(frame)
    assert out.shape == (12, width)
    if preprocess["scale"]:
        assert abs(out[:, 0].mean()) < 1e-9
    else:
        assert np.isnan(out[:, 0]).sum() == 4  # trees take the missing values as they are


def test_features_are_computed_on_train_and_test_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(script, "COLUMNS", {"numeric": ["a"], "categorical": ["c"], "datetime": ["when"],
                                            "text": ["note"], "drop": []})
    monkeypatch.setattr(script, "FEATURE_STEPS", [script.datetime_parts, script.frequency_encoding])
    X = pd.DataFrame({"a": [1.0, 2.0], "c": ["x", None], "when": ["2024-01-31", "2024-02-01"], "note": ["a b", ""]})
    X_test = pd.DataFrame({"a": [3.0], "c": ["x"], "when": ["bad"], "note": [None]})
    train, test, numeric, categorical = script.add_features(X, X_test)
    assert "when" not in train.columns and "note" not in train.columns
    assert train["when__month"].tolist() == [1.0, 2.0] and np.isnan(test["when__month"][0])
    assert train["c__freq"][0] == 1.0 and np.isnan(train["c__freq"][1])  # shares of the known values; missing stays

    assert train["note__words"].tolist() == [2.0, 0.0] and categorical == ["c"]
    assert train["c"].tolist() == ["x", "__missing__"]
    assert {"when__epoch_days", "c__freq", "note__chars"} <= set(numeric)


def test_folds_stay_stratified_when_a_class_is_rarer_than_the_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(script, "FOLDS", 3)
    assert type(script.splitter(np.array([0, 1] * 6))).__name__ == "StratifiedKFold"
    y = np.array([0] * 10 + [1, 1])
    folds = list(script.splitter(y).split(y, y))  # the two rare rows land in different folds, not by chance
    assert sorted(int(y[valid].sum()) for _, valid in folds) == [0, 1, 1]
    monkeypatch.setattr(script, "REPEATS", 2)
    assert type(script.splitter(np.array([0, 1] * 6))).__name__ == "RepeatedStratifiedKFold"
    monkeypatch.setattr(script, "TASK", REGRESSION)
    assert type(script.splitter(np.arange(12.0))).__name__ == "RepeatedKFold"


def test_a_log_target_round_trips_and_is_only_taken_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    y = np.array([0.0, 1.0, 10.0])
    assert script.target_back(script.target_forward(y)) is y  # off: untouched
    monkeypatch.setattr(script, "LOG_TARGET", True)
    assert script.target_back(script.target_forward(y)) == pytest.approx(y)


def test_cross_validation_predicts_every_row_once_per_repeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(script, "FOLDS", 3)
    monkeypatch.setattr(script, "REPEATS", 2)
    monkeypatch.setattr(script, "make_model", script.make_model__linear__classification)
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    y = (X["a"] > 0).to_numpy(dtype=int)
    oof, test_pred, parts, rounds = script.cross_validate(X, y, X.iloc[:5], ["a", "b"], [], {"C": 1.0})
    folds, train = script.fold_scores(y, parts, np.ones(2))
    assert oof.shape == (60, 2) and oof.sum(axis=1) == pytest.approx(1.0)  # two repeats averaged, not summed
    assert test_pred.shape == (5, 2) and len(folds) == 6 and min(folds) > 0.8 and np.mean(train) > 0.8
    assert rounds == []  # a linear model has no boosting rounds to choose


def test_submissions_are_valid_whatever_the_averaging_left(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = pd.Series([7, 8], name="id")
    raw = np.array([[0.2, 1 + 2e-16], [0.9, 0.1]])
    assert script.submission_frame(ids, raw)["y"].tolist() == ["1", "0"]  # the example task submits labels
    monkeypatch.setattr(script, "TASK", {**script.TASK, "submission": "proba"})
    assert script.submission_frame(ids, raw)["y"].max() <= 1.0
    monkeypatch.setattr(script, "TASK", REGRESSION)
    assert script.submission_frame(ids, np.array([-0.5, 2.0]))["y"].tolist() == [0.0, 2.0]  # rmsle: nonnegative


def test_stage_values_round_trip_through_the_safe_formats(tmp_path) -> None:
    value = (pd.DataFrame({"a": [1.0, 2.0]}), pd.Series([1, 2], name="y"), np.arange(3), ["a"], {"k": np.int64(3)})
    script.save_stage(value, str(tmp_path / "stage"))
    manifest = (tmp_path / "stage" / "manifest.json").read_text()
    with pytest.raises(KeyError):  # no hashes: only crew's promotion, which records them, makes a stage loadable
        script.load_stage(str(tmp_path / "stage"))
    assert "item0.parquet" in manifest
    with pytest.raises(TypeError):
        script.save_stage(object(), str(tmp_path / "other"))


def _task_frame(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                      "colour": rng.choice(["red", "green", "blue"], size=n)})
    X.loc[rng.random(n) < 0.2, "a"] = np.nan
    y = ((X["a"].fillna(0) + (X["colour"] == "red") + rng.normal(scale=0.5, size=n)) > 0.5).to_numpy(dtype=int)
    return X, y


@pytest.mark.parametrize("family", ["lightgbm", "xgboost", "hist_gradient_boosting", "catboost"])
def test_boosters_stop_early_on_held_out_rows_and_refit_with_the_rounds_kept(monkeypatch: pytest.MonkeyPatch,
                                                                              family: str) -> None:
    from crew.tools.catalogue import FAMILIES
    spec = FAMILIES[family]
    monkeypatch.setattr(script, "make_model", getattr(script, f"make_model__{family}__classification"))
    monkeypatch.setattr(script, "fit_model", getattr(script, f"fit__{family}"))
    monkeypatch.setattr(script, "EARLY_STOPPING", 10)
    monkeypatch.setattr(script, "ROUNDS_KEY", spec.rounds_key)
    monkeypatch.setattr(script, "PREPROCESS", {"impute": False, "indicators": False, "scale": False,
                                               "one_hot": False, "native": spec.native_categories})
    X, y = _task_frame(400)
    params = {**spec.params(rows=400), spec.rounds_key: 300, "learning_rate": 0.3}
    model, kept = script.fit_pipeline(X, y, ["a", "b"], ["colour"], params, seed=0)
    assert kept is not None and 1 <= kept < 300  # a high learning rate stops long before the cap
    assert script.predict_raw(model, X).shape == (400, 2)
    refit, none = script.fit_pipeline(X, y, ["a", "b"], ["colour"], params, seed=0, rounds=7, early=False)
    assert none is None and script.predict_raw(refit, X.iloc[:3]).sum(axis=1) == pytest.approx(1.0)
    assert script.refit_rounds([10, 20, 30]) == 22 and script.refit_rounds([]) is None


def test_native_categories_keep_the_levels_seen_in_fit() -> None:
    frame = pd.DataFrame({"num__a": [1.0, 2.0, 3.0], "cat__c": [0.0, 2.0, np.nan], "cat__wide": [0.0, 300.0, 1.0]})
    native = script.NativeCategories().fit(frame)
    out = native.transform(frame)
    assert list(out["cat__c"].cat.categories) == [0, 1, 2] and out["cat__c"].isna().tolist() == [False, False, True]
    assert out["cat__wide"].dtype == float  # too many levels to split on natively: stays a code
    assert script.NativeCategories(codes=True).fit(frame).transform(frame)["cat__c"].tolist() == [0, 2, -1]


def test_a_fold_missing_a_class_still_predicts_every_class_column(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(script, "TASK", {**script.TASK, "classes": ["a", "b", "c"], "target_type": "multiclass"})
    monkeypatch.setattr(script, "make_model", script.make_model__xgboost__classification)
    monkeypatch.setattr(script, "fit_model", script.fit__xgboost)
    X, _ = _task_frame(60)
    y = np.array([0, 2] * 30)  # class 1 absent: XGBoost alone would refuse labels that are not 0..k-1
    model, _ = script.fit_pipeline(X, y, ["a", "b"], ["colour"], {"n_estimators": 5}, seed=0)
    raw = script.predict_raw(model, X)
    assert raw.shape == (60, 3) and (raw[:, 1] == 0).all() and raw.sum(axis=1) == pytest.approx(1.0)


def test_the_decision_threshold_is_fitted_for_label_metrics_only(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.15).astype(int)
    p = np.clip(0.08 + 0.25 * y + rng.normal(scale=0.1, size=2000), 0.01, 0.99)  # positives never above 0.5
    raw = np.column_stack([1 - p, p])
    assert (script.decision(y, raw) == 1).all()  # accuracy: argmax is already the best guess
    monkeypatch.setattr(script, "TASK", {**script.TASK, "metric": "f1", "decides": True})
    monkeypatch.setattr(script, "score", lambda y, raw: float(
        __import__("sklearn.metrics").metrics.f1_score(y, raw.argmax(axis=1))))
    weights = script.decision(y, raw)
    assert weights[0] == 1 and weights[1] > 1  # the positive class needs less than 0.5 to be chosen
    assert script.score(y, script.decided(raw, weights)) > script.score(y, raw) + 0.3


def test_a_mae_task_fits_the_absolute_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(script, "TASK", {**REGRESSION, "metric": "mae", "nonnegative": False})
    assert script.make_model__lightgbm__regression({}).objective == "l1"
    assert script.make_model__xgboost__regression({}).objective == "reg:absoluteerror"
    assert script.make_model__hist_gradient_boosting__regression({}).loss == "absolute_error"
    assert script.make_model__catboost__regression({}).get_params()["loss_function"] == "MAE"
    monkeypatch.setattr(script, "TASK", {**REGRESSION, "metric": "rmse"})
    assert script.make_model__lightgbm__regression({}).objective == "regression"


def test_tuning_stops_a_bad_trial_after_a_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(script, "make_model", script.make_model__linear__classification)
    monkeypatch.setattr(script, "search_space", lambda trial: {"C": trial.suggest_float("C", 1e-6, 1e2, log=True)})
    monkeypatch.setattr(script, "PARAMS", {"C": 1.0})
    monkeypatch.setattr(script, "TUNE_TRIALS", 25)
    X, y = _task_frame(300)
    X = X[["b"]].assign(a=X["a"].fillna(0))
    import optuna
    studies, create = [], optuna.create_study
    monkeypatch.setattr(optuna, "create_study", lambda **kw: studies.append(create(**kw)) or studies[-1])
    params, trials = script.tune(X, y, ["a", "b"], [])
    assert trials == 25 and 1e-6 <= params["C"] <= 1e2
    states = [t.state for t in studies[0].trials]
    assert optuna.trial.TrialState.PRUNED in states and optuna.trial.TrialState.COMPLETE in states


def test_small_data_fits_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(script, "THREADS", 4)
    assert script.threads_for(150) == 1 and script.threads_for(50_000) == 4


def test_numbers_read_missing_markers_and_booleans_as_floats() -> None:
    out = script.numbers(pd.Series(["1", "?", "2.5", None, "n/a"], dtype=object))
    assert out.dtype == float and out.isna().tolist() == [False, True, False, True, True] and out[2] == 2.5
    assert script.numbers(pd.Series([True, None, False], dtype=object)).tolist()[::2] == [1.0, 0.0]


@pytest.mark.parametrize(("values", "month"), [
    (["2020-01-31", "2021-03-01"], [1, 3]),
    (["31/01/2020", "01/03/2021"], [1, 3]),  # day first: 31 cannot be a month
    (["Jan 5, 2020 10:30", "Mar 7, 2021 11:00"], [1, 3]),
    (["31.01.2020", "01.03.2021"], [1, 3]),
    (["2020-01-31T10:00:00Z", "2021-03-01T10:00:00+01:00"], [1, 3]),
    (["1/5/20", "3/31/21"], [1, 3]),
])
def test_dates_are_read_in_the_format_that_reads_them(values: list[str], month: list[int]) -> None:
    when, fmt = script.parse_dates(pd.Series(values + [None]))
    assert when.dt.month.tolist()[:2] == month and when[2:].isna().all(), fmt
    days = [f"2020-02-{d:02d}" for d in range(1, 29)]
    when, fmt = script.parse_dates(pd.Series([*days, "not a date"]))  # one stray value: missing, not "mixed"
    assert fmt == "ISO8601" and when.isna().tolist() == [False] * 28 + [True]


def test_loading_reads_numbers_with_markers_as_numbers(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    pd.DataFrame({"id": [1, 2, 3], "a": ["1.5", "?", "3"], "y": ["0", "1", "0"]}).to_csv(tmp_path / "train.csv",
                                                                                       index=False)
    pd.DataFrame({"id": [4], "a": ["-"]}).to_csv(tmp_path / "test.csv", index=False)
    monkeypatch.setenv("CREW_DATA", str(tmp_path))
    monkeypatch.setattr(script, "COLUMNS", {"numeric": ["a"], "categorical": [], "datetime": [], "text": [],
                                            "drop": []})
    X, _, X_test, _, _ = script.load_data()
    assert X["a"].dtype == float and X["a"].isna().tolist() == [False, True, False] and X_test["a"].isna().all()


def test_target_means_are_added_out_of_fold_for_the_columns_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(script, "PREPROCESS", {**script.PREPROCESS, "impute": False, "target_encode": ["city"]})
    rng = np.random.default_rng(0)
    city = rng.choice([f"c{i}" for i in range(60)], size=600)
    y = (pd.Series(city).str.endswith(("1", "3", "5")).to_numpy() | (rng.random(600) < 0.1)).astype(int)
    frame = pd.DataFrame({"a": rng.normal(size=600), "city": city})
    out = script.preprocessor(["a"], ["city"]).fit_transform(frame, y)
    assert out.shape == (600, 3)  # the number, the city's code, its target mean
    encoded = out[:, 2]
    assert np.corrcoef(encoded, y)[0, 1] > 0.5
    # cross-fitted: a city's rows do not all get the same value (each row's own target is left out of its mean)
    assert pd.Series(encoded).groupby(city).nunique().max() > 1


def test_log_loss_probabilities_are_calibrated_on_out_of_fold_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=3000)
    logits = rng.normal(size=(3000, 3)) + 1.0 * np.eye(3)[y]
    sharp = np.exp(4 * logits) / np.exp(4 * logits).sum(axis=1, keepdims=True)  # far too confident
    assert script.temperature(y, sharp) == 1.0  # the metric (accuracy) scores labels: nothing to calibrate
    from sklearn.metrics import log_loss
    monkeypatch.setattr(script, "TASK", {**script.TASK, "metric": "log_loss", "higher_is_better": False,
                                         "calibrates": True, "classes": ["a", "b", "c"]})
    monkeypatch.setattr(script, "score", lambda y, raw: log_loss(y, raw, labels=range(3)))
    t = script.temperature(y, sharp)
    assert t > 2
    fixed = script.calibrated(sharp, t)
    assert fixed.sum(axis=1) == pytest.approx(1.0) and (fixed.argmax(axis=1) == sharp.argmax(axis=1)).all()
    assert log_loss(y, fixed) < log_loss(y, sharp) - 0.2
    timid = np.exp(0.3 * logits) / np.exp(0.3 * logits).sum(axis=1, keepdims=True)
    assert script.temperature(y, timid) == 1.0  # never sharpened: the refit model is surer than the folds' already


def test_tuning_trials_fit_a_stratified_sample_of_a_large_table(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = script.cross_validate

    def spy(X, y, *args, **kwargs):
        seen.append(len(y))
        assert np.bincount(y).tolist() == [80, 40]  # the class shares of the whole table
        return real(X, y, *args, **kwargs)

    monkeypatch.setattr(script, "TUNE_ROWS", 120)
    monkeypatch.setattr(script, "TUNE_TRIALS", 2)
    monkeypatch.setattr(script, "cross_validate", spy)
    monkeypatch.setattr(script, "make_model", script.make_model__linear__classification)
    monkeypatch.setattr(script, "search_space", script.space__linear)
    monkeypatch.setattr(script, "PARAMS", {"C": 1.0})
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=600)})
    y = np.array([0, 0, 1] * 200)
    params, trials = script.tune(X, y, ["a"], [])
    assert trials == 2 and seen == [120, 120] and "C" in params


def test_nb_weights_scale_the_ngrams_that_tell_the_classes_apart() -> None:
    """NB-SVM's log-count ratios: a word only one class uses weighs more than one both use evenly; two classes
    give the plain ratio's size, three or more its mean size over one-against-the-rest."""
    import numpy as np
    from scipy import sparse

    from crew.tools.script import NBWeights

    X = sparse.csr_matrix(np.array([[3, 1, 0], [2, 1, 0], [0, 1, 2], [0, 1, 3]], dtype=float))
    weights = NBWeights().fit(X, np.array([0, 0, 1, 1])).weights_
    assert weights[0] > weights[1] and weights[2] > weights[1] and weights[1] < 0.3
    scaled = NBWeights().fit(X, [0, 0, 1, 1]).transform(X)
    assert sparse.issparse(scaled) and scaled.toarray() == pytest.approx(X.toarray() * weights, rel=1e-6)
    assert NBWeights().fit(X, np.array([0, 1, 2, 2])).weights_.shape == (3,)
    plain = NBWeights().fit(X, [0, 0, 1, 1]).as_scaler()
    assert plain.transform(X).toarray() == pytest.approx(scaled.toarray(), rel=1e-6)
