"""The reviewer: honest results pass with their recomputed CV; lies, hand-written or broken submissions are rejected."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import polars as pl
import pytest

from crew import Blackboard, ChatBrain, Experiment, Task
from crew.roles.reviewer import CHECKS, Review, Reviewer, Thresholds, audit
from crew.testing import ScriptedChatModel, check_role
from crew.tools.pipelines import PipelineSpec, render
from tests.conftest import EXAMPLE_TASK

TASK_YAML = EXAMPLE_TASK / "task.yaml"
REPORT = {"leakage_suspects": [], "drop_columns": ["id"]}


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    """One real run of a rendered pipeline script on the example task (no sandbox needed)."""
    task = Task.load(TASK_YAML)
    header = pl.read_csv(task.path(task.data.train), n_rows=1).columns
    numeric = [c for c in header if c not in (task.id_column, task.target)]
    folder = tmp_path_factory.mktemp("honest")
    (folder / "code.py").write_text(render(PipelineSpec(model="linear", numeric=numeric), task), encoding="utf-8")
    run = subprocess.run([sys.executable, "code.py"], cwd=folder, env={**os.environ, "CREW_DATA": str(task.root.resolve())},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return folder


@pytest.fixture
def run_dir(honest, tmp_path):
    """A copy of the honest run to tamper with."""
    return shutil.copytree(honest, tmp_path / "run")


def _metrics(folder):
    return json.loads((folder / "metrics.json").read_text())


def _edit_metrics(folder, **fields):
    (folder / "metrics.json").write_text(json.dumps({**_metrics(folder), **fields}))


def _review(folder, tmp_path, *, board=None, report=REPORT, reviewer=None, **result):
    board = board or Blackboard(tmp_path / "bb.sqlite")
    state = {"task": str(TASK_YAML), "data_report": report,
             "result": {"experiment": "e1", "workdir": str(folder), "reason": "ok", "detail": "", "stderr_tail": "",
                        "findings": [], **result}}
    return (reviewer or Reviewer(blackboard=board))(state)["review"]


def test_reviewer_passes_check_role():
    check_role(Reviewer())


def test_honest_run_is_accepted_with_its_recomputed_cv(run_dir, tmp_path):
    review = _review(run_dir, tmp_path)
    assert review["accepted"] is True and review["experiment"] == "e1"
    assert review["score"] == pytest.approx(_metrics(run_dir)["cv"], abs=1e-12)
    assert list(review["checks"]) == list(CHECKS)
    assert all(value.startswith("pass") for value in review["checks"].values()), review["checks"]
    assert review["issues"] == []
    assert Review.model_validate({k: v for k, v in review.items() if k != "experiment"}).summary().startswith(
        "reviewer: accepted")


def test_a_falsified_cv_is_rejected(run_dir, tmp_path):
    _edit_metrics(run_dir, cv=_metrics(run_dir)["cv"] - 0.02)
    review = _review(run_dir, tmp_path)
    assert review["accepted"] is False
    assert review["checks"]["cv_recomputed"].startswith("fail")
    assert "reported CV does not match its out-of-fold predictions" in review["issues"][0]


def test_hand_written_predictions_are_rejected(run_dir, tmp_path):
    sub = pl.read_csv(run_dir / "predictions.csv")
    sub.with_columns((pl.col("malignant") > 0.5).cast(pl.Int64)).write_csv(run_dir / "predictions.csv")
    review = _review(run_dir, tmp_path)
    assert review["accepted"] is False and review["checks"]["submission"] == "pass"
    assert review["checks"]["rules"].startswith("fail")
    assert any("predictions do not come from the model's output" in issue for issue in review["issues"])


def test_rounding_the_submission_is_not_an_edit(run_dir, tmp_path):
    sub = pl.read_csv(run_dir / "predictions.csv")
    sub.with_columns(pl.col("malignant").round(5)).write_csv(run_dir / "predictions.csv")
    assert _review(run_dir, tmp_path)["accepted"] is True


@pytest.mark.parametrize("name", ["oof.csv", "metrics.json", "predictions.csv"])
def test_a_missing_file_is_rejected(run_dir, tmp_path, name):
    (run_dir / name).unlink()
    review = _review(run_dir, tmp_path)
    assert review["accepted"] is False
    assert review["checks"]["files"].startswith("fail") and name in review["issues"][0]


def test_wrong_row_count_is_rejected(run_dir, tmp_path):
    sub = pl.read_csv(run_dir / "predictions.csv")
    sub.head(sub.height - 1).write_csv(run_dir / "predictions.csv")
    review = _review(run_dir, tmp_path)
    assert review["accepted"] is False and review["checks"]["submission"].startswith("fail")
    assert f"has {sub.height - 1} rows, expected {sub.height}" in review["issues"][0]


def test_duplicated_ids_and_out_of_range_probabilities_are_rejected(run_dir, tmp_path):
    sub = pl.read_csv(run_dir / "predictions.csv")
    ids = sub["id"].to_list()
    sub.with_columns(pl.Series("id", [ids[0]] + ids[1:-1] + [ids[0]])).write_csv(run_dir / "predictions.csv")
    assert "duplicated id" in _review(run_dir, tmp_path)["issues"][0]
    sub.with_columns(pl.col("malignant") * 2).write_csv(run_dir / "predictions.csv")
    assert "probabilities must lie in [0, 1]" in _review(run_dir, tmp_path)["issues"][0]


def test_a_timeout_is_rejected_with_its_detail(run_dir, tmp_path):
    review = _review(run_dir, tmp_path, reason="timeout", detail="killed after its wall-time limit of 120s",
                     stderr_tail="fitting fold 3\nTraceback (most recent call last):\nKeyboardInterrupt\n")
    assert review["accepted"] is False and review["checks"]["ran"].startswith("fail")
    assert "killed after its wall-time limit of 120s" in review["issues"][0]
    assert "KeyboardInterrupt" in review["issues"][0]
    assert review["checks"]["cv_recomputed"].startswith("skip")


def test_a_blocking_critic_finding_is_rejected(run_dir, tmp_path):
    finding = {"rule": "reads_answers", "line": 12, "message": "opens grading/answers.csv", "blocking": True}
    review = _review(run_dir, tmp_path, findings=[finding])
    assert review["accepted"] is False and review["checks"]["rules"].startswith("fail")
    assert "reads_answers" in review["issues"][0]
    advisory = {**finding, "rule": "slow_loop", "message": "a Python loop over rows", "blocking": False}
    review = _review(run_dir, tmp_path, findings=[advisory])
    assert review["accepted"] is True and review["checks"]["rules"].startswith("warn")


def test_a_fold_far_off_is_a_warning_not_a_rejection(run_dir, tmp_path):
    folds = _metrics(run_dir)["folds"]
    folds[2] = 0.5
    _edit_metrics(run_dir, folds=folds)
    review = _review(run_dir, tmp_path)
    assert review["accepted"] is True
    assert review["checks"]["folds"].startswith("warn") and "fold 3 of 5" in review["checks"]["folds"]
    assert any(issue.startswith("warning: fold 3") for issue in review["issues"])


def test_the_reviewer_takes_where_its_lines_are_drawn_as_a_parameter(run_dir, tmp_path):
    folds = _metrics(run_dir)["folds"]
    folds[2] -= 0.05  # inside the default 0.1 points, outside a stricter line
    _edit_metrics(run_dir, folds=folds)
    assert _review(run_dir, tmp_path)["checks"]["folds"].startswith("pass")
    strict = Reviewer(blackboard=Blackboard(tmp_path / "strict.sqlite"), thresholds=Thresholds(fold_points=0.01,
                                                                                                fold_stds=0.5))
    assert strict.get_params()["thresholds"].fold_points == 0.01
    assert _review(run_dir, tmp_path, reviewer=strict)["checks"]["folds"].startswith("warn")


def test_constant_predictions_warn_but_pass(run_dir, tmp_path):
    for name in ("oof.csv", "test_pred.csv"):
        frame = pl.read_csv(run_dir / name)
        frame.with_columns(pl.lit(0.4).alias("0"), pl.lit(0.6).alias("1")).write_csv(run_dir / name)
    pl.read_csv(run_dir / "predictions.csv").with_columns(pl.lit(0.6).alias("malignant")).write_csv(
        run_dir / "predictions.csv")
    _edit_metrics(run_dir, cv=0.5)
    review = _review(run_dir, tmp_path)
    assert review["accepted"] is True and review["score"] == pytest.approx(0.5)
    assert "all identical" in review["checks"]["rules"]


def test_leakage_is_confirmed_only_for_a_near_perfect_cv_with_the_suspect_in_use(run_dir, tmp_path):
    report = {"leakage_suspects": ["worst_radius"], "drop_columns": ["id"]}
    assert _review(run_dir, tmp_path, report=report)["checks"]["leakage"].startswith("pass: cleared")
    truth = pl.read_csv(EXAMPLE_TASK / "data" / "train.csv", columns=["id", "malignant"])
    perfect = truth.select("id", (1 - pl.col("malignant")).cast(pl.Float64).alias("0"),
                           pl.col("malignant").cast(pl.Float64).alias("1"))
    perfect.write_csv(run_dir / "oof.csv")
    _edit_metrics(run_dir, cv=1.0)
    review = _review(run_dir, tmp_path, report=report)
    assert review["accepted"] is True and review["checks"]["leakage"].startswith("warn: leakage confirmed")
    code = (run_dir / "code.py").read_text()
    (run_dir / "code.py").write_text(code.replace("'drop': []", "'drop': ['worst_radius']"))
    assert _review(run_dir, tmp_path, report=report)["checks"]["leakage"].startswith("pass: cleared")


def test_the_blackboard_experiment_is_updated(run_dir, tmp_path):
    board = Blackboard(tmp_path / "bb.sqlite")
    board.add_experiment(Experiment(id="e1", code="print(1)", status="running"))
    review = _review(run_dir, tmp_path, board=board, wall_time=3.5)
    exp = board.experiment("e1")
    metrics = _metrics(run_dir)
    assert exp.status == "done" and exp.score == review["score"] == pytest.approx(metrics["cv"])
    assert exp.cv_folds == metrics["folds"] and exp.metrics["cv"] == metrics["cv"] and exp.wall_time == 3.5
    assert set(exp.artifacts) == {"metrics.json", "predictions.csv", "oof.csv", "test_pred.csv"}
    assert exp.error is None
    assert board.messages(sent_from="reviewer")[-1].send_to == ["*"]

    board.add_experiment(Experiment(id="e2", code="print(2)", status="running"))
    (run_dir / "oof.csv").unlink()
    _review(run_dir, tmp_path, board=board, experiment="e2")
    failed = board.experiment("e2")
    assert failed.status == "failed" and "oof.csv" in (failed.error or "")
    assert board.messages(sent_from="reviewer")[-1].send_to == ["modeler", "planner"]
    assert [e.id for e in board.best(5, higher_is_better=True)] == ["e1"]


def test_a_chat_brain_cannot_accept_a_failed_check(run_dir, tmp_path):
    _edit_metrics(run_dir, cv=0.999)
    board = Blackboard(tmp_path / "bb.sqlite")
    board.add_experiment(Experiment(id="e1", code="x = 1"))
    lenient = Review(rationale="looks fine", accepted=True, score=0.999).model_dump_json()
    reviewer = Reviewer(brain=ChatBrain(ScriptedChatModel(answers=[lenient]), prices={"scripted": (0.0, 0.0)}),
                        blackboard=board)
    review = _review(run_dir, tmp_path, board=board, reviewer=reviewer)
    assert review["accepted"] is False and review["score"] != 0.999
    assert "reported CV does not match" in review["issues"][0]
    assert board.experiment("e1").status == "failed"
    assert board.messages(kind="reviewer.override")


def test_a_task_without_ids_aligns_by_row(tmp_path):
    """Regression without an id column: oof.csv's `row` column, the submission in test order."""
    data = tmp_path / "task" / "data"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    pl.DataFrame({"x": x[:30], "y": 2 * x[:30] + 1}).write_csv(data / "train.csv")
    pl.DataFrame({"x": x[30:]}).write_csv(data / "test.csv")
    (tmp_path / "task" / "task.yaml").write_text("name: lin\nkind: tabular\ndata:\n  train: data/train.csv\n"
                                                 "  test: data/test.csv\ntarget: y\nmetric: rmse\n")
    task = Task.load(tmp_path / "task")
    run = tmp_path / "run"
    run.mkdir()
    oof = 2 * x[:30] + 1 + rng.normal(scale=0.1, size=30)
    order = rng.permutation(30)
    pl.DataFrame({"row": order, "y": oof[order]}).write_csv(run / "oof.csv")
    pl.DataFrame({"row": np.arange(10), "y": 2 * x[30:] + 1}).write_csv(run / "test_pred.csv")
    pl.DataFrame({"y": 2 * x[30:] + 1}).write_csv(run / "predictions.csv")
    cv = float(np.sqrt(np.mean((oof - (2 * x[:30] + 1)) ** 2)))
    (run / "metrics.json").write_text(json.dumps({"metric": "rmse", "cv": cv, "folds": [cv] * 3, "train_score": cv}))
    result = {"experiment": "r", "workdir": str(run), "reason": "ok", "findings": []}
    found = audit(task, result, {})
    assert found.failures == [] and found.score == pytest.approx(cv)
    pl.DataFrame({"y": (2 * x[30:] + 1)[::-1]}).write_csv(run / "predictions.csv")
    assert "do not come from the model's output" in audit(task, result, {}).failures[0]


