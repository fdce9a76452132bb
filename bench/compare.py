"""crew against FLAML and AutoGluon-Tabular at the same wall budget, graded by crew's own grader.

    python bench/compare.py [--budget 5m] [--tasks a,b] [--seed 0] [--out bench/compare.json] [--cores 2]
                            [--peers flaml,autogluon] [--autogluon-python PATH] [--reuse-peers OLD.json]
                            [--task-dir FOLDER ...]

Every task of `../shared/tasks/` (each `<task>/task.yaml`, answers in
`<task>/grading/answers.csv`) and the example task `examples/tasks/breast-cancer`
is solved twice, one after the other, never at once: by `crew solve` and by
`flaml.AutoML`, each in its own subprocess pinned to the same `--cores` CPUs,
each given the same wall budget (the task's `budget.wall_time`, or `--budget`
for every task). FLAML's subprocess gets the paths of train, test and
task.yaml only; the answers path is never passed to it.

AutoGluon runs the same way (`TabularPredictor(...).fit(time_limit=budget,
presets="best_quality")`, its default model zoo: LightGBM, CatBoost, XGBoost,
forests, k-NN, linear, and its networks when torch is installed) through
`bench/autogluon_worker.py`, a standalone worker that may run under an
interpreter of its own (`--autogluon-python`; AutoGluon pins library versions
crew need not share). Every side's wall time and peak memory (the largest
resident set of the side's processes, from `wait4`) are recorded.

Per task and peer, the error ratio is crew's error over the peer's, where
error is the distance to the metric's perfect score (`Metric.best`), floored at
1% of the dummy's error so that a perfect score does not divide by zero; the
summary gives its geometric mean over the tasks where both are valid, and how
often crew is at least as good as each peer.

`--reuse-peers OLD.json` takes the rows of the peers not named in `--peers`
from an earlier comparison at the same budget and seed instead of rerunning
them (the peers do not change when crew does): for a development loop; the
output says so.

All submissions, and a dummy one (class priors, hence the majority class for
label metrics; the train mean for regression), are graded with `crew.grade`.
The normalized score against FLAML is

    NS = (crew - dummy) / (FLAML - dummy)

1 means crew matches FLAML, 0 means crew is no better than the dummy. The
ratio needs no sign flip for lower-is-better metrics (both differences are
then negative). An invalid crew submission counts as the dummy (NS 0); NS is
undefined (null) when FLAML's score equals the dummy's or FLAML's submission is
invalid. The table is printed as markdown, then the summary (mean NS over the
tasks where it is defined, tasks where crew >= FLAML in the metric's
direction, valid-submission rate, whether every crew run finished within
budget + 5%); the same goes to `--out` as JSON. Run folders go under
`runs/compare-<time>/` (or `--work`).

Needs FLAML: `pip install -e '.[bench]'`. AutoGluon pins pandas below 3 and
brings its own xgboost build, so give it a venv of its own:
`python -m venv ag && ag/bin/pip install 'autogluon.tabular[lightgbm,catboost,xgboost]'`,
then `--autogluon-python ag/bin/python` (`--peers flaml` leaves it out).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# the suite's estimators: one NS and one dummy for `crew bench` and this comparison
from crew.workflows.suite import dummy_raw, dummy_score, normalized_score  # noqa: F401  (dummy_raw: for tests)

REPO = Path(__file__).resolve().parents[1]
SHARED_TASKS = REPO.parent / "shared" / "tasks"
EXAMPLE_TASK = REPO / "examples" / "tasks" / "breast-cancer"
EXAMPLE_ANSWERS = REPO / "examples" / "answers" / "breast-cancer" / "answers.csv"
DEFAULT_OUT = REPO / "bench" / "compare.json"

BUDGET_SLACK = 0.05
"""A crew run is within budget when its wall time is at most budget x (1 + this)."""
INSTALL_HINT = "bench/compare.py needs FLAML; install it with: pip install -e '.[bench]'"


# -- the metric mapping ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FlamlMetric:
    """What FLAML optimises for one crew metric.

    `name` is a FLAML built-in metric name, or `balanced_accuracy`, which the
    worker passes as a custom metric function (FLAML has none built in).
    `log_target`: fit on log1p(y) with `name` (rmse) and predict expm1, the
    usual way to optimise rmsle.
    """

    name: str
    log_target: bool = False

    @property
    def custom(self) -> bool:
        return self.name in CUSTOM_FLAML_METRICS


CUSTOM_FLAML_METRICS = frozenset({"balanced_accuracy", "qwk", "pearson", "spearman"})

_FLAML_METRICS: dict[str, FlamlMetric] = {
    "accuracy": FlamlMetric("accuracy"),
    "balanced_accuracy": FlamlMetric("balanced_accuracy"),
    "f1": FlamlMetric("f1"),
    "f1_macro": FlamlMetric("macro_f1"),
    "roc_auc": FlamlMetric("roc_auc"),
    "log_loss": FlamlMetric("log_loss"),
    "rmse": FlamlMetric("rmse"),
    "mae": FlamlMetric("mae"),
    "rmsle": FlamlMetric("rmse", log_target=True),
    "r2": FlamlMetric("r2"),
    "qwk": FlamlMetric("qwk"),
    "pearson": FlamlMetric("pearson"),
    "spearman": FlamlMetric("spearman"),
}
"""Every one-target crew metric (the column-wise ones score tasks of several targets, which this bench does not
compare)."""


def flaml_metric(metric: str, target_type: str | None = None) -> FlamlMetric:
    """FLAML's metric for crew's `metric`; multi-class roc_auc is one-vs-rest macro, as crew grades it."""
    if metric == "roc_auc" and target_type == "multiclass":
        return FlamlMetric("roc_auc_ovr")
    try:
        return _FLAML_METRICS[metric]
    except KeyError:
        raise KeyError(f"no FLAML metric for crew metric {metric!r}; known: {', '.join(_FLAML_METRICS)}") from None


def balanced_accuracy_loss(X_val: Any, y_val: Any, estimator: Any, labels: Any, X_train: Any, y_train: Any,
                           *args: Any, **kwargs: Any) -> tuple[float, dict[str, float]]:
    """FLAML custom metric (a loss to minimise): 1 - balanced accuracy on the validation rows."""
    from sklearn.metrics import balanced_accuracy_score

    score = float(balanced_accuracy_score(y_val, estimator.predict(X_val)))
    return 1.0 - score, {"balanced_accuracy": score}


def qwk_loss(classes: list[str]) -> Any:
    """FLAML custom metric for quadratic weighted kappa: the class codes FLAML fits are read back as the ratings
    they stand for (crew's classes, numbers as text), as crew grades them."""
    ratings = np.asarray([float(c) for c in classes])

    def loss(X_val: Any, y_val: Any, estimator: Any, labels: Any, X_train: Any, y_train: Any, *args: Any,
             **kwargs: Any) -> tuple[float, dict[str, float]]:
        from sklearn.metrics import cohen_kappa_score

        pred = np.asarray(estimator.predict(X_val)).astype(int)
        score = float(cohen_kappa_score(ratings[np.asarray(y_val, dtype=int)], ratings[pred], weights="quadratic"))
        return 1.0 - score, {"qwk": score}
    return loss


def correlation_loss(name: str) -> Any:
    """FLAML custom metric for a correlation crew grades (pearson, spearman): 1 - the correlation."""
    def loss(X_val: Any, y_val: Any, estimator: Any, labels: Any, X_train: Any, y_train: Any, *args: Any,
             **kwargs: Any) -> tuple[float, dict[str, float]]:
        from crew import get_metric

        score = get_metric(name).score(np.asarray(y_val, dtype=float), np.asarray(estimator.predict(X_val)))
        score = score if math.isfinite(score) else 0.0
        return 1.0 - score, {name: score}
    return loss


# -- scores, NS and the summary -------------------------------------------------------------------


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def crew_at_least_as_good(crew: float | None, flaml: float | None, higher_is_better: bool) -> bool:
    """crew >= FLAML in the metric's direction; an invalid submission loses to any valid one (ties of two invalid: no)."""
    if crew is None:
        return False
    if flaml is None or _same(crew, flaml):
        return True
    return crew > flaml if higher_is_better else crew < flaml


ERROR_FLOOR = 0.01
"""Errors below this share of the dummy's error count as that (a perfect score must not divide by zero)."""


def error_ratio(crew: float | None, peer: float | None, dummy: float, best: float | None) -> float | None:
    """crew's error over the peer's, error = |best - score| floored at ERROR_FLOOR x the dummy's error; None when
    either submission is invalid or the metric has no perfect score."""
    if crew is None or peer is None or best is None:
        return None
    floor = max(ERROR_FLOOR * abs(best - dummy), 1e-12)
    return max(abs(best - crew), floor) / max(abs(best - peer), floor)


def geometric_mean(values: list[float]) -> float | None:
    logs = [math.log(v) for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(logs) / len(logs)) if logs else None


def within_budget(wall_s: float | None, budget_s: float, slack: float = BUDGET_SLACK) -> bool:
    return wall_s is not None and wall_s <= budget_s * (1 + slack)


@dataclass
class TaskResult:
    """One task's row: both scores (None when the submission was invalid), the dummy, timings and NS."""

    task: str
    metric: str
    higher_is_better: bool
    budget_s: float
    dummy: float
    crew: float | None
    flaml: float | None
    crew_wall_s: float | None = None
    flaml_wall_s: float | None = None
    crew_error: str | None = None
    flaml_error: str | None = None
    flaml_best_estimator: str | None = None
    autogluon: float | None = None
    autogluon_wall_s: float | None = None
    autogluon_error: str | None = None
    autogluon_best_model: str | None = None
    best: float | None = None
    """The metric's perfect score (`Metric.best`): errors are distances to it."""
    peak_mb: dict[str, float] = field(default_factory=dict)
    ns: float | None = field(default=None)
    crew_ge_flaml: bool = field(default=False)
    crew_within_budget: bool = field(default=False)
    flaml_within_budget: bool = field(default=False)
    crew_ge_autogluon: bool = field(default=False)
    error_ratio_flaml: float | None = field(default=None)
    error_ratio_autogluon: float | None = field(default=None)

    def __post_init__(self) -> None:
        self.ns = normalized_score(self.crew, self.flaml, self.dummy)
        self.crew_ge_flaml = crew_at_least_as_good(self.crew, self.flaml, self.higher_is_better)
        self.crew_ge_autogluon = crew_at_least_as_good(self.crew, self.autogluon, self.higher_is_better)
        self.error_ratio_flaml = error_ratio(self.crew, self.flaml, self.dummy, self.best)
        self.error_ratio_autogluon = error_ratio(self.crew, self.autogluon, self.dummy, self.best)
        self.crew_within_budget = within_budget(self.crew_wall_s, self.budget_s)
        self.flaml_within_budget = within_budget(self.flaml_wall_s, self.budget_s)


def summarize(results: list[TaskResult]) -> dict[str, Any]:
    """Mean NS (over tasks where it is defined), crew >= FLAML count, valid rates, budget adherence."""
    n = len(results)
    defined = [r.ns for r in results if r.ns is not None]
    walls = [r.crew_wall_s / r.budget_s for r in results if r.crew_wall_s is not None]
    return {
        "tasks": n,
        "mean_ns": float(np.mean(defined)) if defined else None,
        "ns_defined": len(defined),
        "ns_undefined": [r.task for r in results if r.ns is None],
        "crew_ge_flaml": sum(r.crew_ge_flaml for r in results),
        "crew_ge_autogluon": sum(r.crew_ge_autogluon for r in results),
        "autogluon_valid_rate": sum(r.autogluon is not None for r in results) / n if n else None,
        "geomean_error_ratio_flaml": geometric_mean([r.error_ratio_flaml for r in results
                                                     if r.error_ratio_flaml is not None]),
        "geomean_error_ratio_autogluon": geometric_mean([r.error_ratio_autogluon for r in results
                                                         if r.error_ratio_autogluon is not None]),
        "crew_valid_rate": sum(r.crew is not None for r in results) / n if n else None,
        "flaml_valid_rate": sum(r.flaml is not None for r in results) / n if n else None,
        "crew_all_within_budget": all(r.crew_within_budget for r in results),
        "crew_over_budget": [r.task for r in results if not r.crew_within_budget],
        "crew_max_wall_over_budget": max(walls) if walls else None,
        "budget_slack": BUDGET_SLACK,
    }


def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def render(results: list[TaskResult], summary: dict[str, Any]) -> str:
    """The markdown table and the summary lines."""
    lines = [
        "| task | metric | crew | FLAML | AutoGluon | dummy | err crew/FLAML | err crew/AG | wall crew / FLAML / AG "
        "(budget) | peak MB crew / FLAML / AG |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        arrow = "↑" if r.higher_is_better else "↓"
        walls = " / ".join("—" if w is None else f"{w:.0f}s" for w in (r.crew_wall_s, r.flaml_wall_s, r.autogluon_wall_s))
        walls += f" ({r.budget_s:g}s)" + ("" if r.crew_wall_s is None or r.crew_within_budget else " crew over")
        peaks = " / ".join(f"{r.peak_mb[k]:.0f}" if k in r.peak_mb else "—" for k in ("crew", "flaml", "autogluon"))
        lines.append(f"| {r.task} | {r.metric} {arrow} | {_fmt(r.crew)} | {_fmt(r.flaml)} | {_fmt(r.autogluon)} "
                     f"| {_fmt(r.dummy)} | {_fmt(r.error_ratio_flaml, 3)} | {_fmt(r.error_ratio_autogluon, 3)} "
                     f"| {walls} | {peaks} |")
    s = summary
    mean_ns = "n/a" if s["mean_ns"] is None else f"{s['mean_ns']:.3f}"
    undefined = f" ({len(s['ns_undefined'])} undefined: {', '.join(s['ns_undefined'])})" if s["ns_undefined"] else ""
    lines += [
        "",
        f"- mean NS: {mean_ns} over {s['ns_defined']} task(s){undefined}",
        f"- geometric-mean error ratio crew/FLAML: {_fmt(s['geomean_error_ratio_flaml'], 3)}; "
        f"crew/AutoGluon: {_fmt(s['geomean_error_ratio_autogluon'], 3)}",
        f"- crew >= FLAML: {s['crew_ge_flaml']}/{s['tasks']}; crew >= AutoGluon: {s['crew_ge_autogluon']}/{s['tasks']}",
        f"- valid submissions: crew {_rate(s['crew_valid_rate'])}, FLAML {_rate(s['flaml_valid_rate'])}, "
        f"AutoGluon {_rate(s['autogluon_valid_rate'])}",
        f"- every crew run within budget + {BUDGET_SLACK:.0%}: {'yes' if s['crew_all_within_budget'] else 'no'}"
        + (f" (over: {', '.join(s['crew_over_budget'])})" if s["crew_over_budget"] else "")
        + ("" if s["crew_max_wall_over_budget"] is None else f"; max wall/budget {s['crew_max_wall_over_budget']:.3f}"),
    ]
    for r in results:
        for side, err in (("crew", r.crew_error), ("FLAML", r.flaml_error), ("AutoGluon", r.autogluon_error)):
            if err:
                lines.append(f"- {r.task}: {side}: {err}")
    return "\n".join(lines)


def _rate(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


# -- tasks ----------------------------------------------------------------------------------------


def discover_tasks() -> dict[str, tuple[Path, Path]]:
    """Task name -> (task folder, answers.csv): the shared development tasks and the example task."""
    found: dict[str, tuple[Path, Path]] = {}
    if SHARED_TASKS.is_dir():
        for folder in sorted(SHARED_TASKS.iterdir()):
            answers = folder / "grading" / "answers.csv"
            if (folder / "task.yaml").is_file() and answers.is_file():
                found[folder.name] = (folder, answers)
    if (EXAMPLE_TASK / "task.yaml").is_file() and EXAMPLE_ANSWERS.is_file():
        found[EXAMPLE_TASK.name] = (EXAMPLE_TASK, EXAMPLE_ANSWERS)
    return found


# -- the two sides --------------------------------------------------------------------------------


PEAK_MB: dict[Path, float] = {}
"""Peak resident memory (MB) of each finished `_run`, by its log path: the largest process of the side's tree
that was waited for (`wait4`'s ru_maxrss covers the child and the descendants it reaped)."""


def _run(cmd: list[str], log: Path, cpus: list[int] | None, timeout: float, cwd: Path,
         env: dict[str, str] | None = None) -> tuple[float, int]:
    """Run `cmd` in its own session pinned to `cpus`; (wall seconds, exit status). Killed (group) at `timeout`."""
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus and hasattr(os, "sched_setaffinity") else None
    with log.open("w") as out:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, preexec_fn=pin,
                                start_new_session=True, env=env)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        code = proc.returncode
        wall = time.monotonic() - start
    PEAK_MB[log] = usage.ru_maxrss / 1024
    return wall, code


def _tail(path: Path, n: int = 400) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return " ".join(text[-n:].split())


def run_crew(task_dir: Path, out: Path, budget_s: float, seed: int, cpus: list[int] | None,
             extra: tuple[str, ...] = ()) -> tuple[float, int, Path]:
    """`crew solve` in a subprocess pinned to `cpus`; `extra` CLI options (e.g. `--strategy mcts`) are appended."""
    cmd = [sys.executable, "-m", "crew", "solve", str(task_dir), "--out", str(out / "run"),
           "--budget", f"{budget_s:g}s", "--quiet", "--seed", str(seed), *extra]
    out.mkdir(parents=True, exist_ok=True)
    wall, code = _run(cmd, out / "crew.log", cpus, timeout=2 * budget_s + 120, cwd=REPO)
    return wall, code, out / "run"


def flaml_margin(budget_s: float) -> float:
    """Seconds kept back from FLAML's `time_budget` for predicting and writing the submission."""
    return max(3.0, 0.05 * budget_s)


def run_flaml(task: Any, task_dir: Path, out: Path, budget_s: float, seed: int, cpus: list[int] | None) -> tuple[float, int]:
    """FLAML in a subprocess: the spec names task.yaml, train and test, never the answers."""
    out.mkdir(parents=True, exist_ok=True)
    spec = {
        "task_yaml": str((task_dir / "task.yaml").resolve()),
        "train": str(task.path(task.data.train)),
        "test": str(task.path(task.data.test)),
        "budget_s": budget_s,
        "margin_s": flaml_margin(budget_s),
        "seed": seed,
        "n_jobs": len(cpus) if cpus else (os.cpu_count() or 1),
        "submission": str(out / "submission.csv"),
        "result": str(out / "result.json"),
        "launched": time.time(),
    }
    (out / "spec.json").write_text(json.dumps(spec, indent=1))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--flaml-worker", str(out / "spec.json")]
    return _run(cmd, out / "flaml.log", cpus, timeout=2 * budget_s + 120, cwd=out)


AUTOGLUON_METRICS = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "f1": "f1",
                     "f1_macro": "f1_macro", "roc_auc": "roc_auc", "log_loss": "log_loss",
                     "rmse": "root_mean_squared_error", "mae": "mean_absolute_error",
                     "rmsle": "root_mean_squared_error", "r2": "r2", "qwk": "quadratic_kappa", "pearson": "pearsonr",
                     "spearman": "spearmanr"}
"""AutoGluon's scorer for each crew metric; rmsle is fitted as rmse on log1p(y) (AutoGluon has no rmsle)."""


def run_autogluon(task: Any, task_dir: Path, out: Path, budget_s: float, seed: int, cpus: list[int] | None,
                  python: str) -> tuple[float, int]:
    """AutoGluon in a subprocess of `python`: the spec names train, test and the task's columns, never the answers."""
    from crew import positive_label

    out.mkdir(parents=True, exist_ok=True)
    metric = task.metric
    ag_metric = AUTOGLUON_METRICS[metric]
    if metric == "roc_auc" and task.target_type == "multiclass":
        ag_metric = "roc_auc_ovr_macro"
    spec = {
        "train": str(task.path(task.data.train)), "test": str(task.path(task.data.test)),
        "target": task.target, "id_column": task.id_column, "target_type": task.target_type,
        "classes": task.classes, "positive": positive_label(task.classes) if task.target_type == "binary" else None,
        "ag_metric": ag_metric, "log_target": metric == "rmsle", "nonnegative": task.metric_info.nonnegative,
        "submission": str(out / "submission.csv"), "submission_kind": task.metric_info.submission,
        "submission_columns": task.submission_columns(), "presets": "best_quality",
        "budget_s": budget_s, "margin_s": flaml_margin(budget_s), "seed": seed,
        "n_jobs": len(cpus) if cpus else (os.cpu_count() or 1), "model_dir": str(out / "model"),
        "result": str(out / "result.json"), "launched": time.time(),
    }
    (out / "spec.json").write_text(json.dumps(spec, indent=1))
    cmd = [python, str(Path(__file__).resolve().parent / "autogluon_worker.py"), str(out / "spec.json")]
    return _run(cmd, out / "autogluon.log", cpus, timeout=2 * budget_s + 180, cwd=out)


def _read_frame(path: str) -> Any:
    import pandas as pd

    return pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)


