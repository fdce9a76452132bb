"""The reviewer's checks, as plain functions: a valid submission, an honest CV, folds, overfitting, leakage, the rules.

Scripts are written by a model, and a model can be wrong or can cheat. So
the checks trust nothing a script says about itself: they read the files
the experiment left behind (each first checked against the size an honest
one could have for the task), validate `predictions.csv` against the task's
test ids, recompute the CV score from `oof.csv` and the true train targets
with the task's metric, check that the submission is what the model's own
test predictions (`test_pred.csv`) imply, and read the analyst's leakage
suspects against the score. `audit` runs them all and returns an `Audit`,
the facts the reviewer role (`crew.roles.reviewer`) decides from; where the
lines are drawn is a `Thresholds` the role takes as a parameter.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, Field

from crew import Metric, TableError, Task, check_submission, parse_python, positive_label, read_table
from crew.tools.artifacts import (
    ARTIFACTS,
    REQUIRED,
    ArtifactError,
    canonical,
    class_weights,
    file_size,
    is_constant,
    metric_input,
    predictions,
    row_positions,
    size_limits,
    test_ids,
    train_targets,
)

__all__ = ["ARTIFACTS", "CHECKS", "DEFAULT_THRESHOLDS", "Audit", "Thresholds", "audit", "audit_pixels", "finding_line"]

CHECKS = ("ran", "files", "submission", "cv_recomputed", "folds", "overfit", "leakage", "rules")
"""The reviewer's checks, in the order it runs them; each is a key of `Review.checks`."""



@dataclass(frozen=True)
class Thresholds:
    """Where the checks draw their lines; the reviewer role takes one (`Reviewer(thresholds=...)`).

    Scores of the higher-is-better metrics all top out at 1, so gaps in them
    are measured in points; losses have no natural scale, so gaps in them are
    measured relative to the CV.
    """

    cv_tolerance: float = 1e-4      # |reported - recomputed| allowed, times max(1, |reported|): float noise, not a lie
    fold_stds: float = 3.0          # a fold more than 3 standard deviations of the other folds away from their mean ...
    fold_points: float = 0.10       # ... and more than 0.1 points (higher-is-better) ...
    fold_relative: float = 0.20     # ... or 20% (losses) away from it, is suspect
    overfit_points: float = 0.10    # higher-is-better: train more than 0.1 points above the CV is overfitting
    overfit_lower: float = 0.50     # losses shrink freely on train data: warn when the train loss is under half the CV
    near_perfect: float = 1e-3      # within this of the best possible score (1 for bounded metrics) is "too good"
    near_perfect_log_loss: float = 1e-2
    prediction_atol: float = 1e-4   # submission vs test_pred.csv: allows rounding to 4-5 decimals, not edits
    prediction_rtol: float = 1e-4
    max_folds: int = 1000           # fold scores read from metrics.json (folds x repeats of any real split: far fewer)


DEFAULT_THRESHOLDS = Thresholds()


class Audit(BaseModel):
    """What the mechanical checks found: the facts a Review is decided from."""

    checks: dict[str, str] = Field(default_factory=dict)
    failures: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    score: float | None = None
    reported: float | None = None
    folds: list[float] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    artifacts: dict[str, str] = Field(default_factory=dict)

    def record(self, name: str, fails: Sequence[str] = (), warns: Sequence[str] = (), note: str = "") -> None:
        if fails:
            self.checks[name] = "fail: " + "; ".join(fails)
            self.failures += list(fails)
        elif warns:
            self.checks[name] = "warn: " + "; ".join(warns)
            self.warnings += list(warns)
        else:
            self.checks[name] = "pass" + (f": {note}" if note else "")

    def skip(self, name: str, why: str) -> None:
        self.checks[name] = f"skip: {why}"


def _columns_used(code_file: Path) -> set[str] | None:
    """The feature columns a pipeline-template script uses (its COLUMNS literal minus `drop`); None if unknown."""
    try:
        tree = parse_python(code_file.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "COLUMNS" for t in node.targets):
            try:
                columns = ast.literal_eval(node.value)
            except (ValueError, SyntaxError, TypeError):
                return None
            if not isinstance(columns, dict):
                return None
            used = {c for kind in ("numeric", "categorical", "datetime", "text") for c in columns.get(kind) or []}
            return used - set(columns.get("drop") or [])
    return None


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"


