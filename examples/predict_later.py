"""Use what a run kept, later: its final model predicts rows that did not exist when it ran.

    crew solve examples/tasks/breast-cancer/task.yaml --out runs/bc
    python examples/predict_later.py runs/bc [TABLE]

`crew.load` reads the run's `predictor/` (files checked against the SHA-256
the run recorded, loaded without running code) and gives one object with
`predict`, `predict_proba`, `classes_`, `feature_names_in_`, `check` and
`describe`. The same model answers `crew predict RUN_DIR TABLE` on the
command line. TABLE defaults to the example task's test file.
"""

import argparse
from pathlib import Path

import pandas as pd

import crew

EXAMPLE_TEST = Path(__file__).parent / "tasks" / "breast-cancer" / "data" / "test.csv"


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("table", type=Path, nargs="?", default=EXAMPLE_TEST)
    args = parser.parse_args(argv)

    model = crew.load(args.run_dir)
    print(model.describe())
    rows = pd.read_csv(args.table)
    problems, notes = model.check(rows)  # what `crew predict` refuses (problems) or mentions (notes)
    for line in problems + notes:
        print(line)
    if problems:
        raise SystemExit(2)
    out = rows[[c for c in rows.columns if c not in model.feature_names_in_]].copy()
    out["prediction"] = model.predict(rows)
    if model.classes_:
        for label, column in zip(model.classes_, model.predict_proba(rows).T, strict=True):
            out[f"p({label})"] = column.round(4)
    print(out.head())
    return out


if __name__ == "__main__":
    main()
