"""The critic: cost estimates that learn, cheaper variants that really are cheaper, rejections with reasons."""

from __future__ import annotations

import sys

import pytest

from crew import Blackboard, Experiment, Task
from crew.roles.critic import Critic
from crew.sandbox import Launch, Limits, LocalExecutor
from crew.testing import check_role, tiny_task
from crew.tools.cost import CostModel, Observation, Workload, calibration, read_workload
from crew.tools.knobs import apply_changes
from crew.tools.pipelines import PipelineSpec, render
from tests.conftest import EXAMPLE_TASK

BUDGET = {"wall_time": 600.0, "experiment_time": 120.0, "memory": 4 * 1024**3, "gpus": 0}


@pytest.fixture
def task():
    return Task.load(EXAMPLE_TASK)


def _code(task, **fields):
    return render(PipelineSpec(model=fields.pop("model", "lightgbm"), numeric=["a"], **fields), task)


def _critic(tmp_path, task, code, remaining=BUDGET, board=None, exp_id="e1"):
    board = board or Blackboard(tmp_path / "bb.sqlite")
    if exp_id:
        board.add_experiment(Experiment(id=exp_id, code=code, insights=["x"]))
    critic = Critic(blackboard=board)
    state = {"task": task, "proposal": {"id": exp_id, "code": code, "insights": ["x"]}, "remaining": remaining}
    return critic(state)["verdict"], board


def test_critic_passes_check_role():
    check_role(Critic())


def test_workload_is_read_from_the_syntax_tree(task):
    work = read_workload(_code(task, folds=7, tune_trials=12, params={"n_estimators": 250}), rows=1000, columns=5)
    assert (work.family, work.folds, work.tune_trials, work.estimators) == ("lightgbm", 7, 12, 250)
    assert work.early_stopping and work.refit  # a booster's rounds are a cap; test predictions get one more fit
    bagged = read_workload(_code(task, folds=5, bags=4, repeats=2), rows=1000, columns=5)
    assert (bagged.bags, bagged.repeats, bagged.fits) == (4, 2, 5 * 4 * 2 + 4)  # + one refit per bag
    tuned = read_workload(_code(task, folds=5, tune_trials=10), rows=200_000, columns=5)
    assert tuned.tune_rows == 20_000 and tuned.fits == 5 + 10 * 3 + 1
    assert tuned.fit_units == pytest.approx(5 + 10 * 3 * 0.1 + 1)  # the trials fit a tenth of the rows
    assert CostModel().prior(tuned)[0] < CostModel().prior(tuned.model_copy(update={"tune_rows": None}))[0] / 3
    hand_written = "from sklearn.model_selection import KFold\nfrom sklearn.svm import SVC\ncv = KFold(n_splits=4)\n"
    work = read_workload(hand_written, rows=1000)
    assert (work.families, work.folds) == (["svm"], 4)


def test_apply_changes_rewrites_only_the_knobs(task):
    code = _code(task, folds=10, params={"n_estimators": 400, "learning_rate": 0.05})
    changed = apply_changes(code, {"folds": 3, "estimators": 120, "subsample": 5000})
    assert "FOLDS = 3" in changed and "'n_estimators': 120" in changed and "SUBSAMPLE = 5000" in changed
    assert changed.count("\n") == code.count("\n")
    assert [a for a, b in zip(code.splitlines(), changed.splitlines(), strict=True) if a != b] == \
        ["FOLDS = 10", "SUBSAMPLE = None", "PARAMS = {'n_estimators': 400, 'learning_rate': 0.05}"]
    with pytest.raises(ValueError, match="exposes no subsample"):
        apply_changes("from sklearn.svm import SVC\n", {"subsample": 10})
    with pytest.raises(ValueError, match="unknown knob"):
        apply_changes(code, {"learning_rate": 1})


def test_cost_model_learns_from_history_and_says_so():
    work = Workload(families=["lightgbm"], folds=5, rows=5000, columns=10, estimators=400)
    prior = CostModel().estimate(work)
    assert "prior only" in prior.basis and prior.time_correction == 1.0
    slow = [Observation(family="lightgbm", prior_seconds=2.0, seconds=6.0) for _ in range(4)]
    learned = CostModel(history=slow).estimate(work)
    assert 2.5 < learned.seconds / prior.seconds <= 3.0
    assert "4 finished lightgbm" in learned.basis
    other = CostModel(history=slow).estimate(work.model_copy(update={"families": ["linear"]}))
    assert other.time_correction == pytest.approx(3.0) and "none linear" in other.basis