def prepare_features(train: Any, test: Any) -> tuple[Any, Any]:
    """String columns as pandas categories (the train's categories; unseen test values become missing).

    A string column whose values nearly all parse as ISO dates becomes a
    datetime column instead, which FLAML expands into date parts itself.
    """
    import pandas as pd
    from pandas.api import types as pdt

    train, test = train.copy(), test.copy()
    for col in train.columns:
        if pdt.is_numeric_dtype(train[col]) or pdt.is_bool_dtype(train[col]) or pdt.is_datetime64_any_dtype(train[col]):
            continue
        values = train[col].dropna()
        sample = values.astype(str).head(1000)
        if len(sample) and sample.str.contains(r"\d{4}-\d{2}-\d{2}", regex=True).mean() > 0.95:
            parsed = pd.to_datetime(sample, errors="coerce", format="ISO8601")
            if parsed.notna().mean() > 0.95:
                train[col] = pd.to_datetime(train[col], errors="coerce", format="ISO8601")
                test[col] = pd.to_datetime(test[col], errors="coerce", format="ISO8601")
                continue
        dtype = pd.CategoricalDtype(sorted(values.astype(str).unique()))
        for frame in (train, test):
            text = frame[col].astype(str).where(frame[col].notna())
            frame[col] = text.where(text.isin(dtype.categories)).astype(dtype)
    return train, test


