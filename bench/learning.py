"""The learning check: does the offline expert's CNN learn shapes, and how much faster is it on a GPU?

Writes the generated shape task (`bench/shape_task.py`: the label is the
shape drawn, colour carries no signal), runs `crew solve` on it under its
budget, grades the submission and records, per experiment, the held-out
score, epochs, seconds per epoch, device and wall time; with a GPU, also
`nvidia-smi`'s report. Run it once on a CPU machine and once on a GPU
machine with the same arguments and compare the two JSON files: the issue's
bar is 95% accuracy on the CPU within the budget, and the GPU run at least
5x faster in wall time at the same accuracy.

    python bench/learning.py --out bench/learning-cpu.json
    python bench/learning.py --out bench/learning-gpu.json      # on a GPU machine
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _shape_task() -> Any:
    spec = importlib.util.spec_from_file_location("shape_task", HERE / "shape_task.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(work: Path, *, train: int, test: int, size: int, budget: str, seed: int) -> dict[str, Any]:
    from crew import Blackboard, Task, grade

    task_path = _shape_task().write(work / "task", train=train, test=test, size=size, seed=seed)
    out = work / "run"
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "crew", "solve", str(task_path), "--budget", budget,
                           "--out", str(out), "--seed", str(seed)], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"crew solve failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report = grade(Task.load(task_path), out / "submission.csv", work / "task" / "grading" / "answers.csv")
    board = Blackboard(out / "blackboard.sqlite")
    experiments = [{"id": e.id, "rung": e.insights[0] if e.insights else "", "status": e.status,
                    "holdout": e.score, "wall_s": e.wall_time, "estimate_s": e.estimate.get("seconds"),
                    "device": e.metrics.get("device"), "epochs": e.metrics.get("epochs_run"),
                    "epoch_s": e.metrics.get("epoch_seconds"), "peak_gpu_memory": e.metrics.get("peak_gpu_memory"),
                    "image_size": e.spec.get("image_size")} for e in board.experiments()]
    final = json.loads((out / "final.json").read_text(encoding="utf-8"))
    smi = shutil.which("nvidia-smi")
    return {"task": {"train": train, "test": test, "size": size, "seed": seed}, "budget": budget,
            "wall_s": round(wall, 1), "test_accuracy": report.score, "valid": report.valid_submission,
            "kept": final.get("insights"), "experiments": experiments,
            "nvidia_smi": subprocess.run([smi], capture_output=True, text=True).stdout if smi else None}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--budget", default="5m")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(args.keep, train=args.train, test=args.test, size=args.size, budget=args.budget, seed=args.seed)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(Path(tmp), train=args.train, test=args.test, size=args.size, budget=args.budget,
                         seed=args.seed)
    print(f"test accuracy {result['test_accuracy']:.4f} in {result['wall_s']} s (kept {result['kept']})")
    for e in result["experiments"]:
        print(f"  {e['rung']:10s} {e['status']:8s} holdout {e['holdout']} in {e['wall_s']} s on {e['device']} "
              f"({e['epochs']} epochs of {e['epoch_s']} s)")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
