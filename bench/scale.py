"""Experiments per minute on a local Ray instance with 1 and with 2 workers: does scaling out pay?

    python bench/scale.py [--task ../shared/tasks/fair-affairs] [--budget 120] [--cpus 2] [--seed 0]
                          [--out bench/scale.json]

The same task, seed and wall budget are solved twice, one after the other,
with `RayExecutor` on one local Ray instance of `--cpus` CPUs: first with
`workers=1`, then `workers=2` (the search keeps two experiments in flight,
each given half the cores). Throughput is the number of experiments that ran
in the sandbox (done or failed; cached and rejected ones cost nothing) per
minute of run wall time. The ratio 2-workers / 1-worker is the speed-up;
on a machine with fewer free cores than 2 x threads it stays near 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TASK = REPO.parent / "shared" / "tasks" / "fair-affairs"


def measure(task: Path, workers: int, budget: float, seed: int, work: Path) -> dict[str, float]:
    """One run on the (already started) Ray instance: experiments run, wall seconds, experiments per minute."""
    from crew import Blackboard
    from crew.sandbox import RayExecutor
    from crew.workflows.solve import solve

    out = work / f"workers-{workers}"
    start = time.monotonic()
    with RayExecutor(root=out / "experiments") as executor:
        solve(task, out=out, workers=workers, wall_time=budget, seed=seed, max_experiments=10_000, executor=executor)
    wall = time.monotonic() - start
    ran = [e for e in Blackboard(out / "blackboard.sqlite").experiments() if e.status in ("done", "failed")]
    return {"workers": workers, "experiments": len(ran), "wall_s": round(wall, 1),
            "per_minute": round(60 * len(ran) / wall, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", type=Path, default=DEFAULT_TASK)
    parser.add_argument("--budget", type=float, default=120.0, help="wall seconds per run")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "scale.json")
    args = parser.parse_args(argv)

    import ray

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    work = Path(tempfile.mkdtemp(prefix="crew-scale-"))
    try:
        rows = [measure(args.task, workers, args.budget, args.seed, work) for workers in (1, 2)]
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    ratio = rows[1]["per_minute"] / rows[0]["per_minute"] if rows[0]["per_minute"] else float("nan")
    print(f"task {args.task.name}, budget {args.budget:g}s, local Ray with {args.cpus} CPUs")
    print("| workers | experiments run | wall (s) | experiments / minute |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['workers']} | {row['experiments']} | {row['wall_s']} | {row['per_minute']} |")
    print(f"ratio (2 workers / 1 worker): {ratio:.2f}")
    args.out.write_text(json.dumps({"task": args.task.name, "budget_s": args.budget, "cpus": args.cpus,
                                    "runs": rows, "ratio": ratio}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