def flaml_worker(spec_path: Path) -> None:
    """The FLAML side, run as `compare.py --flaml-worker SPEC` in its own process."""
    spec = json.loads(spec_path.read_text())
    from flaml import AutoML

    from crew import Task
    from crew._metrics import canonical_labels, positive_label
    from crew.tools.submission import submission_frame

    task = Task.load(spec["task_yaml"])
    train, test = _read_frame(spec["train"]), _read_frame(spec["test"])
    train = train[train[task.target].notna()].reset_index(drop=True)
    test_ids = test[task.id_column].to_numpy() if task.id_column else None
    drop = [c for c in (task.id_column, task.target) if c]
    X, X_test = prepare_features(train.drop(columns=drop), test.drop(columns=[c for c in drop if c in test.columns]))
    metric = flaml_metric(task.metric, task.target_type)
    classes = task.classes
    if task.target_type == "regression":
        y = train[task.target].to_numpy(dtype=float)
        if metric.log_target:
            y = np.log1p(np.clip(y, 0, None))
        flaml_task = "regression"
    elif task.target_type == "binary":  # 1 = the positive class, so f1 and roc_auc point the right way
        y = (canonical_labels(train[task.target].to_numpy()) == positive_label(classes)).astype(int)
        flaml_task = "classification"
    else:
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[c] for c in canonical_labels(train[task.target].to_numpy())], dtype=int)
        flaml_task = "classification"

    elapsed = time.time() - spec["launched"]
    time_budget = max(1.0, spec["budget_s"] - elapsed - spec["margin_s"])
    automl = AutoML()
    custom = {"balanced_accuracy": balanced_accuracy_loss}.get(metric.name) or (
        qwk_loss(classes) if metric.name == "qwk" else
        correlation_loss(metric.name) if metric.name in ("pearson", "spearman") else None)
    automl.fit(X, y, task=flaml_task, metric=custom if metric.custom else metric.name,
               time_budget=time_budget, seed=spec["seed"], n_jobs=spec["n_jobs"], verbose=0)

    n = len(X_test)
    if task.target_type == "regression":
        raw = np.asarray(automl.predict(X_test), dtype=float)
        if metric.log_target:
            raw = np.expm1(raw)
    elif task.metric_info.submission == "label":
        pred = np.asarray(automl.predict(X_test)).astype(int)
        if task.target_type == "binary":
            pred = np.where(pred == 1, classes.index(positive_label(classes)), 1 - classes.index(positive_label(classes)))
        raw = np.zeros((n, len(classes)))
        raw[np.arange(n), pred] = 1.0
    else:
        proba = np.asarray(automl.predict_proba(X_test), dtype=float)
        learned = [int(c) for c in automl.classes_]
        raw = np.zeros((n, len(classes)))
        if task.target_type == "binary":
            pos = classes.index(positive_label(classes))
            p1 = proba[:, learned.index(1)]
            raw[:, pos], raw[:, 1 - pos] = p1, 1 - p1
        else:
            raw[:, learned] = proba
    submission_frame(task, test_ids, raw).to_csv(spec["submission"], index=False)
    Path(spec["result"]).write_text(json.dumps({
        "best_estimator": automl.best_estimator, "best_loss": automl.best_loss, "best_config": automl.best_config,
        "time_budget": time_budget, "wall_s": time.time() - spec["launched"],
    }, default=str, indent=1))