def test_more_work_costs_more():
    base = Workload(families=["random_forest"], folds=5, rows=10_000, columns=10, estimators=300)
    model = CostModel()
    assert model.estimate(base.model_copy(update={"folds": 10})).seconds > model.estimate(base).seconds
    assert model.estimate(base.model_copy(update={"estimators": 600})).seconds > model.estimate(base).seconds
    assert model.estimate(base.model_copy(update={"subsample": 1000})).seconds < model.estimate(base).seconds
    assert model.estimate(base.model_copy(update={"rows": 100_000})).memory > model.estimate(base).memory


def test_a_fitting_experiment_is_approved_and_its_estimate_stored(tmp_path, task):
    verdict, board = _critic(tmp_path, task, _code(task))
    assert verdict["verdict"] == "approve"
    stored = board.experiment("e1").estimate
    assert stored["seconds"] > 0 and stored["prior_seconds"] > 0 and stored["verdict"] == "approve"
    assert "lightgbm" in stored["basis"]


def test_a_cheaper_variant_is_proposed_applied_and_fits(tmp_path, task):
    code = _code(task, folds=10, tune_trials=200)
    tight = {**BUDGET, "experiment_time": 12.0}
    verdict, board = _critic(tmp_path, task, code, tight)
    assert verdict["verdict"] == "approve_variant", verdict
    assert verdict["changes"] and verdict["estimate"]["seconds"] <= 12.0 * 0.8
    assert verdict["code"] != code and board.experiment("e1").code == verdict["code"]
    message = board.messages(send_to="modeler")[-1]
    assert "cut" in message.content


def test_nothing_fits_is_a_rejection_the_modeler_receives(tmp_path, task):
    verdict, board = _critic(tmp_path, task, _code(task), {**BUDGET, "experiment_time": 0.5})
    assert verdict["verdict"] == "reject" and "no cheaper variant" in verdict["reason"]
    assert board.experiment("e1").status == "rejected"
    assert any("reject" in m.content for m in board.messages(send_to="modeler"))


def test_gpu_requests_over_budget_are_rejected(tmp_path, task):
    board = Blackboard(tmp_path / "bb.sqlite")
    state = {"task": task, "proposal": {"id": None, "code": _code(task), "gpus": 1}, "remaining": BUDGET}
    assert Critic(blackboard=board)(state)["verdict"]["verdict"] == "reject"


def test_calibration_reports_the_share_within_two_x(tmp_path):
    board = Blackboard(tmp_path / "bb.sqlite")
    for i, actual in enumerate([1, 1, 1, 10, 11, 30, 9]):
        board.add_experiment(Experiment(id=f"e{i}", status="done", estimate={"seconds": 10.0, "prior_seconds": 10.0},
                                        wall_time=float(actual)))
    report = calibration(board)
    assert report["scored"] == 4 and report["share_within"] == pytest.approx(0.75)


HOSTILE = {
    "infinite loop": ("while True:\n    pass\n", "timeout"),
    "memory bomb": ("blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 1024 * 1024))\n", "memory"),
    "fork bomb": ("import os\nwhile True:\n    os.fork()\n", "shell"),
    "orphan child": ("import subprocess\nsubprocess.Popen(['sleep', '600'], start_new_session=True)\n", "shell"),
    "socket to loopback": ("import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)\n", "network"),
    "write to /tmp/outside": ("open('/tmp/outside', 'w').write('x')\n", "write_outside"),
    "read the answers": ("import os\nopen(os.path.join(os.environ['CREW_DATA'], 'grading', 'answers.csv')).read()\n",
                         "answers"),
    "a gigabyte of stdout": ("import sys\nchunk = 'x' * 1024 * 1024\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n",
                             "killed"),
    "pip install": ("import os\nos.system('pip install requests')\n", "install"),
}


