"""Same seed, same run: a fingerprint of seeded offline solves, to compare across a refactoring.

    python bench/determinism.py --out before.json [--tasks breast-cancer,wine-cultivar] [--experiments 8]
    python bench/determinism.py --out after.json --compare before.json

Each task is solved offline with `max_experiments` experiments, seed 0 and a
wall time far above what it needs (so the budget never cuts the search at a
load-dependent moment), one worker. The fingerprint keeps, per task, every
experiment's insights, status and score (rounded to 10 significant digits)
and the SHA-256 of the submission. `--compare` prints every difference and
exits 1 when there is one: a change meant to keep behaviour must keep this.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from crew import Blackboard
from crew.workflows.solve import solve

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"breast-cancer": ROOT / "examples" / "tasks" / "breast-cancer" / "task.yaml"}
SHARED = ROOT.parent / "shared" / "tasks"


def task_path(name: str) -> Path:
    return TASKS.get(name) or SHARED / name / "task.yaml"


def fingerprint(name: str, experiments: int, seed: int) -> dict[str, Any]:
    """One seeded solve of the task, reduced to what must not change."""
    with tempfile.TemporaryDirectory() as tmp:
        result = solve(task_path(name), out=Path(tmp) / "run", seed=seed, max_experiments=experiments,
                       wall_time=3600, workers=1)
        board = Blackboard(Path(result["run_dir"]) / "blackboard.sqlite")
        experiments = board.experiments()
        index = {e.id: i for i, e in enumerate(experiments)}  # ids are random: parents by position
        rows = [{"parent": index.get(e.parent or ""), "insights": e.insights, "status": e.status,
                 "score": None if e.score is None else float(f"{e.score:.10g}")} for e in experiments]
        final = result.get("final") or {}
        submission = Path(result["submission"])
        digest = hashlib.sha256(submission.read_bytes()).hexdigest() if submission.is_file() else None
        return {"experiments": rows, "submission_sha256": digest,
                "final": {"kind": final.get("kind"), "experiments": [index.get(i) for i in final.get("experiments", [])]}}


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = []
    for name in sorted(set(before) | set(after)):
        if name not in before or name not in after:
            out.append(f"{name}: only in {'after' if name in after else 'before'}")
            continue
        old, new = before[name], after[name]
        for i, (a, b) in enumerate(zip(old["experiments"], new["experiments"], strict=False)):
            if a != b:
                out.append(f"{name}: experiment {i}: {a} -> {b}")
        if len(old["experiments"]) != len(new["experiments"]):
            out.append(f"{name}: {len(old['experiments'])} experiments -> {len(new['experiments'])}")
        if old.get("final") != new.get("final"):
            out.append(f"{name}: final selection {old.get('final')} -> {new.get('final')}")
        if old["submission_sha256"] != new["submission_sha256"]:
            out.append(f"{name}: the submission differs")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="breast-cancer,wine-cultivar,doctor-visits")
    parser.add_argument("--experiments", type=int, default=14)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--compare")
    args = parser.parse_args(argv)
    prints = {name: fingerprint(name, args.experiments, args.seed) for name in args.tasks.split(",")}
    Path(args.out).write_text(json.dumps(prints, indent=1), encoding="utf-8")
    for name, each in prints.items():
        scored = [e["score"] for e in each["experiments"] if e["score"] is not None]
        print(f"{name}: {len(each['experiments'])} experiments, {len(scored)} scored, "
              f"submission {str(each['submission_sha256'])[:12]}")
    if args.compare:
        found = differences(json.loads(Path(args.compare).read_text(encoding="utf-8")), prints)
        print("\n".join(found) if found else f"identical to {args.compare}")
        return 1 if found else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
