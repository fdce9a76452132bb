"""`export_mlflow`: a finished (or killed) run folder logged to MLflow, one MLflow run per experiment.

Why MLflow: teams already compare models there, and a crew run is a
family of experiments with parameters, fold scores and code, which is
exactly what an MLflow run holds. The crew run becomes a parent MLflow run
(task, metric, budget, best score, final selection, submission); each
experiment a nested child run with its design as params, its scores and
costs as metrics, the critic's estimate beside them, and `code.py` as an
artifact. Exporting twice logs nothing twice: runs carry
`crew.run_key`/`crew.experiment_id` tags and are skipped when present, so
a resumed run can be exported again to add what it did since.

The store: `MLFLOW_TRACKING_URI`, else `sqlite:///mlflow.db` in the
working folder, MLflow 3's own default, the one `mlflow ui` opens there.
With a SQLite store, artifacts go to `mlartifacts/` beside the database
file rather than wherever the command happened to run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from crew import Blackboard, CrewError, Experiment

__all__ = ["default_tracking_uri", "export_mlflow", "require_mlflow"]

_STATUS = {"done": "FINISHED", "cached": "FINISHED", "failed": "FAILED", "rejected": "KILLED",
           "proposed": "SCHEDULED", "running": "RUNNING"}
_VALUE_LIMIT = 500  # MLflow takes 6000 characters a param; a table cell is unreadable long before that


def default_tracking_uri() -> str:
    """Where an export goes when no URI is given: MLflow's own default, so `mlflow ui` finds it."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def require_mlflow() -> Any:
    """The mlflow module, or a CrewError naming the extra to install (checked before a run, not after it)."""
    try:
        import mlflow
    except ImportError as exc:
        raise CrewError("MLflow export needs mlflow-skinny with SQLAlchemy; fix: pip install 'crew[mlflow]'") from exc
    return mlflow