# -- one task, all tasks ---------------------------------------------------------------------------


def _graded(task: Any, submission: Path, answers: Path, code: int, log: Path) -> tuple[float | None, str | None]:
    """(score, error) of one side's submission: None and why when it is missing or invalid."""
    from crew import grade

    report = grade(task, submission, answers) if submission.is_file() else None
    if report is None:
        return None, f"no {submission.name} (exit {code}): {_tail(log)}"
    if report.error:
        return None, report.error
    return report.score, (f"exit {code} (submission graded anyway): {_tail(log)}" if code != 0 else None)


def compare_task(name: str, task_dir: Path, answers: Path, work: Path, budget_s: float | None, seed: int,
                 cpus: list[int] | None, peers: tuple[str, ...] = ("flaml",), autogluon_python: str | None = None,
                 reused: dict[str, Any] | None = None) -> TaskResult:
    """crew, then each of `peers` (or their row of `reused`, an earlier comparison's), on one task."""
    from crew import Task

    task = Task.load(task_dir / "task.yaml")
    budget = float(budget_s if budget_s is not None else task.budget.wall_time)
    work.mkdir(parents=True, exist_ok=True)
    dummy = dummy_score(task, answers, work)
    peak: dict[str, float] = {}

    _log(f"{name}: crew solve, budget {budget:g}s")
    crew_wall, crew_code, run_dir = run_crew(task_dir, work / "crew", budget, seed, cpus)
    crew, crew_error = _graded(task, run_dir / task.output_name, answers, crew_code, work / "crew" / "crew.log")
    peak["crew"] = PEAK_MB.get(work / "crew" / "crew.log", 0.0)

    sides: dict[str, Any] = {}
    for peer in ("flaml", "autogluon"):  # a peer not run now comes from the earlier comparison, if one is given
        if reused is not None and peer not in peers:
            sides.update({k: v for k, v in reused.items() if k.startswith(peer) and k in TaskResult.__dataclass_fields__
                          and not k.startswith(("crew_ge", "error_ratio"))})
            if peer in (reused.get("peak_mb") or {}):
                peak[peer] = reused["peak_mb"][peer]
    if "flaml" in peers:
        _log(f"{name}: FLAML, budget {budget:g}s")
        wall, code = run_flaml(task, task_dir, work / "flaml", budget, seed, cpus)
        sides["flaml"], sides["flaml_error"] = _graded(task, work / "flaml" / "submission.csv", answers, code,
                                                       work / "flaml" / "flaml.log")
        sides["flaml_wall_s"], peak["flaml"] = wall, PEAK_MB.get(work / "flaml" / "flaml.log", 0.0)
        result_file = work / "flaml" / "result.json"
        sides["flaml_best_estimator"] = (json.loads(result_file.read_text()).get("best_estimator")
                                         if result_file.is_file() else None)
    if "autogluon" in peers:
        _log(f"{name}: AutoGluon, budget {budget:g}s")
        wall, code = run_autogluon(task, task_dir, work / "autogluon", budget, seed, cpus,
                                   autogluon_python or sys.executable)
        sides["autogluon"], sides["autogluon_error"] = _graded(task, work / "autogluon" / "submission.csv", answers,
                                                               code, work / "autogluon" / "autogluon.log")
        sides["autogluon_wall_s"], peak["autogluon"] = wall, PEAK_MB.get(work / "autogluon" / "autogluon.log", 0.0)
        result_file = work / "autogluon" / "result.json"
        sides["autogluon_best_model"] = (json.loads(result_file.read_text()).get("best_model")
                                         if result_file.is_file() else None)

    result = TaskResult(
        task=name, metric=task.metric or "", higher_is_better=task.metric_info.higher_is_better, budget_s=budget,
        dummy=dummy, crew=crew, crew_wall_s=crew_wall, crew_error=crew_error, best=task.metric_info.best,
        peak_mb=peak, **{"flaml": None, **sides},
    )
    _log(f"{name}: crew {_fmt(result.crew)} ({crew_wall:.1f}s), FLAML {_fmt(result.flaml)}, "
         f"AutoGluon {_fmt(result.autogluon)}, dummy {_fmt(dummy)}, error ratio vs FLAML "
         f"{_fmt(result.error_ratio_flaml, 3)}, vs AutoGluon {_fmt(result.error_ratio_autogluon, 3)}")
    return result


