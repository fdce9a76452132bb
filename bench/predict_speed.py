"""How fast a run's kept model predicts: `crew.load(run).predict_raw` on many rows against the models' own predict.

    python bench/predict_speed.py [RUN_DIR] [--rows 100000] [--repeats 3] [--out FILE]

Without RUN_DIR it first solves the example task for 60 s (offline) into
`runs/predict-speed-<time>/`. The run's task comes from its `run.json` (a
relative path there is relative to where `crew solve` ran). The test file's rows are repeated to `--rows`.
The baseline is what the kept model cannot avoid: each member's estimator
(`predict_proba` or `predict`) on inputs already made, summed over the
members. The ratio says what crew's wrapping costs on top: reading the
columns, the feature steps, the preprocessing, the blend or stack and the
decision. Each time is the best of `--repeats`. Prints one JSON object; `--out`
writes it too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_TASK = REPO / "examples" / "tasks" / "breast-cancer"


def _best(repeats: int, call) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, nargs="?")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    import crew
    from crew import Task

    run_dir = args.run_dir
    if run_dir is None:
        from crew.workflows.solve import solve

        run_dir = REPO / "runs" / f"predict-speed-{time.strftime('%Y%m%d-%H%M%S')}"
        solve(EXAMPLE_TASK / "task.yaml", out=run_dir, wall_time=60)
    model = crew.load(run_dir)
    task = Task.load(json.loads((run_dir / "run.json").read_text())["task"])  # the run's task, as it was given
    assert task.data is not None
    test = pd.read_csv(task.path(task.data.test))
    frame = pd.concat([test] * (args.rows // len(test) + 1), ignore_index=True).head(args.rows)

    total = _best(args.repeats, lambda: model.predict_raw(frame))

    baseline = 0.0
    for member in model.members.values():
        for estimator, Z, _ in member.inputs(frame):
            call = estimator.predict_proba if hasattr(estimator, "predict_proba") else estimator.predict
            baseline += _best(args.repeats, lambda call=call, Z=Z: call(Z))
    result = {"run": str(run_dir), "kind": model.manifest["kind"], "members": len(model.members), "rows": len(frame),
              "predictor_seconds": round(total, 4), "models_seconds": round(baseline, 4),
              "ratio": round(total / baseline, 2) if baseline else None}
    print(json.dumps(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