def _flat(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, inner in sorted(value.items()):
            yield from _flat(f"{prefix}.{key}" if prefix else str(key), inner)
        return
    if isinstance(value, (list, tuple)):
        text = ",".join(str(v) for v in value)
    else:
        text = "" if value is None else str(value)
    yield prefix, text[:_VALUE_LIMIT]


def _params(e: Experiment) -> dict[str, str]:
    spec = dict(e.spec)
    # the columns are the task's, the same in every experiment: they would only crowd the table
    for key in ("numeric", "categorical", "datetime", "text", "features", "drop"):
        spec.pop(key, None)
    params = dict(_flat("", spec))
    tuned = e.metrics.get("params")
    if isinstance(tuned, Mapping) and tuned != e.spec.get("params"):
        params.update(_flat("tuned", tuned))  # what tuning chose, beside what the modeler asked for
    params["insights"] = " + ".join(e.insights)[:_VALUE_LIMIT]
    params["stage"] = e.stage
    return {k: v for k, v in params.items() if k}


def _metrics(e: Experiment, metric: str) -> dict[str, float]:
    out: dict[str, float] = {}
    if e.score is not None:
        out[f"cv_{metric}"] = float(e.score)
    for key in ("cv_mean", "cv_std", "train_score"):
        if isinstance(e.metrics.get(key), (int, float)):
            out[key] = float(e.metrics[key])
    if e.wall_time is not None:
        out["wall_time_s"] = float(e.wall_time)
    if e.peak_memory:
        out["peak_memory_mib"] = e.peak_memory / 1024**2
    estimate = e.estimate or {}
    if isinstance(estimate.get("seconds"), (int, float)):
        out["critic_estimate_s"] = float(estimate["seconds"])
        if e.wall_time:
            out["actual_over_estimate"] = e.wall_time / estimate["seconds"] if estimate["seconds"] else 0.0
    if isinstance(estimate.get("memory"), (int, float)):
        out["critic_estimate_memory_mib"] = estimate["memory"] / 1024**2
    return out


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def _artifact_root(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return None


def export_mlflow(run_dir: str | Path, *, tracking_uri: str | None = None,
                  experiment_name: str | None = None) -> dict[str, Any]:
    """Log the run folder to MLflow and say where: the tracking URI, MLflow experiment, parent run, counts.

    `experiment_name` defaults to `crew/<task name>`, so runs of one task
    sit side by side in the MLflow UI whichever crew run produced them.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "blackboard.sqlite").is_file():
        raise CrewError(f"{run_dir}: not a crew run folder (no blackboard.sqlite); fix: pass the folder "
                        "`crew solve` wrote, e.g. runs/<task>-<time>")
    mlflow = require_mlflow()
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    from crew.workflows.report import _summary  # the header `crew report` shows, from the experiments read here

    uri = tracking_uri or default_tracking_uri()
    board = Blackboard(run_dir / "blackboard.sqlite")
    experiments = board.experiments()
    summary = _summary(board, run_dir, experiments)
    metric = summary["metric"] or "score"
    run_key = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:16]
    name = experiment_name or f"crew/{summary['task']}"
    try:
        client = mlflow.MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(name)
        experiment_id = found.experiment_id if found else client.create_experiment(
            name, artifact_location=_artifact_root(uri), tags={"crew.task": summary["task"]})
        existing = {r.data.tags.get("crew.experiment_id", ""): r for r in client.search_runs(
            [experiment_id], filter_string=f"tags.`crew.run_key` = '{run_key}'", max_results=50_000)}
    except MlflowException as exc:
        raise CrewError(f"--tracking-uri {uri}: MLflow refused the store ({str(exc).splitlines()[0][:300]}); fix: "
                        "pass a sqlite:///PATH.db or http://HOST:PORT URI (a file: store also needs "
                        "MLFLOW_ALLOW_FILE_STORE=true since MLflow 3.7)") from exc

    parent = existing.get("")
    if parent is None:
        saved = json.loads((run_dir / "run.json").read_text(encoding="utf-8")) if (run_dir / "run.json").exists() else {}
        first = min((e.created_at for e in experiments), default=None)
        parent = client.create_run(experiment_id, start_time=_ms(first), run_name=run_dir.name,
                                   tags={"crew.run_key": run_key, "crew.experiment_id": "", "crew.run_dir": str(run_dir.resolve()),
                                         "crew.kind": str(summary["kind"])})
        run_params = {"task": summary["task"], "metric": metric, "higher_is_better": summary["higher_is_better"],
                      **{k: saved[k] for k in ("strategy", "seed", "workers", "wall_time", "max_experiments") if k in saved}}
        client.log_batch(parent.info.run_id, params=[Param(k, str(v)[:_VALUE_LIMIT]) for k, v in run_params.items()])
    parent_id = parent.info.run_id

    logged = 0
    for e in experiments:
        if e.id in existing or e.status in ("proposed", "running"):
            continue  # already exported, or not yet anything to log (a resumed run's export adds it later)
        child = client.create_run(experiment_id, start_time=_ms(e.created_at), run_name=f"{e.id} {'+'.join(e.insights)}"[:250],
                                  tags={MLFLOW_PARENT_RUN_ID: parent_id, "crew.run_key": run_key,
                                        "crew.experiment_id": e.id, "crew.parent": e.parent or "",
                                        "crew.status": e.status, "crew.model": str(e.spec.get("model", ""))})
        at = _ms(e.finished_at or e.created_at) or 0
        metrics = [Metric(k, v, at, 0) for k, v in _metrics(e, metric).items()]
        metrics += [Metric("fold_score", float(v), at, i) for i, v in enumerate(e.cv_folds or e.metrics.get("folds") or [])
                    if isinstance(v, (int, float))]
        tags = [RunTag("crew.error", e.error[:5000])] if e.error else []
        if e.estimate.get("basis"):
            tags.append(RunTag("crew.critic_basis", str(e.estimate["basis"])[:5000]))
        client.log_batch(child.info.run_id, metrics=metrics, params=[Param(k, v) for k, v in _params(e).items()],
                         tags=tags)
        code = run_dir / "experiments" / e.id / "code.py"
        if code.is_file():
            client.log_artifact(child.info.run_id, str(code))
        elif e.code:
            client.log_text(child.info.run_id, e.code, "code.py")
        client.set_terminated(child.info.run_id, _STATUS[e.status], end_time=_ms(e.finished_at or e.created_at))
        logged += 1

    # the parent's summary is refreshed on every export: a resumed run may have a new best
    if summary["best"] is not None:
        client.log_metric(parent_id, f"best_{metric}", float(summary["best"]))
    client.log_metric(parent_id, "experiments", float(len(experiments)))
    client.log_metric(parent_id, "elapsed_s", float(summary["elapsed"]))
    final = summary["final"]
    if final:
        client.set_tag(parent_id, "crew.final", json.dumps({k: final.get(k) for k in ("kind", "rationale")})[:5000])
        client.set_tag(parent_id, "mlflow.note.content", str(final.get("rationale", ""))[:5000])
    output = (board.task() or {}).get("spec", {}).get("output") or "submission.csv"
    for extra in ("run.json", output, "data_report.md", "report.html"):
        if (run_dir / extra).is_file():
            client.log_artifact(parent_id, str(run_dir / extra))
    client.set_terminated(parent_id, "FINISHED" if final else "KILLED",
                          end_time=_ms(max((e.finished_at or e.created_at for e in experiments), default=None)))
    return {"tracking_uri": uri, "experiment": name, "experiment_id": experiment_id, "parent_run_id": parent_id,
            "logged": logged, "skipped": len(experiments) - logged}
