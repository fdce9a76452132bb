"""Measure the critic's cost priors: seconds per fit of each model family at several data sizes, in the sandbox.

    python bench/cost_priors.py [--out results.jsonl] [--fit-only results.jsonl]

Runs every family of the pipeline catalogue with 3-fold CV and one thread on
cars-mpg, fair-affairs (../shared/tasks) and synthetic tasks of 20,000 and
80,000 rows (written by ../shared/tasks/make_large_task.py), then fits
`seconds per fit = fixed + per_unit * (rows x columns) ** power` per family and
prints the table that `crew.tools.cost.PRIORS` holds. Takes about 10 minutes
on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.optimize import curve_fit

from crew import Task
from crew.roles.analyst import Analyst
from crew.sandbox import Launch, Limits, LocalExecutor
from crew.tools.catalogue import FAMILIES as MODELS
from crew.tools.pipelines import render, spec_from_report
from crew.tools.profile import profile_task

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "tasks"
FOLDS = 3


def measure(out: Path, work: Path) -> None:
    roots = [SHARED / "cars-mpg", SHARED / "fair-affairs"]
    for rows in (20_000, 80_000):
        target = work / f"large{rows}"
        subprocess.run([sys.executable, str(SHARED / "make_large_task.py"), str(target), "--rows", str(rows)], check=True)
        roots.append(target)
    executor = LocalExecutor(root=work / "runs")
    with out.open("a") as sink:
        for root in roots:
            task = Task.load(root / "task.yaml")
            report = Analyst().expert({"profile": profile_task(task)}).model_dump()
            rows = task.shapes["train"][0]
            for model in MODELS:
                if rows > 30_000 and model in ("svm", "knn"):
                    continue
                code = render(spec_from_report(model, report, folds=FOLDS), task)
                result = executor.run(Launch(code=code, data_dir=str(root), hide=[str(p) for p in task.hidden],
                                             limits=Limits(wall_time=300)))
                metrics_file = Path(result.workdir) / "metrics.json"
                metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
                record = {"task": task.name, "rows": rows, "model": model, "reason": result.reason,
                          "wall": result.wall_time, "peak": result.peak_memory, "timings": metrics.get("timings"),
                          "features": metrics.get("n_features")}
                print(json.dumps(record), file=sink, flush=True)
                print(task.name, model, result.reason, f"{result.wall_time:.1f}s", flush=True)


def fit(path: Path) -> None:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    print("family                  fixed      per_unit   power   (per fit, rows x columns)")
    for model in MODELS:
        points = [(r["rows"] * (FOLDS - 1) / FOLDS * (r["features"] or 1), r["timings"]["cross_validate"] / FOLDS)
                  for r in records if r["model"] == model and r["reason"] == "ok" and r["timings"]]
        if len(points) < 3:
            continue
        units, seconds = map(np.asarray, zip(*points, strict=True))
        if model == "svm":
            units = units * units / 8  # quadratic in rows: rows^2 x columns with 8 columns here

        def curve(u: np.ndarray, fixed: float, per_unit: float, power: float) -> np.ndarray:
            return np.log(fixed + per_unit * u**power)

        (fixed, per_unit, power), _ = curve_fit(curve, units, np.log(seconds), p0=(0.1, 1e-5, 1.0),
                                                bounds=([1e-4, 1e-12, 0.7], [5.0, 1.0, 1.1]), maxfev=20000)
        print(f"{model:22s} {fixed:8.3f} {per_unit:12.3g} {power:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("cost_priors.jsonl"))
    parser.add_argument("--fit-only", type=Path, default=None, help="fit an existing results file, measure nothing")
    args = parser.parse_args()
    if args.fit_only is None:
        with tempfile.TemporaryDirectory(prefix="crew-priors-") as work:
            measure(args.out, Path(work))
    fit(args.fit_only or args.out)


if __name__ == "__main__":
    main()
