"""The kernel optimizer against the starting solution and the fastest hand-written CPU kernels, on prefix-sum.

    python bench/kernel.py [--budget 5m] [--repeats 3] [--work DIR] [--out bench/kernel.json]

Runs `crew solve examples/tasks/prefix-sum/task.yaml` (offline expert, the
task's budget or `--budget`) and prints its score log. Then it times, with
the task's own scorer and in this same session, the starting solution,
crew's solution, and the hand-written kernels of `bench/kernels/` (a
one-pass Numba loop and a two-pass parallel scan; the sandbox hides this
folder from the optimizer's candidates). Each is scored `--repeats` times,
round-robin so that every one sees the same machine, and summarised by the
median of the scorer's best-of-five milliseconds. The bars (issue 7): crew
at least 50x faster than the start and within 1.5x of the fastest
hand-written kernel.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASK = REPO / "examples" / "tasks" / "prefix-sum"
HAND = REPO / "bench" / "kernels"


def score(candidate: Path) -> dict:
    done = subprocess.run([sys.executable, str(TASK / "score.py"), str(candidate)], capture_output=True, text=True,
                          check=False)
    line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "{}"
    return json.loads(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", help="wall time for crew solve (default: the task's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, help="run folder (default runs/kernel-bench-<time>)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "kernel.json")
    args = parser.parse_args()
    work = args.work or REPO / "runs" / f"kernel-bench-{time.strftime('%Y%m%d-%H%M%S')}"
    command = [sys.executable, "-m", "crew", "solve", str(TASK / "task.yaml"), "--out", str(work), "--quiet"]
    if args.budget:
        command += ["--budget", args.budget]
    started = time.perf_counter()
    solved = subprocess.run(command, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    print(solved.stdout[solved.stdout.find("   at s"):] if "   at s" in solved.stdout else solved.stdout)
    if solved.returncode != 0:
        print(solved.stderr[-3000:], file=sys.stderr)
        return 1
    candidates = {"start": TASK / "solution.py", "crew": work / "solution.py",
                  **{path.stem: path for path in sorted(HAND.glob("*.py"))}}
    times: dict[str, list[float]] = {name: [] for name in candidates}
    valid: dict[str, bool] = dict.fromkeys(candidates, True)
    for _ in range(args.repeats):
        for name, path in candidates.items():
            result = score(path)
            if result.get("valid"):
                times[name].append(1000 * float(result["time_s"]))
            else:
                valid[name] = False
    ms = {name: statistics.median(values) if values and valid[name] else None for name, values in times.items()}
    hand = {name: value for name, value in ms.items() if name not in ("start", "crew") and value is not None}
    best_hand = min(hand, key=hand.__getitem__) if hand else None
    rows = []
    print("\n| kernel | median ms | speedup vs start | x fastest hand-written |\n| --- | ---: | ---: | ---: |")
    for name, value in ms.items():
        speedup = ms["start"] / value if value and ms["start"] else None
        ratio = value / hand[best_hand] if value and best_hand else None
        rows.append({"kernel": name, "ms": value, "runs": times[name], "valid": valid[name], "speedup": speedup,
                     "vs_hand": ratio})
        print(f"| {name} | {'invalid' if value is None else f'{value:.3f}'} | "
              f"{'-' if speedup is None else f'{speedup:.1f}x'} | {'-' if ratio is None else f'{ratio:.2f}'} |")
    crew_row = next(r for r in rows if r["kernel"] == "crew")
    bars = {"speedup_at_least_50x": bool(crew_row["speedup"] and crew_row["speedup"] >= 50),
            "within_1_5x_of_hand": bool(crew_row["vs_hand"] and crew_row["vs_hand"] <= 1.5)}
    print(f"\ncrew solve took {took:.0f}s; fastest hand-written: {best_hand}; bars: {bars}")
    args.out.write_text(json.dumps({"rows": rows, "bars": bars, "solve_seconds": took, "run_dir": str(work),
                                    "fastest_hand": best_hand}, indent=2), encoding="utf-8")
    return 0 if all(bars.values()) else 2


if __name__ == "__main__":
    raise SystemExit(main())
