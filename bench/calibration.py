"""How well the critic's time estimates match reality: share within 2x after each run's first three experiments.

    python bench/calibration.py [--budget 2m] [--tasks a,b] [--runs-dir DIR] [--from-runs DIR ...]

Runs `crew solve` on every development task (../shared/tasks) and reads each
run's blackboard: for every experiment that ran to completion it compares
the critic's estimate (made before launch) with the sandbox's measured wall
time. The issue's bar: within 2x for at least 80% of experiments after the
first three of each run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from crew import Blackboard
from crew.tools.cost import calibration

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "tasks"


def report(run_dirs: list[Path]) -> dict[str, object]:
    rows, scored, hits = [], 0, 0
    for run in run_dirs:
        result = calibration(Blackboard(run / "blackboard.sqlite"))
        ratios = result["ratios"][3:]
        n_hits = sum(1 for r in ratios if 0.5 <= r <= 2.0)
        scored += len(ratios)
        hits += n_hits
        rows.append({"run": run.name, "experiments": result["experiments"], "scored": len(ratios),
                     "within_2x": n_hits, "share": result["share_within"],
                     "median_ratio": sorted(result["ratios"])[len(result["ratios"]) // 2] if result["ratios"] else None})
    return {"runs": rows, "scored": scored, "within_2x": hits, "share": hits / scored if scored else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default=None, help="wall time per run (default: each task's own)")
    parser.add_argument("--tasks", default="cars-mpg,fair-affairs,penguins-species,wine-cultivar")
    parser.add_argument("--runs-dir", type=Path, default=None, help="keep the runs here (default: a temp folder)")
    parser.add_argument("--from-runs", type=Path, nargs="*", default=None, help="only read existing run folders")
    args = parser.parse_args()
    if args.from_runs:
        runs = args.from_runs
    else:
        root = args.runs_dir or Path(tempfile.mkdtemp(prefix="crew-calibration-"))
        runs = []
        for name in args.tasks.split(","):
            out = root / name
            command = [sys.executable, "-m", "crew", "solve", str(SHARED / name / "task.yaml"), "--out", str(out),
                       "--quiet"] + (["--budget", args.budget] if args.budget else [])
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            runs.append(out)
    summary = report(runs)
    print("| run | experiments | scored (after 3) | within 2x | share | median actual/estimate |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in summary["runs"]:  # type: ignore[union-attr]
        share = "-" if row["share"] is None else f"{row['share']:.0%}"
        print(f"| {row['run']} | {row['experiments']} | {row['scored']} | {row['within_2x']} | {share} | "
              f"{row['median_ratio']} |")
    total = summary["share"]
    print(f"\nall runs: {summary['within_2x']} of {summary['scored']} within 2x"
          + ("" if total is None else f" = {total:.0%}"))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