def _ran_failure(result: Mapping[str, Any]) -> str:
    reason = str(result.get("reason") or "unknown")
    detail = str(result.get("detail") or "").strip()
    tail = [line.strip() for line in str(result.get("stderr_tail") or "").splitlines() if line.strip()][-2:]
    text = f"the run ended with {reason!r}" + (f": {detail}" if detail else "")
    if tail:
        text += "; stderr ends: " + " | ".join(tail)
    fix = {"timeout": "make it cheaper (fewer folds, estimators or tuning trials, a row subsample)",
           "memory": "use less memory (fewer rows or features per fit, smaller models)",
           "error": "fix the error stderr shows", "killed": "find what killed it (output size, a signal)"}.get(reason)
    text = text if len(text) <= 500 else text[:480] + " ...[cut]"
    return text + (f"; {fix}" if fix else "")


def finding_line(finding: Any) -> tuple[bool, str]:
    """A critic finding (a model or a dict) as (blocking, one line for the review)."""
    get = finding.get if isinstance(finding, Mapping) else (lambda key, default=None: getattr(finding, key, default))
    text = f"critic: line {get('line', '?')}: {get('rule', 'rule')}: {get('message', '')}"
    return bool(get("blocking", True)), text


# -- the checks --------------------------------------------------------------------------------------


