"""crew as a scikit-learn estimator: fit is a solve, predict uses the kept model, and it works inside Pipeline and
cross_val_score."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import crew

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(sys.platform != "linux", reason="the sandbox's limits are Linux mechanisms")]


def test_a_classifier_in_a_pipeline_keeps_the_labels_of_y(tmp_path) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    labels = np.where(y == 1, "benign", "malignant")
    model = make_pipeline(StandardScaler(), crew.CrewClassifier(time_budget="25s", workers=2,
                                                                run_dir=str(tmp_path / "fit")))
    model.fit(X[:400], labels[:400])
    fitted = model[-1]
    assert list(fitted.classes_) == ["benign", "malignant"] and fitted.n_features_in_ == 30
    assert (tmp_path / "fit" / "run" / "predictor" / "predictor.json").is_file()
    predicted = model.predict(X[400:])
    assert set(predicted) <= {"benign", "malignant"} and model.score(X[400:], labels[400:]) > 0.9
    proba = model.predict_proba(X[400:])
    assert proba.shape == (len(X) - 400, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert (np.asarray(fitted.classes_)[proba.argmax(axis=1)] == predicted).mean() > 0.95
    assert crew.CrewClassifier().get_params()["time_budget"] == "5m"  # the constructor only stores parameters


def test_a_regressor_in_cross_val_score(tmp_path) -> None:
    X, y = load_diabetes(return_X_y=True)
    scores = cross_val_score(crew.CrewRegressor(time_budget="30s", workers=2), X[:300], y[:300], cv=2, scoring="r2")
    assert scores.shape == (2,) and (scores > 0.2).all(), scores
    with pytest.raises(AttributeError):
        crew.NoSuchEstimator  # noqa: B018