def test_ninety_thousand_fold_scores_are_refused_in_linear_time(run_dir, tmp_path):
    # attack: a metrics.json listing 90,000 fold scores made the review quadratic (211 s); expected: caught, fast
    _edit_metrics(run_dir, folds=[0.9] * 90_000)
    started = time.monotonic()
    review = _review(run_dir, tmp_path)
    assert time.monotonic() - started < 10
    assert review["accepted"] is False and any("90000 fold scores" in issue for issue in review["issues"])


def test_an_oversized_artifact_is_not_parsed(run_dir, tmp_path):
    # attack: a 200 MB oof.csv (the sandbox allows 512 MiB per file) to make crew's own process balloon;
    # expected: caught by its size alone, before any parsing
    with open(run_dir / "oof.csv", "a") as handle:
        handle.truncate(200 * 1024**2)
    started = time.monotonic()
    review = _review(run_dir, tmp_path)
    assert time.monotonic() - started < 10
    assert review["accepted"] is False and any("oof.csv is 200.0 MiB" in issue for issue in review["issues"])


def test_the_linear_fold_check_agrees_with_leaving_each_fold_out(run_dir, tmp_path):
    folds = [0.91, 0.93, 0.92, 0.90, 0.55]
    _edit_metrics(run_dir, folds=folds)
    review = _review(run_dir, tmp_path)
    others = np.asarray(folds[:4])
    warning = next(issue for issue in review["issues"] if "fold 5 of 5" in issue)
    assert f"against {others.mean():.6g} +- {others.std():.6g} " in warning, warning


