"""`crew export-mlflow` and `solve --mlflow`: a run lands in a real local MLflow store, once, with its code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from crew import Blackboard, CrewError, Experiment
from crew.testing import tiny_task
from crew.workflows.mlflow_export import export_mlflow

pytestmark = pytest.mark.e2e  # whole solves, suites or clusters: not in the fast tier

mlflow = pytest.importorskip("mlflow")


def _store(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _children(client, experiment_id):
    return client.search_runs([experiment_id], filter_string="tags.`crew.experiment_id` != ''", max_results=1000)


def _board(run_dir):
    board = Blackboard(run_dir / "blackboard.sqlite")
    board.set_task("toy", {"name": "toy", "kind": "tabular", "metric": "rmse", "output": "submission.csv"})
    code = "print('model a')\n"
    board.add_experiment(Experiment(id="a", insights=["ridge"], code=code, status="done", score=3.5,
                                        cv_folds=[3.0, 4.0], spec={"model": "ridge", "params": {"alpha": 1.0},
                                                                  "numeric": ["x"], "folds": 2},
                                        metrics={"cv_std": 0.5}, wall_time=2.0, peak_memory=64 * 1024**2,
                                        estimate={"seconds": 4.0, "memory": 100 * 1024**2, "basis": "ridge: 2 fits"},
                                        finished_at=None))
    (run_dir / "experiments" / "a").mkdir(parents=True)
    (run_dir / "experiments" / "a" / "code.py").write_text(code, encoding="utf-8")
    board.add_experiment(Experiment(id="b", parent="a", insights=["ridge", "tune"], code="boom()\n", status="failed",
                                    spec={"model": "ridge"}, error="NameError: boom", wall_time=0.5))
    board.add_experiment(Experiment(id="c", parent="a", insights=["ridge", "bag"], status="rejected",
                                    spec={"model": "ridge"}, error="critic: 900s > 60s left"))
    board.add_experiment(Experiment(id="d", parent="a", insights=["ridge", "more"], status="proposed",
                                    spec={"model": "ridge"}))
    return board


def test_each_finished_experiment_becomes_a_child_run_with_params_metrics_and_code(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _board(run_dir)
    out = export_mlflow(run_dir, tracking_uri=_store(tmp_path))
    assert (out["logged"], out["experiment"]) == (3, "crew/toy")  # the proposed one is not a result yet
    client = mlflow.MlflowClient(_store(tmp_path))
    runs = {r.data.tags["crew.experiment_id"]: r for r in _children(client, out["experiment_id"])}
    assert set(runs) == {"a", "b", "c"}
    a = runs["a"]
    assert a.data.tags["mlflow.parentRunId"] == out["parent_run_id"]
    assert a.info.status == "FINISHED" and runs["b"].info.status == "FAILED" and runs["c"].info.status == "KILLED"
    assert a.data.metrics["cv_rmse"] == 3.5 and a.data.metrics["cv_std"] == 0.5
    assert a.data.metrics["critic_estimate_s"] == 4.0 and a.data.metrics["actual_over_estimate"] == 0.5
    assert a.data.metrics["peak_memory_mib"] == 64.0
    assert [m.value for m in client.get_metric_history(a.info.run_id, "fold_score")] == [3.0, 4.0]
    assert a.data.params["model"] == "ridge" and a.data.params["params.alpha"] == "1.0"
    assert "numeric" not in a.data.params  # the task's columns are not a design choice
    assert a.data.tags["crew.critic_basis"] == "ridge: 2 fits"
    assert runs["b"].data.tags["crew.error"] == "NameError: boom" and runs["b"].data.tags["crew.parent"] == "a"
    code = client.download_artifacts(a.info.run_id, "code.py", str(tmp_path))
    assert Path(code).read_text() == "print('model a')\n"
    # the artifacts sit beside the database, not wherever the command ran
    assert (tmp_path / "mlartifacts").is_dir()
    parent = client.get_run(out["parent_run_id"])
    assert parent.data.params["metric"] == "rmse" and parent.data.metrics["best_rmse"] == 3.5
    assert parent.info.status == "KILLED"  # this run never reached final selection


def test_exporting_again_adds_only_what_the_run_did_since(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    board = _board(run_dir)
    first = export_mlflow(run_dir, tracking_uri=_store(tmp_path))
    again = export_mlflow(run_dir, tracking_uri=_store(tmp_path))
    assert again["logged"] == 0 and again["parent_run_id"] == first["parent_run_id"]
    board.update_experiment("d", status="done", score=3.1)
    board.set_meta("final", {"kind": "single", "rationale": "d is best"})
    later = export_mlflow(run_dir, tracking_uri=_store(tmp_path))
    assert later["logged"] == 1 and later["parent_run_id"] == first["parent_run_id"]
    client = mlflow.MlflowClient(_store(tmp_path))
    assert len(_children(client, first["experiment_id"])) == 4
    parent = client.get_run(first["parent_run_id"])
    assert parent.data.metrics["best_rmse"] == 3.1 and parent.info.status == "FINISHED"
    assert parent.data.tags["mlflow.note.content"] == "d is best"


def test_bad_folders_stores_and_a_missing_mlflow_say_the_fix(tmp_path, monkeypatch):
    with pytest.raises(CrewError, match=r"not a crew run folder.*fix"):
        export_mlflow(tmp_path, tracking_uri=_store(tmp_path))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _board(run_dir)
    with pytest.raises(CrewError, match=r"--tracking-uri ftp://nowhere: MLflow refused.*fix: pass a sqlite"):
        export_mlflow(run_dir, tracking_uri="ftp://nowhere")
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an install without the extra looks like
    with pytest.raises(CrewError, match=r"pip install 'crew\[mlflow\]'"):
        export_mlflow(run_dir, tracking_uri=_store(tmp_path))


def test_solve_with_mlflow_logs_the_run_and_export_mlflow_names_the_store(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _store(tmp_path))
    task = tiny_task(tmp_path / "task")
    task.write_text(task.read_text() + "budget:\n  wall_time: 60s\n  max_experiments: 4\n")
    out = tmp_path / "run"
    result = cli("solve", task, "--out", out, "--workers", "1", "--quiet", "--mlflow")
    assert result.exit_code == 0, result.output
    assert f"to {_store(tmp_path)}" in result.stdout
    board = Blackboard(out / "blackboard.sqlite")
    finished = [e for e in board.experiments() if e.status not in ("proposed", "running")]
    client = mlflow.MlflowClient(_store(tmp_path))
    experiment = client.get_experiment_by_name("crew/tiny")
    children = _children(client, experiment.experiment_id)
    assert len(children) == len(finished) > 0
    best = board.best(1, higher_is_better=True)[0]
    top = max((r for r in children if "cv_roc_auc" in r.data.metrics), key=lambda r: r.data.metrics["cv_roc_auc"])
    assert top.data.metrics["cv_roc_auc"] == pytest.approx(best.score)
    code = client.download_artifacts(top.info.run_id, "code.py", str(tmp_path))
    assert Path(code).read_text() == (out / "experiments" / top.data.tags["crew.experiment_id"] / "code.py").read_text()
    parent = client.get_run(children[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED"
    assert "submission.csv" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    result = cli("export-mlflow", out)
    assert result.exit_code == 0, result.output
    assert "0 experiments logged" in result.stdout and f"--backend-store-uri {_store(tmp_path)}" in result.stdout
    assert len(_children(client, experiment.experiment_id)) == len(finished)
