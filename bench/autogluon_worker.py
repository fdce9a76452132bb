"""AutoGluon-Tabular's side of bench/compare.py: one task, one fit, one submission, in its own process.

    python bench/autogluon_worker.py SPEC.json

Standalone on purpose (pandas and autogluon.tabular only, no crew import), so
that it can run under an interpreter of its own: AutoGluon pins its own
versions of scikit-learn, numpy and the boosters, which need not match
crew's. The spec (written by compare.py) names train, test, target, id
column, problem type, AutoGluon's metric, the class labels as crew grades
them and where to write; never the answers.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def canonical(values):  # type: ignore[no-untyped-def]
    """Labels as strings that survive a csv round-trip (1, 1.0 and "1" agree), as crew grades them."""
    import numpy as np

    out = []
    for v in values:
        if isinstance(v, bool | np.bool_):
            out.append(str(bool(v)))
        elif isinstance(v, int | np.integer) or (isinstance(v, float) and np.isfinite(v) and float(v).is_integer()):
            out.append(str(int(v)))
        else:
            out.append(str(v))
    return out


def read(path: str):  # type: ignore[no-untyped-def]
    import pandas as pd

    return pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path, low_memory=False)


def main(spec_path: str) -> None:
    import numpy as np
    import pandas as pd
    from autogluon.tabular import TabularPredictor

    spec = json.loads(Path(spec_path).read_text())
    target, id_column, kind = spec["target"], spec["id_column"], spec["target_type"]
    train, test = read(spec["train"]), read(spec["test"])
    train = train[train[target].notna()].reset_index(drop=True)
    if spec.get("log_target"):  # rmsle, which AutoGluon has no scorer for: rmse on log1p(y), the usual way
        train[target] = np.log1p(np.clip(train[target].to_numpy(dtype=float), 0, None))
    if kind != "regression":
        train[target] = canonical(train[target].to_numpy())
    drop = [c for c in (id_column,) if c]
    features = [c for c in train.columns if c != target and c not in drop and c in test.columns]
    elapsed = time.time() - spec["launched"]
    time_limit = max(5.0, spec["budget_s"] - elapsed - spec["margin_s"])
    problem = {"regression": "regression", "binary": "binary", "multiclass": "multiclass"}[kind]
    extra = {"positive_class": spec["positive"]} if kind == "binary" and spec.get("positive") else {}
    predictor = TabularPredictor(label=target, problem_type=problem, eval_metric=spec["ag_metric"],
                                 path=spec["model_dir"], verbosity=1, **extra)
    predictor.fit(train[[*features, target]], time_limit=time_limit, presets=spec["presets"],
                  num_cpus=spec["n_jobs"])
    X_test = test[features]
    frame = pd.DataFrame({id_column: test[id_column].to_numpy()}) if id_column else pd.DataFrame()
    if kind == "regression":
        values = np.asarray(predictor.predict(X_test), dtype=float)
        values = np.expm1(values) if spec.get("log_target") else values
        frame[target] = np.clip(values, 0, None) if spec["nonnegative"] else values
    elif spec["submission_kind"] == "label":
        frame[target] = canonical(predictor.predict(X_test).to_numpy())
    else:
        proba = predictor.predict_proba(X_test)
        proba.columns = canonical(list(proba.columns))
        if kind == "binary":
            frame[target] = proba[spec["positive"]].to_numpy()
        else:
            for label in spec["classes"]:
                frame[label] = proba[label].to_numpy() if label in proba.columns else 0.0
    frame[spec["submission_columns"]].to_csv(spec["submission"], index=False)
    best = predictor.model_best
    Path(spec["result"]).write_text(json.dumps({
        "best_model": best, "time_limit": time_limit, "wall_s": time.time() - spec["launched"],
        "models": list(predictor.model_names()),
    }, default=str, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
