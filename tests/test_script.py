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
    ({"impute": True, "indicators": True, "scale": True, "one_hot": True}, 1 + 1 + 3),  # a, a missing, 3 colours
    ({"impute": False, "indicators": False, "scale": False, "one_hot": False}, 1 + 1),  # a, colour as a code
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


def test_folds_are_stratified_only_when_every_class_fills_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(script, "FOLDS", 3)
    assert type(script.splitter(np.array([0, 1] * 6))).__name__ == "StratifiedKFold"
    assert type(script.splitter(np.array([0] * 10 + [1, 1]))).__name__ == "KFold"
    monkeypatch.setattr(script, "REPEATS", 2)
    assert type(script.splitter(np.array([0, 1] * 6))).__name__ == "RepeatedStratifiedKFold"


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
    oof, test_pred, folds, train = script.cross_validate(X, y, X.iloc[:5], ["a", "b"], [], {"C": 1.0})
    assert oof.shape == (60, 2) and oof.sum(axis=1) == pytest.approx(1.0)  # two repeats averaged, not summed
    assert test_pred.shape == (5, 2) and len(folds) == 6 and min(folds) > 0.8 and np.mean(train) > 0.8


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
