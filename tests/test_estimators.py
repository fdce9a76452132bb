"""crew as a scikit-learn estimator: fit is a solve, predict uses the kept model, and it works inside Pipeline and
cross_val_score."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import cross_val_score

import crew

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(sys.platform != "linux", reason="the sandbox's limits are Linux mechanisms")]


def test_a_classifier_in_a_pipeline_keeps_the_labels_of_y(tmp_path) -> None:
    """examples/sklearn_estimator.py: a solve inside a Pipeline, with string labels."""
    import runpy

    example = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "sklearn_estimator.py"))
    model = example["main"](["--budget", "25s", "--run-dir", str(tmp_path / "fit")])
    X, y = load_breast_cancer(return_X_y=True)
    labels = np.where(y == 1, "benign", "malignant")
    fitted = model[-1]
    assert list(fitted.classes_) == ["benign", "malignant"] and fitted.n_features_in_ == 30
    assert Path(fitted.run_dir_).parent.parent == tmp_path / "fit"  # each fit keeps its own folder under run_dir
    assert (Path(fitted.run_dir_) / "predictor" / "predictor.json").is_file()
    predicted = model.predict(X[400:])
    assert set(predicted) <= {"benign", "malignant"} and model.score(X[400:], labels[400:]) > 0.9
    proba = model.predict_proba(X[400:])
    assert proba.shape == (len(X) - 400, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert (np.asarray(fitted.classes_)[proba.argmax(axis=1)] == predicted).mean() > 0.95
    assert crew.CrewClassifier().get_params()["time_budget"] == "5m"  # the constructor only stores parameters


def test_a_regressor_in_cross_val_score(tmp_path, monkeypatch) -> None:
    X, y = load_diabetes(return_X_y=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    scores = cross_val_score(crew.CrewRegressor(time_budget="15s", workers=2), X[:300], y[:300], cv=2, scoring="r2")
    assert scores.shape == (2,) and (scores > 0.2).all(), scores
    assert not list(tmp_path.glob("crew-fit-*"))  # without run_dir, a fit leaves nothing on disk
    with pytest.raises(AttributeError):
        crew.NoSuchEstimator  # noqa: B018


def test_the_classifier_passes_every_check_of_scikit_learns_check_estimator() -> None:
    """All of `check_estimator` (about 50 checks, 40 of them fitting), each fit two experiments with room to spare
    (checks compare two fits), through the bench script that records them; the regressor's run is
    `python bench/check_estimators.py`."""
    import runpy

    run_checks = runpy.run_path(str(Path(__file__).resolve().parents[1] / "bench" / "check_estimators.py"))["run_checks"]
    records = run_checks(crew.CrewClassifier(time_budget="30s", max_experiments=2), echo=False)
    failed = [f"{r['check']}: {r['error']}" for r in records if r["status"] == "failed"]
    assert not failed, failed
    assert {r["check"] for r in records if r["status"] == "skipped"} <= {"check_array_api_input"}
    assert sum(r["status"] == "passed" for r in records) >= 45


def test_the_regressor_passes_scikit_learns_regressor_checks() -> None:
    """The checks `check_estimator` adds for a regressor, and those its fit and predict answer differently from
    the classifier's (one sample, a column-vector y, no y)."""
    from sklearn.utils import estimator_checks as checks

    estimator = crew.CrewRegressor(time_budget="30s", max_experiments=2)
    for check in (checks.check_regressors_train, checks.check_regressor_data_not_an_array, checks.check_regressors_int,
                  checks.check_fit2d_1sample, checks.check_supervised_y_2d, checks.check_requires_y_none,
                  checks.check_supervised_y_no_nan, checks.check_estimators_unfitted):
        check("CrewRegressor", estimator)
