"""crew as a scikit-learn estimator: a solve inside a Pipeline, its labels y's own, its model kept in memory.

    python examples/sklearn_estimator.py [--budget 25s] [--run-dir FOLDER]

`crew.CrewClassifier` (and `crew.CrewRegressor`) fit by writing X and y as
a task and solving it under `time_budget`; `predict`, `predict_proba` and
`score` use the run's final model. Every fit is a whole solve, so in
`cross_val_score` or `GridSearchCV` size the budget to the number of fits.
With `--run-dir` the run is kept there (`run_dir_`) for `crew report`.
"""

import argparse

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import crew


def main(argv: list[str] | None = None) -> Pipeline:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="25s", help="the solve's time budget (default 25s)")
    parser.add_argument("--run-dir", help="keep the fit's run under this folder")
    args = parser.parse_args(argv)

    X, y = load_breast_cancer(return_X_y=True)
    labels = np.where(y == 1, "benign", "malignant")
    model = make_pipeline(StandardScaler(), crew.CrewClassifier(time_budget=args.budget, run_dir=args.run_dir))
    model.fit(X[:400], labels[:400])
    fitted = model[-1]
    print(f"classes {list(fitted.classes_)}; held-out accuracy {model.score(X[400:], labels[400:]):.3f}")
    print(fitted.predictor_.describe())
    if fitted.run_dir_:
        print(f"the run is in {fitted.run_dir_}")
    return model


if __name__ == "__main__":
    main()
