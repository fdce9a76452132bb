"""`bench`: every task of a suite solved K times, graded with its answers, summarised as agents are judged.

What users compare agents on: MLE-bench (valid submissions, above-median
and medal rates, pass@k with the unbiased estimator) and SELA's tabular
suites (a normalized score against a baseline). Each run is a `crew solve`
in its own process with a fresh seed, so a crash, an out-of-memory kill or a
hang costs one run, which is then counted invalid rather than dropped. Every
graded run is appended to `results.jsonl` at once; a bench started again on
the same folder skips what is recorded and resumes (`solve --resume`) a run
whose folder exists unrecorded, so a SIGKILL loses at most the time since.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from crew import CrewError, Task, grade, oriented
from crew.sandbox import check_executor, require_ray
from crew.tools.submission import constant_submission, prior_raw

__all__ = ["RunRecord", "SuiteTask", "bench", "discover", "dummy_raw", "dummy_score", "normalized_score", "pass_at_k",
           "read_baseline", "render", "summarize"]

_SLACK = 0.25  # a run's hard limit: its budget + 25% + a minute, then it is killed and counted a timeout
_PR_SET_PDEATHSIG = 1


class SuiteTask(BaseModel):
    """A task of the suite and where its answers are; the answers path never reaches the solver."""

    name: str
    task: Path
    answers: Path
    loaded: Task  # read and checked once, by discover: loading reads the data files

    @property
    def budget(self) -> float:
        return float(self.loaded.budget.wall_time)


RunStatus = Literal["ok", "crashed", "timeout"]


class RunRecord(BaseModel):
    """One run of one task, graded; `status` says how the solver ended, `valid` whether its submission counts."""

    task: str
    run: int
    seed: int
    status: RunStatus
    valid: bool
    score: float | None = None
    above_median: bool | None = None
    medal: Literal["gold", "silver", "bronze"] | None = None
    wall_s: float
    budget_s: float
    run_dir: str
    error: str | None = None


# -- the estimators -------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k runs drawn from n passes) when c of the n passed: 1 - C(n-c, k) / C(n, k).

    The unbiased estimator of Chen et al. (2021) that MLE-bench reports;
    better than the naive 1 - (1 - c/n)^k, which is biased low for small n.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def normalized_score(score: float | None, baseline: float | None, dummy: float) -> float | None:
    """NS = (score - dummy) / (baseline - dummy): 0 is the dummy, 1 the baseline; None where undefined.

    Direction-free (for lower-is-better both differences are negative). An
    invalid submission (None) counts as the dummy; a missing baseline, or one
    equal to the dummy, leaves NS undefined.
    """
    if baseline is None or math.isclose(baseline, dummy, rel_tol=1e-9, abs_tol=1e-12):
        return None
    return ((dummy if score is None else score) - dummy) / (baseline - dummy)


def dummy_raw(task: Task, y: np.ndarray, n_test: int) -> np.ndarray:
    """The dummy's raw predictions: the constant model's (`crew.tools.submission.prior_raw`)."""
    return prior_raw(task, y, n_test)


def dummy_score(task: Task, answers: str | Path, workdir: str | Path) -> float:
    """The graded score of the dummy: class priors (so the majority class for labels), the train mean otherwise."""
    frame = constant_submission(task)
    path = Path(workdir) / f"dummy-{task.name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    report = grade(task, path, answers)
    if report.score is None:
        raise CrewError(f"{task.name}: the dummy submission did not grade ({report.error}); fix: check the task's "
                        "answers file against its test data")
    return float(report.score)


def read_baseline(path: str | Path) -> dict[str, dict[str, float]]:
    """task -> {"score": baseline score, "dummy": optional floor} from a CSV (`task,score[,dummy]`) or a JSON object
    (`{"task": score}` or `{"task": {"score": s, "dummy": d}}`)."""
    path = Path(path)
    try:
        if path.suffix == ".json":
            raw = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("the top level must be an object of task names")
            return {str(k): ({"score": float(v)} if isinstance(v, (int, float)) else
                             {key: float(v[key]) for key in ("score", "dummy") if key in v}) for k, v in raw.items()}
        import polars as pl

        frame = pl.read_csv(path)
        if not {"task", "score"} <= set(frame.columns):
            raise ValueError(f"has columns {frame.columns}, needs task and score")
        return {str(row["task"]): {k: float(row[k]) for k in ("score", "dummy") if row.get(k) is not None}
                for row in frame.iter_rows(named=True)}
    except (OSError, ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
        raise CrewError(f"{path}: --baseline: cannot read it ({exc}); fix: write a CSV with columns task,score "
                        "(and optionally dummy), or a JSON object {\"task\": score}") from None


# -- the suite ------------------------------------------------------------------------------------


def discover(suite_dir: str | Path, *, answers_root: str | Path | None = None,
             only: Sequence[str] = ()) -> list[SuiteTask]:
    """The suite's tasks (`SUITE/<task>/task.yaml`) with their answers: `SUITE/<task>/grading/answers.csv`, or
    `ANSWERS_ROOT/<task>/answers.csv` (or `.../<task>/grading/answers.csv`) when an answers root is given."""
    suite = Path(suite_dir)
    if not suite.is_dir():
        raise CrewError(f"{suite}: no such folder; fix: pass a folder holding <task>/task.yaml folders")
    found: list[SuiteTask] = []
    for yaml in sorted(suite.glob("*/task.yaml")):
        folder = yaml.parent
        if only and folder.name not in only:
            continue
        task = Task.load(yaml)  # a bad task.yaml stops the bench before anything runs, naming the file
        if answers_root is not None:
            candidates = [Path(answers_root) / folder.name / "answers.csv",
                          Path(answers_root) / folder.name / "grading" / "answers.csv"]
        else:
            candidates = [folder / "grading" / "answers.csv"]
        answers = next((c for c in candidates if c.is_file()), None)
        if answers is None:
            raise CrewError(f"{folder}: no answers at {candidates[0]}; fix: put the test answers there or pass "
                            "--answers-root DIR holding <task>/answers.csv")
        found.append(SuiteTask(name=folder.name, task=yaml, answers=answers, loaded=task))
    if not found:
        raise CrewError(f"{suite}: no <task>/task.yaml folders here" + (f" named {', '.join(only)}" if only else "")
                        + "; fix: pass the suite's folder (e.g. ../shared/tasks)")
    missing = set(only) - {t.name for t in found}
    if missing:
        raise CrewError(f"--tasks: {', '.join(sorted(missing))} not in {suite}; fix: name folders that hold a task.yaml")
    return found


def _die_with_parent() -> None:
    """A solver outlives a killed bench otherwise, and would race the resumed bench for its run folder."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _solve(item: SuiteTask, run_dir: Path, seed: int, budget: float, *, workers: int | None,
           llm: Sequence[str], address: str | None = None) -> tuple[RunStatus, float, str | None]:
    """Run one `crew solve` (or resume it) in its own process; (status, wall seconds, error)."""
    resume = (run_dir / "run.json").is_file()
    cmd = [sys.executable, "-m", "crew", "solve", "--quiet"]
    cmd += ["--resume", str(run_dir)] if resume else [str(item.task), "--out", str(run_dir), "--seed", str(seed),
                                                      "--budget", f"{budget:g}s"]
    if not resume:
        if workers:
            cmd += ["--workers", str(workers)]
        for spec in llm:
            cmd += ["--llm", spec]
    if address:
        cmd += ["--executor", "ray", "--address", address]
    run_dir.mkdir(parents=True, exist_ok=True)
    limit = budget * (1 + _SLACK) + 60
    start = time.monotonic()
    with open(run_dir / "solve.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=_die_with_parent, start_new_session=True)
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return "timeout", time.monotonic() - start, f"killed after {limit:.0f}s (budget {budget:.0f}s + {_SLACK:.0%} + 60s)"
    wall = time.monotonic() - start
    if code != 0:
        tail = (run_dir / "solve.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        return "crashed", wall, f"exit status {code}: " + " | ".join(tail)[-400:]
    return "ok", wall, None


def _cluster(executor: str, address: str | None) -> tuple[str | None, bool]:
    """The Ray address the runs join, and whether the bench started that instance (and must stop it)."""
    if executor != "ray":
        return None, False
    ray = require_ray()
    if address:
        return address, False
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    return ray.get_runtime_context().gcs_address, True


def _grade(item: SuiteTask, run_dir: Path) -> dict[str, Any]:
    task = item.loaded
    submission = run_dir / task.output_name
    if not submission.is_file():
        return {"valid": False, "error": f"no {task.output_name} in {run_dir}"}
    report = grade(task, submission, item.answers)
    out: dict[str, Any] = {"valid": report.valid_submission, "score": report.score, "error": report.error}
    if report.leaderboard is not None:
        out.update(above_median=report.leaderboard.above_median, medal=report.leaderboard.medal)
    return out


def _load_records(path: Path) -> list[RunRecord]:
    records = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(RunRecord.model_validate_json(line))
            except ValueError:
                continue  # a line torn by a kill mid-write: that run is redone
    return records


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    saved_path = out / "bench.json"
    if saved_path.is_file():
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
        differ = [k for k in settings if k != "runs" and saved.get(k) != settings[k]]
        if differ:
            raise CrewError(f"{out}: holds a bench with other settings ({', '.join(differ)}: "
                            f"{', '.join(f'{saved.get(k)!r} there' for k in differ)}); fix: rerun with the same "
                            "settings to resume it, or pass a new --out")
    saved_path.write_text(json.dumps(settings, indent=1), encoding="utf-8")


def bench(suite_dir: str | Path, *, out: str | Path, runs: int = 1, workers: int | None = None,
          budget: float | None = None, llm: Sequence[str] = (), seed: int = 0, answers_root: str | Path | None = None,
          baseline: str | Path | None = None, tasks: Sequence[str] = (), parallel: int | None = None, executor: str = "local",
          address: str | None = None, on_record: Callable[[RunRecord, bool], None] | None = None) -> dict[str, Any]:
    """Solve every task `runs` times (run k with seed `seed + k`), grade, write `summary.md` and `summary.json`
    into `out`, and return the summary. Started again on the same `out`, it resumes.

    `parallel` runs go at once (default: 1, or every task with `executor="ray"`). With `executor="ray"` their
    experiments all run on one Ray cluster: the one at `address`, else a local instance the bench starts for
    them and stops at the end.
    """
    if runs < 1:
        raise CrewError(f"--runs: {runs}; fix: give 1 or more runs per task")
    if parallel is not None and parallel < 1:
        raise CrewError(f"--parallel: {parallel}; fix: give 1 or more runs at once")
    check_executor(executor, address)
    items = discover(suite_dir, answers_root=answers_root, only=tasks)
    if parallel is None:  # on a cluster every task at once; on this machine one run at a time
        parallel = len(items) if executor == "ray" else 1
    baselines = read_baseline(baseline) if baseline else {}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, {"suite": str(Path(suite_dir).resolve()), "runs": runs, "workers": workers, "budget": budget,
                          "llm": list(llm), "seed": seed, "tasks": [i.name for i in items]})
    results = out / "results.jsonl"
    records = {(r.task, r.run): r for r in _load_records(results)}
    # run 1 of every task before run 2 of any: a bench cut short still covers the suite
    pending = [(item, k) for k in range(runs) for item in items if (item.name, k) not in records]
    if on_record:
        for k in range(runs):
            for item in items:
                if (item.name, k) in records:
                    on_record(records[(item.name, k)], True)
    lock = threading.Lock()

    def one(item: SuiteTask, k: int) -> None:
        run_dir = out / item.name / f"run-{k}"
        wall_budget = budget or item.budget
        status, wall, error = _solve(item, run_dir, seed + k, wall_budget, workers=workers, llm=llm,
                                     address=cluster)
        # a crashed or killed run may have left a submission behind; it still counts invalid
        graded = _grade(item, run_dir) if status == "ok" else {"valid": False, "error": error}
        record = RunRecord(task=item.name, run=k, seed=seed + k, status=status, wall_s=round(wall, 2),
                           budget_s=wall_budget, run_dir=str(run_dir), **graded)
        with lock:
            with results.open("a", encoding="utf-8") as handle:
                handle.write(record.model_dump_json() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            records[(item.name, k)] = record
            if on_record:
                on_record(record, False)

    cluster, started = _cluster(executor, address) if pending else (None, False)
    try:
        if parallel <= 1:
            for item, k in pending:
                one(item, k)
        else:
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                for future in [pool.submit(one, item, k) for item, k in pending]:
                    future.result()
    finally:
        if started:
            require_ray().shutdown()
    dummies = {}
    for item in items:
        if item.name in baselines:
            dummies[item.name] = baselines[item.name].get("dummy")
            if dummies[item.name] is None:
                dummies[item.name] = dummy_score(item.loaded, item.answers, out / "dummies")
    summary = summarize([records[(i.name, k)] for k in range(runs) for i in items], items, runs,
                        {k: v["score"] for k, v in baselines.items() if "score" in v}, dummies)
    (out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    (out / "summary.md").write_text(render(summary), encoding="utf-8")
    return summary


# -- the summary ----------------------------------------------------------------------------------


def _mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def summarize(records: Sequence[RunRecord], items: Sequence[SuiteTask], runs: int,
              baselines: dict[str, float] | None = None, dummies: dict[str, float | None] | None = None) -> dict[str, Any]:
    """Per task: scores, valid rate, above-median and medal rates (with a leaderboard), pass@1..K and NS (with a
    baseline); overall: means over tasks, each with its spread over the K runs (sd of the per-run means)."""
    baselines, dummies = baselines or {}, dummies or {}
    per_task = []
    for item in items:
        rs = sorted((r for r in records if r.task == item.name), key=lambda r: r.run)
        task = item.loaded
        higher = task.metric_info.higher_is_better
        boarded = any(r.above_median is not None for r in rs) or (item.task.parent / "leaderboard.csv").is_file()
        base, dummy = baselines.get(item.name), dummies.get(item.name)
        if boarded:
            criterion, passed = "any medal", [r.medal is not None for r in rs]
        elif base is not None:
            criterion = "at least the baseline"
            passed = [r.score is not None and oriented(r.score, higher) >= oriented(base, higher) for r in rs]
        else:
            criterion, passed = "valid submission", [r.valid for r in rs]
        scores = [r.score for r in rs]
        mean, sd = _mean_sd([s for s in scores if s is not None])
        ns = [normalized_score(s, base, dummy) for s in scores] if base is not None and dummy is not None else []
        row: dict[str, Any] = {
            "task": item.name, "metric": task.metric, "higher_is_better": higher, "runs": len(rs),
            "scores": scores, "statuses": [r.status for r in rs], "errors": [r.error for r in rs],
            "mean": mean, "sd": sd,
            "valid_rate": sum(r.valid for r in rs) / len(rs) if rs else None,
            "wall_over_budget": [round(r.wall_s / r.budget_s, 3) for r in rs],
            "pass_criterion": criterion,
            "pass_at_k": {str(k): pass_at_k(len(rs), sum(passed), k) for k in range(1, len(rs) + 1)},
        }
        if boarded:
            row["above_median_rate"] = sum(bool(r.above_median) for r in rs) / len(rs) if rs else None
            row["medal_rate"] = sum(r.medal is not None for r in rs) / len(rs) if rs else None
            row["medals"] = [r.medal for r in rs]
            row["above_median"] = [bool(r.above_median) for r in rs]
        if ns:
            row.update(baseline=base, dummy=dummy, ns=ns, mean_ns=float(np.mean([v for v in ns if v is not None]))
                       if any(v is not None for v in ns) else None)
        per_task.append(row)

    def overall(per_run: Callable[[dict[str, Any], int], float | None]) -> dict[str, Any] | None:
        """The mean over tasks of each run index, then the mean and sd of those K means."""
        by_run = []
        for k in range(runs):
            values = [v for row in per_task if (v := per_run(row, k)) is not None]
            if values:
                by_run.append(float(np.mean(values)))
        mean, sd = _mean_sd(by_run)
        return None if mean is None else {"mean": mean, "sd": sd, "per_run": by_run}

    totals: dict[str, Any] = {
        "tasks": len(items), "runs_per_task": runs, "runs": len(records),
        "valid_rate": overall(lambda row, k: None if k >= row["runs"] else
                              float(row["scores"][k] is not None)),
        "crashed_or_timed_out": sum(r.status != "ok" for r in records),
        "max_wall_over_budget": max((r.wall_s / r.budget_s for r in records), default=None),
    }
    if any("medals" in row for row in per_task):
        totals["medal_rate"] = overall(lambda row, k: None if "medals" not in row or k >= row["runs"]
                                       else float(row["medals"][k] is not None))
        totals["above_median_rate"] = overall(lambda row, k: None if "above_median" not in row
                                              or k >= row["runs"] else float(row["above_median"][k]))
    if any("ns" in row for row in per_task):
        totals["ns"] = overall(lambda row, k: row["ns"][k] if "ns" in row and k < row["runs"] else None)
    totals["pass_at_1"] = float(np.mean([row["pass_at_k"]["1"] for row in per_task if row["pass_at_k"]])) \
        if per_task else None
    if runs > 1:
        totals[f"pass_at_{runs}"] = float(np.mean([row["pass_at_k"][str(runs)] for row in per_task
                                                  if str(runs) in row["pass_at_k"]]))
    return {"tasks": per_task, "overall": totals}


def _f(x: float | None, digits: int = 4) -> str:
    return "invalid" if x is None else f"{x:.{digits}g}"


def _spread(entry: dict[str, Any] | None, digits: int = 3) -> str:
    if not entry:
        return "n/a"
    return f"{entry['mean']:.{digits}f}" + (f" ± {entry['sd']:.{digits}f}" if entry.get("sd") is not None else "")


def render(summary: dict[str, Any]) -> str:
    """The summary as markdown: one row per task, then the overall figures with their spread over runs."""
    rows = summary["tasks"]
    boarded = any("medal_rate" in r for r in rows)
    normalized = any("ns" in r for r in rows)
    head = ["task", "metric", "scores", "mean ± sd", "valid", "pass@1"]
    k = summary["overall"]["runs_per_task"]
    if k > 1:
        head.append(f"pass@{k}")
    head += ["pass means"] + (["above median", "medals"] if boarded else []) + (["NS"] if normalized else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        arrow = "↑" if r["higher_is_better"] else "↓"
        cells = [r["task"], f"{r['metric']} {arrow}", ", ".join(_f(s) for s in r["scores"]),
                 (_f(r["mean"]) + (f" ± {r['sd']:.2g}" if r["sd"] is not None else "")) if r["mean"] is not None else "n/a",
                 f"{r['valid_rate']:.0%}", f"{r['pass_at_k'].get('1', 0):.2f}"]
        if k > 1:
            cells.append(f"{r['pass_at_k'].get(str(k), 0):.2f}")
        cells.append(r["pass_criterion"])
        if boarded:
            cells += [f"{r['above_median_rate']:.0%}" if "above_median_rate" in r else "",
                      ", ".join(m or "-" for m in r["medals"]) if "medals" in r else ""]
        if normalized:
            cells.append(_f(r.get("mean_ns"), 3) if "ns" in r else "")
        lines.append("| " + " | ".join(cells) + " |")
    o = summary["overall"]
    lines += ["", f"**Overall** ({o['tasks']} tasks × {o['runs_per_task']} runs; ± is the sd over runs of the "
                  "per-run mean over tasks):", "",
              f"- valid submissions: {_spread(o['valid_rate'])}",
              f"- runs that crashed or timed out: {o['crashed_or_timed_out']} of {o['runs']}"]
    if o.get("max_wall_over_budget") is not None:
        lines.append(f"- longest run: {o['max_wall_over_budget']:.3f} of its budget")
    if "medal_rate" in o:
        lines += [f"- medal rate: {_spread(o['medal_rate'])}", f"- above median: {_spread(o['above_median_rate'])}"]
    if "ns" in o:
        lines.append(f"- normalized score: {_spread(o['ns'])}")
    lines.append(f"- pass@1: {o['pass_at_1']:.3f}" + (f"; pass@{k}: {o[f'pass_at_{k}']:.3f}" if k > 1 else ""))
    return "\n".join(lines) + "\n"