@pytest.mark.skipif(sys.platform != "linux", reason="the sandbox's limits are Linux mechanisms")
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_experiments_are_rejected_or_contained(tmp_path, name):
    code, expected = HOSTILE[name]
    path = tiny_task(tmp_path / "task")
    task = Task.load(path)
    verdict, board = _critic(tmp_path, task, code, exp_id=None)
    executor = LocalExecutor(root=tmp_path / "runs")
    limits = Limits(wall_time=3, memory=256 * 1024**2, output_bytes=64 * 1024**2)
    if verdict["verdict"] == "reject":
        assert expected in verdict["reason"], verdict
        assert any(m.cause_by == "critic.finding" and expected in m.content for m in board.messages())
    else:
        result = executor.run(Launch(code=verdict["code"], limits=limits, data_dir=str(task.root),
                                     hide=[str(task.root / "grading")]))
        assert result.reason == expected, result
    healthy = executor.run(Launch(code="print('next')", limits=limits))
    assert healthy.reason == "ok" and healthy.stdout_tail.strip() == "next"


def test_the_cost_model_learns_from_the_board_however_it_is_passed(tmp_path, task):
    board = Blackboard(tmp_path / "bb.sqlite")
    for i in range(4):  # finished lightgbm runs that took 3x the critic's prior
        board.add_experiment(Experiment(id=f"h{i}", code="x", insights=["x"]))
        board.update_experiment(f"h{i}", status="done", wall_time=6.0,
                                estimate={"prior_seconds": 2.0, "family": "lightgbm"})
    board.add_experiment(Experiment(id="e1", code=_code(task), insights=["x"]))
    state = {"task": task, "proposal": {"id": "e1", "code": _code(task), "insights": ["x"]}, "remaining": BUDGET}
    in_constructor = Critic(blackboard=board).context(state)["estimate"]
    through_state = Critic().context({**state, "blackboard": board})["estimate"]
    without = Critic().context(state)["estimate"]
    assert "4 finished lightgbm" in in_constructor.basis and through_state.basis == in_constructor.basis
    assert "prior only" in without.basis and through_state.seconds > without.seconds


def test_text_features_are_priced_by_the_characters_they_read(tmp_path):
    """Sparse n-grams cost in every fit, an SVD reduction once; both grow with the text's length, and the critic
    reads the length from the data (the profile's characters per row)."""
    from crew.tools.profile import text_chars_per_row

    base = Workload(families=["linear"], folds=5, rows=20_000, test_rows=5_000, columns=2, refit=True,
                    text_columns=["review"], text_chars_per_row=300.0)
    model = CostModel()
    plain = model.estimate(base)
    ngrams = model.estimate(base.model_copy(update={"sparse_text": True}))
    longer = model.estimate(base.model_copy(update={"sparse_text": True, "text_chars_per_row": 1200.0}))
    assert plain.seconds < ngrams.seconds < longer.seconds and ngrams.memory < longer.memory
    assert "text n-grams of 300 chars/row" in ngrams.basis
    svd = model.estimate(base.model_copy(update={"text_svd": True}))
    assert plain.seconds < svd.seconds < ngrams.seconds
    (tmp_path / "data").mkdir()
    rows = [f"{i},{i % 5},{'good fine great' if i % 2 else 'bad awful poor'} words here,{i % 2}" for i in range(40)]
    (tmp_path / "data" / "train.csv").write_text("id,x0,text,y\n" + "\n".join(rows) + "\n")
    (tmp_path / "data" / "test.csv").write_text("id,x0,text\n" + "\n".join(r.rpartition(",")[0] for r in rows[:10])
                                                + "\n")
    (tmp_path / "task.yaml").write_text("name: t\ndata: {train: data/train.csv, test: data/test.csv}\ntarget: y\n"
                                        "id_column: id\nmetric: roc_auc\n")
    task = Task.load(tmp_path / "task.yaml")
    spec = PipelineSpec(model="linear", numeric=["x0"], text=["text"], features=["text_ngrams"])
    work = read_workload(render(spec, task), rows=40)
    assert work.text_columns == ["text"] and work.sparse_text and not work.text_svd
    assert text_chars_per_row(task, ["text"]) == pytest.approx(sum(len(r.split(",")[2]) for r in rows + rows[:10])
                                                                / 50)