def test_runtime_audit_events_become_findings(run_dir, tmp_path):
    audit = [{"level": "fail", "event": "hidden path", "detail": "open /task/grading/answers.csv"},
             {"level": "warn", "event": "socket", "detail": "socket.connect ('10.0.0.1', 80)"},
             {"level": "note", "event": "process", "detail": "subprocess.Popen lscpu"}]
    review = _review(run_dir, tmp_path, audit=audit)
    assert review["accepted"] is False and review["checks"]["rules"].startswith("fail")
    assert "runtime: hidden path: open /task/grading/answers.csv" in review["issues"]
    warned = _review(run_dir, tmp_path, audit=audit[1:])
    assert warned["accepted"] is True and warned["checks"]["rules"].startswith("warn")
    assert "warning: runtime: socket: socket.connect ('10.0.0.1', 80)" in warned["issues"]
    assert not any("lscpu" in issue for issue in review["issues"] + warned["issues"])


def test_decided_labels_are_reviewed_with_the_experiments_class_weights(shared_tasks, tmp_path):
    """f1 on a 14%-positive target: the script decides labels with fitted class weights, which the reviewer must
    apply too (to recompute the CV and to check predictions.csv against test_pred.csv); without them, or with
    nonsense ones, the same files are rejected."""
    task = Task.load(shared_tasks / "wilms-relapse" / "task.yaml")
    folder = tmp_path / "run"
    folder.mkdir()
    spec = PipelineSpec(model="linear", numeric=["instit", "histol", "stage", "study", "age"], folds=3)
    (folder / "code.py").write_text(render(spec, task), encoding="utf-8")
    run = subprocess.run([sys.executable, "code.py"], cwd=folder, env={**os.environ, "CREW_DATA": str(task.root)},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    weights = _metrics(folder)["class_weights"]
    assert len(weights) == 2 and weights[1] > weights[0]  # the rare positive class needs less than p = 0.5

    def review():
        state = {"task": str(task.root / "task.yaml"), "data_report": {},
                 "result": {"experiment": "e1", "workdir": str(folder), "reason": "ok", "detail": "",
                            "stderr_tail": "", "findings": []}}
        return Reviewer(blackboard=Blackboard(tmp_path / "bb.sqlite"))(state)["review"]

    accepted = review()
    assert accepted["accepted"] is True and accepted["score"] == pytest.approx(_metrics(folder)["cv"], abs=1e-12)
    _edit_metrics(folder, class_weights=None)
    dropped = review()
    assert dropped["accepted"] is False and dropped["checks"]["rules"].startswith("fail")
    _edit_metrics(folder, class_weights=[1.0, -2.0])
    nonsense = review()
    assert nonsense["accepted"] is False and any("class_weights must be 2 positive numbers" in i
                                                 for i in nonsense["issues"])