def audit(task: Task | str | Path, result: Mapping[str, Any], data_report: Mapping[str, Any] | None = None,
          thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Audit:
    """Run every check on one finished experiment; the facts a Review (by any brain) is decided from.

    `result` is the sandbox outcome as the workflow passes it: experiment id,
    workdir, reason, detail, stderr_tail, the critic's findings and the audit
    hook's runtime events (a touched hidden path fails the rules check; other
    events outside the experiment's world are warnings).
    """
    return _audit(task if isinstance(task, Task) else Task.load(task), result, data_report, thresholds)


def _audit(task: Task, result: Mapping[str, Any], data_report: Mapping[str, Any] | None, th: Thresholds) -> Audit:
    metric = task.metric_info
    report = dict(data_report or {})
    out = Audit()
    workdir = Path(str(result.get("workdir") or ""))
    if result.get("workdir"):
        out.artifacts = {name: str(workdir / name) for name in ARTIFACTS if (workdir / name).is_file()}

    ran = result.get("reason") == "ok"
    out.record("ran", fails=[] if ran else [_ran_failure(result)])
    if not ran:
        for name in CHECKS[1:-1]:
            out.skip(name, "the run did not finish")
        _check_rules(out, task, result, None, None, None, th)
        return out

    metrics, submission, oof, test_pred = _check_files(out, task, workdir, th)
    aligned = _check_submission(out, task, submission) if submission is not None else None
    if submission is None:
        out.skip("submission", "predictions.csv could not be read")
    try:
        weights, weights_error = class_weights(metrics, task), None
    except ArtifactError as exc:
        weights, weights_error = None, str(exc)
    y_scale, oof_kind, oof_values = _check_cv(out, task, metric, metrics, oof, th, weights, weights_error)
    _check_folds(out, metric, metrics, th)
    _check_overfit(out, metric, metrics, th)
    _check_leakage(out, metric, report, workdir, y_scale, th)
    _check_rules(out, task, result, aligned, test_pred,
                 (oof_kind, oof_values) if oof_kind and oof_values is not None else None, th, weights)
    return out


_PIXEL_BYTES = 64
"""The most an honest row of a per-pixel table takes in csv (a key such as `101_420_540`, a float)."""


def audit_pixels(task: Task, result: Mapping[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Audit:
    """The checks of an image-to-image experiment (`crew.tools.denoise`), whose tables hold a row per pixel:
    predictions.csv keys every test pixel once; the held-out pages metrics.json names are train rows, oof.csv keys
    their every pixel, and the task's metric over them, recomputed against the clean pages crew decodes itself,
    is the score (a reported CV that differs fails); and the rules, as for any experiment."""
    out = Audit()
    workdir = Path(str(result.get("workdir") or ""))
    out.artifacts = {name: str(workdir / name) for name in ARTIFACTS if (workdir / name).is_file()}
    ran = result.get("reason") == "ok"
    out.record("ran", fails=[] if ran else [_ran_failure(result)])
    if ran:
        _check_pixels(out, task, workdir)
    for name in ("folds", "overfit", "leakage"):
        out.skip(name, "one held-out score over every pixel of the held-out pages")
    _check_rules(out, task, result, None, None, None, thresholds)
    return out


def _pixel_table(workdir: Path, name: str, pixels: int) -> tuple[pl.DataFrame | None, str | None]:
    path = workdir / name
    if not path.is_file():
        return None, f"missing {name}: the script must write it in its working folder"
    if file_size(path) > pixels * _PIXEL_BYTES + 4096:
        return None, f"{name} is {file_size(path) / 1024**2:.1f} MiB, more than {pixels} pixels take: not read"
    try:
        return read_table(path), None
    except TableError as exc:
        return None, f"{name} could not be read: {exc.message}"


def _check_pixels(out: Audit, task: Task, workdir: Path) -> None:
    from PIL import Image

    assert task.data is not None and task.submission is not None and task.target is not None
    try:
        metrics = json.loads((workdir / "metrics.json").read_text(encoding="utf-8"))
        assert isinstance(metrics, dict)
    except (OSError, ValueError, AssertionError) as exc:
        out.record("files", fails=[f"metrics.json is missing or not a JSON object ({str(exc)[:120]})"])
        return
    out.metrics = metrics
    test, train = read_table(task.path(task.data.test)), read_table(task.path(task.data.train))
    test_keys = task.pixel_keys(test)
    predictions, problem = _pixel_table(workdir, "predictions.csv", test_keys.len())
    ids = train[str(task.id_column)].cast(pl.Utf8)
    named = [str(v) for v in metrics.get("holdout") or []][:train.height]
    held = train.filter(ids.is_in(pl.Series(named, dtype=pl.Utf8).implode()))
    oof, oof_problem = (_pixel_table(workdir, "oof.csv", task.pixel_keys(held).len()) if held.height
                        else (None, "metrics.json names no held-out train page (`holdout`: their ids)"))
    out.record("files", fails=[p for p in (problem, oof_problem) if p])
    if predictions is None or oof is None:
        return
    reason, _ = check_submission(task, predictions, pl.DataFrame([test_keys]))
    out.record("submission", fails=[f"predictions.csv {reason}"] if reason else [])
    reason, values = check_submission(task, oof, pl.DataFrame([task.pixel_keys(held)]))
    if reason:
        out.record("cv_recomputed", fails=[f"oof.csv {reason} (the held-out pages' pixels)"])
        return
    truth = []
    for rel in held[task.target].cast(pl.Utf8).to_list():
        with Image.open(task.path(rel)) as image:
            truth.append(np.asarray(image.convert("L"), dtype=np.float64).ravel() / 255.0)
    score = task.metric_info.score(np.concatenate(truth), values[task.submission.value].to_numpy())
    out.score, out.folds = score, [score]
    reported = metrics.get("cv")
    out.reported = float(reported) if isinstance(reported, int | float) else None
    off = out.reported is None or not math.isclose(out.reported, score, rel_tol=1e-4, abs_tol=1e-6)
    out.record("cv_recomputed", fails=[f"metrics.json reports {reported}, but oof.csv scores {score:.6f} on the "
                                       f"held-out pages"] if off else [], note=f"{score:.6f} over {len(truth)} pages")


def _check_files(out: Audit, task: Task, workdir: Path, th: Thresholds) -> tuple[dict[str, Any] | None, pl.DataFrame | None,
                                                     pl.DataFrame | None, pl.DataFrame | None]:
    fails: list[str] = []
    if not workdir.is_dir():
        out.record("files", fails=[f"the experiment folder {workdir} does not exist: nothing to review"])
        return None, None, None, None
    missing = [name for name in REQUIRED if not (workdir / name).is_file()]
    if missing:
        fails.append(f"missing {', '.join(missing)}: the script must write them in its working folder")
    limits = size_limits(task)
    oversized = {name: size for name in ARTIFACTS if (size := file_size(workdir / name)) > limits[name]}
    for name, size in oversized.items():  # never parse more than an honest file for this task could hold
        fails.append(f"{name} is {size / 1024**2:.1f} MiB; for {limits['rows_' + name]} rows an honest one is at "
                     f"most {limits[name] / 1024**2:.1f} MiB, so it was not read")
    metrics = None
    if (workdir / "metrics.json").is_file() and "metrics.json" not in oversized:
        try:
            metrics = json.loads((workdir / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            fails.append(f"metrics.json is not valid JSON ({str(exc)[:120]})")
        else:
            if not isinstance(metrics, dict):
                fails.append("metrics.json must hold an object ({\"metric\": ..., \"cv\": ..., ...})")
                metrics = None
            elif isinstance(metrics.get("folds"), list) and len(metrics["folds"]) > th.max_folds:
                fails.append(f"metrics.json lists {len(metrics['folds'])} fold scores; at most {th.max_folds} are read")
                metrics = {**metrics, "folds": []}
    tables: dict[str, pl.DataFrame | None] = {}
    for name in ("predictions.csv", "oof.csv", "test_pred.csv"):
        tables[name] = None
        if (workdir / name).is_file() and name not in oversized:
            try:
                tables[name] = read_table(workdir / name)
            except TableError as exc:
                fails.append(f"{name} could not be read: {exc.message}")
    out.record("files", fails=fails)
    return metrics, tables["predictions.csv"], tables["oof.csv"], tables["test_pred.csv"]


def _check_submission(out: Audit, task: Task, submission: pl.DataFrame) -> pl.DataFrame | None:
    answers, _ = test_ids(task)
    reason, aligned = check_submission(task, submission, answers)
    if reason is not None:
        out.record("submission", fails=[f"predictions.csv is not a valid submission: {reason}"])
        return None
    if task.metric_info.submission == "label":
        labels = set(canonical(aligned[task.target or ""]).to_list())
        unknown = sorted(labels - set(task.classes))[:3]
        if unknown:
            out.record("submission", fails=[f"predictions.csv has label(s) {unknown} that are not classes of "
                                            f"{task.target!r} ({task.classes[:10]})"])
            return None
    out.record("submission")
    return aligned


def _check_cv(out: Audit, task: Task, metric: Metric, metrics: dict[str, Any] | None, oof: pl.DataFrame | None,
              th: Thresholds, weights: np.ndarray | None = None,
              weights_error: str | None = None) -> tuple[float, str | None, np.ndarray | None]:
    if metrics is not None:
        out.metrics = metrics
        out.folds = [float(v) for v in metrics.get("folds") or []
                     if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
        cv = metrics.get("cv")
        out.reported = float(cv) if isinstance(cv, int | float) and not isinstance(cv, bool) else None
    if metrics is None or oof is None:
        out.skip("cv_recomputed", "needs metrics.json and oof.csv")
        return 1.0, None, None
    y_true, train_keys = train_targets(task)
    scale = float(np.std(y_true)) if task.target_type == "regression" and len(y_true) else 1.0
    fails: list[str] = []
    warns: list[str] = []
    if metrics.get("metric") not in (None, task.metric):
        fails.append(f"metrics.json reports {metrics.get('metric')!r}, but the task is scored by {task.metric!r}")
    if weights_error:
        fails.append(weights_error)
    try:
        positions = row_positions(oof, train_keys, len(y_true), task.id_column, "oof.csv", "train")
        kind, values = predictions(oof, task, "oof.csv")
        if len(positions) < len(y_true):
            warns.append(f"oof.csv covers {len(positions)} of {len(y_true)} train rows; the CV is only on those")
        try:
            score = metric.score(y_true[positions], metric_input(kind, values, task, metric, weights), task.classes)
        except Exception as exc:  # sklearn has many ways to refuse odd predictions
            raise ArtifactError(f"oof.csv cannot be scored with {metric.name}: {str(exc).splitlines()[0][:160]}") from None
        if not math.isfinite(score):
            raise ArtifactError(f"oof.csv scores {score} with {metric.name}: the predictions are degenerate")
    except ArtifactError as exc:
        out.record("cv_recomputed", fails=[*fails, str(exc)])
        return scale, None, None
    out.score = float(score)
    reported = out.reported
    if reported is None or not math.isfinite(reported):
        fails.append("metrics.json has no numeric `cv`: report the out-of-fold score")
    elif abs(reported - score) > th.cv_tolerance * max(1.0, abs(reported)):
        fails.append(f"reported CV does not match its out-of-fold predictions: metrics.json says {_fmt(reported)}, "
                     f"oof.csv scores {_fmt(score)} ({metric.name}); report the score of the predictions you save")
    out.record("cv_recomputed", fails=fails, warns=warns, note=f"{metric.name} {_fmt(score)}")
    return scale, kind, values


def _check_folds(out: Audit, metric: Metric, metrics: dict[str, Any] | None, th: Thresholds) -> None:
    folds = out.folds
    if metrics is None or len(folds) < 3:
        out.skip("folds", "needs at least 3 fold scores in metrics.json's `folds`")
        return
    worst: tuple[float, int, float, float] | None = None
    values = np.asarray(folds, dtype=float)
    n, total, squares = len(values), float(values.sum()), float((values**2).sum())
    for i, value in enumerate(folds):  # leave-one-out mean and spread from running sums: linear in the folds
        mean = (total - value) / (n - 1)
        std = math.sqrt(max(0.0, (squares - value**2) / (n - 1) - mean**2))
        spread = th.fold_points if metric.higher_is_better else th.fold_relative * abs(mean)
        limit = max(th.fold_stds * std, spread, 1e-9)
        ratio = abs(value - mean) / limit
        if ratio > 1 and (worst is None or ratio > worst[0]):
            worst = (ratio, i, mean, std)
    if worst is None:
        out.record("folds", note=f"{len(folds)} folds, std {_fmt(float(np.std(folds)))}")
        return
    _, i, mean, std = worst
    out.record("folds", warns=[f"fold {i + 1} of {len(folds)} scored {_fmt(folds[i])} against {_fmt(mean)} +- "
                               f"{_fmt(std)} for the others: look for a shift, duplicates or a bad split in that "
                               "fold before trusting the mean"])


def _check_overfit(out: Audit, metric: Metric, metrics: dict[str, Any] | None, th: Thresholds) -> None:
    train = (metrics or {}).get("train_score")
    cv = out.score if out.score is not None else out.reported
    if not isinstance(train, int | float) or isinstance(train, bool) or not math.isfinite(train) or cv is None:
        out.skip("overfit", "needs metrics.json's `train_score` and a CV score")
        return
    note = f"train {_fmt(float(train))} vs CV {_fmt(cv)}"
    if metric.higher_is_better:
        gap = train - cv
        far, apart = gap > th.overfit_points, f"{gap:.3g} points apart"
    else:
        gap = cv - train
        far, apart = gap > th.overfit_lower * abs(cv), f"{gap / max(abs(cv), 1e-12):.0%} apart"
    if far:
        out.record("overfit", warns=[f"overfitting: {note} ({apart}): regularise (shallower trees, more leaf "
                                     "samples, stronger penalty) or use fewer features"])
    else:
        out.record("overfit", note=note)


def _near_perfect(metric: Metric, score: float, y_scale: float, th: Thresholds) -> bool:
    """Within a hair of the metric's best possible score (the metric's own `best`; none known: never)."""
    if metric.best is None:
        return False
    if metric.higher_is_better:
        return score >= metric.best - th.near_perfect
    if metric.submission == "proba":  # a probability loss: its floor is reached only by certain, right answers
        return score <= metric.best + th.near_perfect_log_loss
    if metric.nonnegative:  # a loss on the log scale already
        return score <= metric.best + th.near_perfect
    return score <= metric.best + th.near_perfect * max(y_scale, 1e-12)


def _check_leakage(out: Audit, metric: Metric, report: Mapping[str, Any], workdir: Path, y_scale: float,
                   th: Thresholds) -> None:
    raw = report.get("leakage_suspects") or []
    suspects = [str(s) for s in (raw.keys() if isinstance(raw, Mapping) else raw)]
    if not suspects:
        out.record("leakage", note="no leakage suspects")
        return
    score = out.score if out.score is not None else out.reported
    if score is None:
        out.skip("leakage", f"suspects {suspects} but no CV score to judge them by")
        return
    used = _columns_used(workdir / "code.py")
    dropped = {str(c) for c in report.get("drop_columns") or []}
    in_model = [s for s in suspects if s in used] if used is not None else [s for s in suspects if s not in dropped]
    if in_model and _near_perfect(metric, score, y_scale, th):
        out.record("leakage", warns=[f"leakage confirmed: CV {_fmt(score)} is near the best possible {metric.name} "
                                     f"with suspect column(s) {in_model} in the model; drop them "
                                     "(drop_leakage_suspects) unless they are known at prediction time"])
    elif in_model:
        out.record("leakage", note=f"cleared: suspect(s) {in_model} used, but CV {_fmt(score)} is not near perfect")
    else:
        out.record("leakage", note=f"cleared: suspect(s) {suspects} not used by the model")


def _check_rules(out: Audit, task: Task, result: Mapping[str, Any], aligned: pl.DataFrame | None,
                 test_pred: pl.DataFrame | None, oof: tuple[str, np.ndarray] | None, th: Thresholds,
                 weights: np.ndarray | None = None) -> None:
    fails: list[str] = []
    warns: list[str] = []
    for finding in result.get("findings") or []:
        blocking, text = finding_line(finding)
        (fails if blocking else warns).append(text)
    for event in result.get("audit") or []:  # the sandbox's audit hook: what the run did, not what the code says
        if isinstance(event, Mapping) and event.get("level") in ("fail", "warn"):
            text = f"runtime: {event.get('event')}: {event.get('detail')}"
            (fails if event["level"] == "fail" else warns).append(text)
    ran = result.get("reason") == "ok"
    if ran and aligned is not None:
        if test_pred is None:
            warns.append("no test_pred.csv: cannot confirm that predictions.csv comes from the model; write the "
                         "model's raw test predictions there (it also lets the final step ensemble)")
        else:
            try:
                _compare_to_model(task, aligned, test_pred, th, weights)
            except ArtifactError as exc:
                fails.append(str(exc))
    if oof is not None and is_constant(*oof):
        # Constant predictions are a useless model, not a dishonest one: its CV is the true (baseline) score.
        warns.append("oof predictions are all identical: the model learned nothing (a constant baseline at best); "
                     "check that the features reach the model")
    out.record("rules", fails=fails, warns=warns)


def _compare_to_model(task: Task, aligned: pl.DataFrame, test_pred: pl.DataFrame, th: Thresholds,
                      weights: np.ndarray | None = None) -> None:
    """Raise unless predictions.csv is what test_pred.csv implies (the model's output, not a hand-written file),
    labels decided with the experiment's class `weights` when it reports some."""
    metric = task.metric_info
    _, keys = test_ids(task)
    n = aligned.height
    positions = row_positions(test_pred, keys, n, task.id_column, "test_pred.csv", "test")
    if len(positions) != n:
        raise ArtifactError(f"test_pred.csv covers {len(positions)} of {n} test rows: write the model's prediction for each")
    kind, values = predictions(test_pred, task, "test_pred.csv")
    ordered = np.empty_like(values)
    ordered[positions] = values
    target = task.target or ""
    if metric.submission == "label":
        submitted = canonical(aligned[target]).to_numpy()
        if kind == "label":
            differ = submitted != ordered
        else:
            ordered = ordered if weights is None else ordered * weights
            index = {label: i for i, label in enumerate(task.classes)}
            chosen = np.array([index.get(label, -1) for label in submitted])
            picked = np.where(chosen >= 0, ordered[np.arange(n), np.maximum(chosen, 0)], -np.inf)
            differ = picked < ordered.max(axis=1) - 1e-9  # a tie between classes may go either way
            ordered = np.asarray(task.classes, dtype=object)[ordered.argmax(axis=1)]
    else:
        if kind == "proba" and task.target_type == "binary":
            ordered = ordered[:, task.classes.index(positive_label(task.classes))]
        elif kind == "proba":
            ordered = ordered / np.where(ordered.sum(axis=1, keepdims=True) > 0, ordered.sum(axis=1, keepdims=True), 1)
        elif metric.nonnegative:
            ordered = np.clip(ordered, 0, None)
        columns = [c for c in task.submission_columns() if c != task.id_column]
        submitted = aligned.select(columns).cast(pl.Float64).to_numpy()
        if ordered.ndim == 1:
            submitted = submitted[:, 0]
        else:
            sums = submitted.sum(axis=1, keepdims=True)
            submitted = submitted / np.where(sums > 0, sums, 1)
        close = np.isclose(submitted, ordered, atol=th.prediction_atol, rtol=th.prediction_rtol)
        differ = ~close if close.ndim == 1 else ~close.all(axis=1)
    bad = np.flatnonzero(differ)
    if bad.size:
        i = int(bad[0])
        where = f"id {aligned[task.id_column][i]}" if task.id_column else f"row {i}"
        got, want = submitted[i], ordered[i]
        if isinstance(got, np.ndarray):
            got, want = np.round(got, 4).tolist(), np.round(np.asarray(want, dtype=float), 4).tolist()
        raise ArtifactError(f"predictions do not come from the model's output: {bad.size} of {n} rows of predictions.csv "
                    f"differ from what test_pred.csv implies (e.g. {where}: submitted {got}, the model gave {want}); "
                    "write the submission from the fitted model's test predictions")