def _log(text: str) -> None:
    print(f"[compare] {text}", file=sys.stderr, flush=True)


def _cpus(cores: int) -> list[int] | None:
    if not hasattr(os, "sched_getaffinity"):
        return None
    usable = sorted(os.sched_getaffinity(0))
    if cores > len(usable):
        _log(f"--cores {cores} but only {len(usable)} usable; using {len(usable)}")
    return usable[:max(1, cores)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", help="wall budget for each side on every task, e.g. 5m (default: each task's wall_time)")
    parser.add_argument("--tasks", help="comma-separated task names (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results (default bench/compare.json)")
    parser.add_argument("--cores", type=int, default=2, help="CPUs both sides are pinned to; FLAML's n_jobs (default 2)")
    parser.add_argument("--work", type=Path, help="folder for the run folders (default runs/compare-<time>)")
    parser.add_argument("--peers", default="flaml,autogluon",
                        help="comma-separated peers to run: flaml, autogluon, or none (with --reuse-peers)")
    parser.add_argument("--autogluon-python", help="interpreter with autogluon.tabular (default: this one)")
    parser.add_argument("--reuse-peers", type=Path, help="take the peers' rows from this earlier comparison's JSON")
    parser.add_argument("--task-dir", type=Path, action="append", default=[],
                        help="also compare this task folder (task.yaml and grading/answers.csv), e.g. the one "
                             "../shared/tasks/make_large_task.py writes; repeatable")
    parser.add_argument("--flaml-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    peers = tuple(p.strip() for p in args.peers.split(",") if p.strip() and p.strip() != "none")
    if unknown_peers := [p for p in peers if p not in ("flaml", "autogluon")]:
        parser.error(f"--peers: unknown {', '.join(unknown_peers)}; known: flaml, autogluon")
    if args.flaml_worker is not None:
        flaml_worker(args.flaml_worker)
        return 0
    reused_rows: dict[str, dict[str, Any]] = {}
    if args.reuse_peers is not None:
        try:
            old = json.loads(args.reuse_peers.read_text())
            reused_rows = {row["task"]: row for row in old["results"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            parser.error(f"--reuse-peers: cannot read {args.reuse_peers} ({exc})")

    from crew._units import parse_duration

    budget = None
    if args.budget is not None:
        try:
            budget = parse_duration(args.budget)
        except ValueError as exc:
            parser.error(f"--budget: {exc}")
    known = discover_tasks()
    for folder in args.task_dir:
        answers = folder / "grading" / "answers.csv"
        if not (folder / "task.yaml").is_file() or not answers.is_file():
            parser.error(f"--task-dir: {folder} needs task.yaml and grading/answers.csv")
        known[folder.resolve().name] = (folder.resolve(), answers.resolve())
    extra = [folder.resolve().name for folder in args.task_dir]
    if args.tasks:
        names = [t.strip() for t in args.tasks.split(",") if t.strip()] + [e for e in extra if e not in args.tasks]
    else:
        names = extra or list(known)
    unknown = [t for t in names if t not in known]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if "flaml" in peers:
        try:
            from flaml import AutoML  # noqa: F401  (the automl extras: lightgbm, xgboost, scipy)
        except ImportError as exc:
            print(f"{INSTALL_HINT} ({exc})", file=sys.stderr)
            return 2
    if "autogluon" in peers:
        python = args.autogluon_python or sys.executable
        try:
            found = subprocess.run([python, "-c", "import autogluon.tabular"], capture_output=True).returncode == 0
        except OSError:
            found = False
        if not found:
            print(f"bench/compare.py: {python} cannot import autogluon.tabular; install it there or pass "
                  "--autogluon-python, or leave it out with --peers flaml", file=sys.stderr)
            return 2
    cpus = _cpus(args.cores)
    work = args.work or REPO / "runs" / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    _log(f"tasks: {', '.join(names)}; cpus {cpus}; run folders in {work}")

    if reused_rows and (missing := [n for n in names if n not in reused_rows]):
        parser.error(f"--reuse-peers: {args.reuse_peers} has no row for {', '.join(missing)}")
    results = [compare_task(name, *known[name], work / name, budget, args.seed, cpus, peers, args.autogluon_python,
                            reused_rows.get(name) if reused_rows else None) for name in names]
    summary = summarize(results)
    print(render(results, summary))
    if args.reuse_peers is not None:
        print(f"\n(rows of peers other than {', '.join(peers) or 'none'} reused from {args.reuse_peers})")

    from crew import __version__ as crew_version

    payload = {
        "budget_override_s": budget, "seed": args.seed, "cpus": cpus, "work": str(work), "peers": list(peers),
        "reused_peers": str(args.reuse_peers) if args.reuse_peers else None, "crew_version": crew_version,
        "results": [asdict(r) for r in results], "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    _log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
