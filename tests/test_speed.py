"""The speed pass: stage profiles, variants of a winner's slowest stage, and the reviewer's equivalence check."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import polars as pl
import pytest

from crew import Blackboard, Experiment, Task
from crew.roles.modeler import Modeler
from crew.roles.reviewer import Reviewer, audit
from crew.tools.pipelines import PipelineSpec, render
from crew.tools.speed import PREDICTION_TOLERANCE, prediction_gap, profile, ran_params, variants_for
from crew.workflows import solve as solve_module
from crew.workflows import speed_pass
from crew.workflows.speed_pass import speed_step
from crew.workflows.strategies import Greedy
from tests.conftest import EXAMPLE_TASK

pytestmark = pytest.mark.e2e  # whole solves, suites or clusters: not in the fast tier

TASK_YAML = EXAMPLE_TASK / "task.yaml"
REPORT = {"leakage_suspects": [], "drop_columns": ["id"], "numeric_columns": [], "categorical_columns": []}


def test_profile_orders_the_timed_stages_slowest_first():
    metrics = {"timings": {"prepared": 0.1, "tune": 40.0, "cross_validate": 7.0, "total": 47.1}}
    assert profile(metrics) == [("tune", 40.0), ("cross_validate", 7.0)]


def test_variants_fit_the_family_and_change_its_parameters():
    lightgbm = {"n_estimators": 400, "learning_rate": 0.04, "num_leaves": 31}
    found = {v.name: params for v, params in variants_for("lightgbm", lightgbm, {})}
    assert found["coarser_bins"]["max_bin"] == 63
    assert found["half_rounds"]["n_estimators"] == 200 and found["half_rounds"]["learning_rate"] == 0.08
    assert variants_for("hist_gradient_boosting", {"max_iter": 300}, {})[0][1]["max_bins"] == 63
    assert [v.name for v, _ in variants_for("extra_trees", {"n_estimators": 300}, {})] == ["half_trees"]
    assert variants_for("linear", {"C": 1.0}, {}) == []


def test_ran_params_are_the_tuned_ones_only_when_the_experiment_tuned():
    metrics = {"params": {"n_estimators": 300, "min_samples_leaf": 4}}
    assert ran_params({"tune_trials": 40, "params": {"n_estimators": 300}}, metrics)["min_samples_leaf"] == 4
    assert ran_params({"tune_trials": 0, "params": {"n_estimators": 300}}, metrics) == {"n_estimators": 300}


def test_a_child_of_a_tuned_experiment_keeps_the_tuning(tmp_path):
    board = Blackboard(tmp_path / "bb.sqlite")
    spec = {"model": "extra_trees", "params": {"n_estimators": 300, "min_samples_leaf": 1}, "tune_trials": 40,
            "preprocessing": [], "features": [], "folds": 5, "seed": 0}
    board.add_experiment(Experiment(id="tuned", insights=["extra_trees", "tune"], code="x", spec=spec, status="done",
                                    score=0.9, metrics={"params": {"n_estimators": 300, "min_samples_leaf": 6}}))
    state = {"task": str(TASK_YAML), "data_report": REPORT, "plan": {"cv_folds": 5},
             "step": {"phase": "improve", "parent": "tuned", "model": "extra_trees", "insight": "seed_bag"}}
    modeler = Modeler(blackboard=board)
    design = modeler.expert(modeler.context(state))
    assert design.params["min_samples_leaf"] == 6 and design.tune_trials == 0


def test_greedy_improves_a_kept_speed_variant_instead_of_its_parent(tmp_path):
    board = Blackboard(tmp_path / "bb.sqlite")
    spec = {"model": "extra_trees", "params": {"n_estimators": 300}}
    board.add_experiment(Experiment(id="slow", insights=["extra_trees"], code="a", spec=spec, status="done", score=0.95))
    board.add_experiment(Experiment(id="fast", parent="slow", insights=["extra_trees", "speed:half_trees"], code="b",
                                    spec={**spec, "speed_of": "slow"}, status="done", score=0.949))
    plan = {"schedule": [{"phase": "baseline", "insights": ["extra_trees"]}]}
    steps = Greedy().next_steps(board, plan, 3, higher_is_better=True)
    assert steps and {s.parent for s in steps} == {"fast"}


@pytest.fixture(scope="module")
def parent_run(tmp_path_factory):
    task = Task.load(TASK_YAML)
    header = pl.read_csv(task.path(task.data.train), n_rows=1).columns
    numeric = [c for c in header if c not in (task.id_column, task.target)]
    folder = tmp_path_factory.mktemp("parent")
    (folder / "code.py").write_text(render(PipelineSpec(model="linear", numeric=numeric), task), encoding="utf-8")
    run = subprocess.run([sys.executable, "code.py"], cwd=folder, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "CREW_DATA": str(task.root.resolve())})
    assert run.returncode == 0, run.stderr
    return folder


def _board_with_parent(tmp_path, parent_run) -> Blackboard:
    board = Blackboard(tmp_path / "bb.sqlite")
    metrics = json.loads((parent_run / "metrics.json").read_text())
    board.add_experiment(Experiment(id="p", insights=["linear"], code="p", spec={"model": "linear"}, status="done",
                                    score=metrics["cv"], metrics=metrics,
                                    artifacts={"oof.csv": str(parent_run / "oof.csv")}))
    board.add_experiment(Experiment(id="v", parent="p", insights=["linear", "speed:x"], code="v",
                                    spec={"model": "linear", "speed_of": "p"}))
    return board


def _review(board, folder):
    state = {"task": str(TASK_YAML), "data_report": REPORT,
             "result": {"experiment": "v", "workdir": str(folder), "reason": "ok", "detail": "", "stderr_tail": "",
                        "findings": []}}
    return Reviewer(blackboard=board)(state)["review"]


def test_a_speed_variant_that_predicts_the_same_is_accepted(parent_run, tmp_path):
    board = _board_with_parent(tmp_path, parent_run)
    review = _review(board, shutil.copytree(parent_run, tmp_path / "same"))
    assert review["accepted"] and review["checks"]["speed_equivalence"].startswith("pass: gap 0.0000")


def test_a_speed_variant_that_predicts_differently_is_rejected(parent_run, tmp_path):
    board = _board_with_parent(tmp_path, parent_run)
    folder = shutil.copytree(parent_run, tmp_path / "moved")
    oof = pd.read_csv(folder / "oof.csv")
    column = next(c for c in oof.columns if c not in ("id", "row"))
    oof[column] = np.clip(oof[column] * 0.7 + 0.15, 0, 1)  # same ranking, so nearly the same AUC; other predictions
    oof.to_csv(folder / "oof.csv", index=False)
    score = audit(Task.load(TASK_YAML), {"workdir": str(folder), "reason": "ok"}, REPORT).score
    metrics = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, "cv": score}))
    assert prediction_gap(Task.load(TASK_YAML), parent_run / "oof.csv", folder / "oof.csv") > PREDICTION_TOLERANCE
    review = _review(board, folder)
    assert not review["accepted"] and review["checks"]["speed_equivalence"].startswith("fail")
    assert board.experiment("v").status == "failed" and "predict what p predicts" in board.experiment("v").error


def test_solve_runs_the_speed_pass_and_reports_what_it_bought(tmp_path, monkeypatch):
    monkeypatch.setattr(speed_pass, "SPEED_MIN_SECONDS", 0.0)  # the example task's experiments take seconds
    # the speed pass waits for the opening: two drafts after the baseline (AIDE's num_drafts), so that it is out in
    # seconds on any machine (every planned family took 110 s of 120 on a slow one, CatBoost's 30 fits 66 s of it)
    summary = solve_module.solve(TASK_YAML, out=tmp_path / "run", wall_time=75, workers=2,
                                 strategy=Greedy(seed=0, max_drafts=2))
    board = Blackboard(tmp_path / "run" / "blackboard.sqlite")
    variants = [e for e in board.experiments() if e.spec.get("speed_of")]
    assert variants and all(e.insights[-1].startswith("speed:") for e in variants)
    report = summary["final"]["speed"]
    assert report["tried"] == len(variants)
    assert report["kept"] == sum(1 for e in variants if e.status == "done")
    task = Task.load(TASK_YAML)
    for variant in (e for e in variants if e.status == "done"):
        parent = board.experiment(variant.spec["speed_of"])
        gap = prediction_gap(task, parent.artifacts["oof.csv"], variant.artifacts["oof.csv"])
        assert gap <= PREDICTION_TOLERANCE
    speed_messages = board.messages(sent_from="optimizer")
    assert speed_messages and all(m.cause_by == "optimizer.decide" for m in speed_messages)


def test_the_speed_pass_waits_for_the_opening(tmp_path):
    """Whether a draft took 8 s depends on the machine's load; before the drafts are all out, no speed step, so
    a seeded run's experiments do not depend on it."""
    board = Blackboard(tmp_path / "bb.sqlite")
    spec = {"model": "extra_trees", "params": {"n_estimators": 300}}
    board.add_experiment(Experiment(id="slow", insights=["extra_trees"], code="a", spec=spec, status="done",
                                    score=0.95, wall_time=30.0, artifacts={"predictions.csv": "p.csv"}))
    plan = {"schedule": [{"phase": "baseline", "insights": ["extra_trees"]},
                         {"phase": "draft", "insights": ["linear"]}]}
    assert speed_step(board, plan, True, 0, max_drafts=None) is None
    assert speed_step(board, plan, True, 0, max_drafts=0).insight.startswith("speed:")
    board.add_experiment(Experiment(id="lin", insights=["linear"], code="b", spec={"model": "linear"}))
    assert speed_step(board, plan, True, 0, max_drafts=None).parent == "slow"
