"""Greedy (AIDE) against MCTS (SELA) search on the development tasks, same budget, several seeds.

    python bench/strategies.py [--budget 1m] [--seeds 0,1] [--tasks a,b] [--out bench/strategies.json] [--cores 2]

Each task of `../shared/tasks/` (and the example task) is solved by
`crew solve --strategy S --seed K` for every strategy and seed, one run at a
time, pinned to the same `--cores` CPUs; each submission is graded with
`crew.grade` against the task's answers. The table gives, per task, each
strategy's mean score over the seeds and its normalized score against the
dummy baseline, NS = (score - dummy) / (best of the two - dummy), so the better
strategy scores 1 on each task. The summary line names the strategy with the
higher mean NS and how many tasks each wins; that is the evidence for
`crew solve`'s default strategy.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

_spec = importlib.util.spec_from_file_location("_compare", Path(__file__).with_name("compare.py"))
compare = importlib.util.module_from_spec(_spec)
sys.modules["_compare"] = compare
_spec.loader.exec_module(compare)

STRATEGY_NAMES = ("greedy", "mcts")


def strategy_rows(scores: dict[str, dict[str, list[float | None]]], dummy: dict[str, float],
                  higher: dict[str, bool]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per task: mean score per strategy (an invalid run counts as the dummy), NS against the better mean."""
    rows = []
    for task, by_strategy in scores.items():
        means = {s: float(np.mean([dummy[task] if v is None else v for v in vals])) for s, vals in by_strategy.items()}
        best = max(means.values()) if higher[task] else min(means.values())
        span = best - dummy[task]
        ns = {s: (None if abs(span) < 1e-12 else (m - dummy[task]) / span) for s, m in means.items()}
        invalid = {s: sum(v is None for v in vals) for s, vals in by_strategy.items()}
        rows.append({"task": task, "means": means, "ns": ns, "invalid": invalid, "runs": by_strategy})
    summary: dict[str, Any] = {}
    for s in STRATEGY_NAMES:
        vals = [r["ns"][s] for r in rows if r["ns"].get(s) is not None]
        summary[s] = {"mean_ns": float(np.mean(vals)) if vals else None,
                      "wins": sum(1 for r in rows if r["ns"].get(s) == 1.0),
                      "invalid": sum(r["invalid"].get(s, 0) for r in rows)}
    defined = {s: v["mean_ns"] for s, v in summary.items() if v["mean_ns"] is not None}
    summary["better"] = max(defined, key=defined.get) if defined else None
    return rows, summary


def render(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = ["| task | greedy mean | mcts mean | greedy NS | mcts NS |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        ns = ["n/a" if r["ns"][s] is None else f"{r['ns'][s]:.3f}" for s in STRATEGY_NAMES]
        lines.append(f"| {r['task']} | {r['means']['greedy']:.4f} | {r['means']['mcts']:.4f} | {ns[0]} | {ns[1]} |")
    lines.append("")
    for s in STRATEGY_NAMES:
        m = summary[s]["mean_ns"]
        lines.append(f"- {s}: mean NS {'n/a' if m is None else f'{m:.3f}'}, best on {summary[s]['wins']} task(s), "
                     f"{summary[s]['invalid']} invalid run(s)")
    lines.append(f"- better: {summary['better']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from crew import Task, grade
    from crew._units import parse_duration

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="1m", help="wall budget of every run (default 1m)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    parser.add_argument("--tasks", help="comma-separated task names (default: the development tasks)")
    parser.add_argument("--out", type=Path, default=compare.REPO / "bench" / "strategies.json")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--work", type=Path, help="folder for the run folders (default runs/strategies-<time>)")
    args = parser.parse_args(argv)

    budget = parse_duration(args.budget)
    seeds = [int(s) for s in args.seeds.split(",")]
    found = compare.discover_tasks()
    names = args.tasks.split(",") if args.tasks else [n for n in found if n != compare.EXAMPLE_TASK.name]
    unknown = [n for n in names if n not in found]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; known: {sorted(found)}")
    work = args.work or compare.REPO / "runs" / f"strategies-{time.strftime('%Y%m%d-%H%M%S')}"
    cpus = compare._cpus(args.cores)

    scores: dict[str, dict[str, list[float | None]]] = {}
    dummy: dict[str, float] = {}
    higher: dict[str, bool] = {}
    for name in names:
        task_dir, answers = found[name]
        task = Task.load(task_dir / "task.yaml")
        (work / name).mkdir(parents=True, exist_ok=True)
        dummy[name] = compare.dummy_score(task, answers, work / name)
        higher[name] = task.metric_info.higher_is_better
        scores[name] = {s: [] for s in STRATEGY_NAMES}
        for seed in seeds:
            for strategy in STRATEGY_NAMES:
                out = work / name / f"{strategy}-{seed}"
                wall, code, run_dir = compare.run_crew(task_dir, out, budget, seed, cpus, ("--strategy", strategy))
                sub = run_dir / task.output_name
                report = grade(task, sub, answers) if sub.is_file() else None
                score = None if report is None or report.error else report.score
                scores[name][strategy].append(score)
                compare._log(f"{name} {strategy} seed {seed}: {score} ({wall:.0f}s, exit {code})")
    rows, summary = strategy_rows(scores, dummy, higher)
    text = render(rows, summary)
    print(text)
    args.out.write_text(json.dumps({"budget_s": budget, "seeds": seeds, "rows": rows, "summary": summary,
                                    "dummy": dummy}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
