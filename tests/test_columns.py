"""Several targets: `targets:` with a column-wise metric is validated, solved one column at a time, graded as the
mean of the per-column metric, and resumed without solving a column twice."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from crew import Blackboard, Task, TaskError, grade


def _task(root: Path, metric: str = "roc_auc_columns", targets: str = "[toxic, obscene, rare]") -> Path:
    rng = np.random.default_rng(0)
    n = 360
    x = rng.normal(size=(n, 3))
    frame = pl.DataFrame({"id": np.arange(n), "a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                          "toxic": (x[:, 0] + rng.normal(scale=0.5, size=n) > 0).astype(int),
                          "obscene": (x[:, 1] + x[:, 0] > 1).astype(int), "rare": np.zeros(n, dtype=int),
                          "fare": np.exp(x[:, 2]).round(3)})
    (root / "data").mkdir(parents=True)
    (root / "grading").mkdir()
    frame[:300].write_csv(root / "data" / "train.csv")
    frame[300:].drop("toxic", "obscene", "rare", "fare").write_csv(root / "data" / "test.csv")
    answers = frame[300:].select("id", "toxic", "obscene", "rare", "fare").with_columns(
        pl.when(pl.col("id") < 305).then(-1).when(pl.col("id") % 7 == 0).then(1).otherwise(0).alias("rare"))
    answers = answers.with_columns(*[pl.when(pl.col("id") < 305).then(-1).otherwise(pl.col(c)).alias(c)
                                     for c in ("toxic", "obscene")])  # Kaggle's unscored rows
    answers.write_csv(root / "grading" / "answers.csv")
    (root / "task.yaml").write_text(f"name: several\ndata: {{train: data/train.csv, test: data/test.csv}}\n"
                                    f"target: {targets}\nid_column: id\nmetric: {metric}\n")
    return root / "task.yaml"


def test_a_task_with_several_targets_reads_as_columns(tmp_path):
    task = Task.load(_task(tmp_path / "t"))
    assert task.targets == ["toxic", "obscene", "rare"] and task.target is None and task.target_type == "multilabel"
    assert task.submission_columns() == ["id", "toxic", "obscene", "rare"]
    assert any("'rare' has one value in train" in w for w in task.warnings)
    column = task.column_task("obscene")
    assert (column["target"], column["metric"], column["name"]) == ("obscene", "roc_auc", "several-obscene")
    assert Task.load(_task(tmp_path / "r", "rmsle_columns", "[fare, toxic]")).target_type == "multioutput"


@pytest.mark.parametrize(("metric", "targets", "error"), [
    ("roc_auc", "[toxic, obscene]", "roc_auc scores one target, but the task has 2"),
    ("roc_auc_columns", "toxic", "scores several target columns, but the task has one"),
    ("roc_auc_columns", "[toxic, nothing]", "column 'nothing' is not in"),
    ("rmsle_columns", "[fare, a]", "needs a target >= 0"),
])
def test_a_wrong_several_target_task_is_one_line_per_problem(tmp_path, metric, targets, error):
    with pytest.raises(TaskError, match=error):
        Task.load(_task(tmp_path, metric, targets))


def test_a_long_submission_is_one_row_per_cell_and_grades_as_the_columns_would(tmp_path):
    """`submission:` (mlsp-2013-birds' layout): the file holds a row per (test row, target), keyed by a format;
    grading pivots it back (and reads answers in either layout); a missing or unknown cell is named."""
    path = _task(tmp_path, "roc_auc_micro", "[toxic, obscene]")
    path.write_text(path.read_text() + "submission: {key: Id, value: P, format: '{id}{index:02d}'}\n")
    task = Task.load(path)
    assert task.submission_file_columns() == ["Id", "P"] and task.column_task("toxic")["metric"] == "log_loss"
    rng = np.random.default_rng(1)
    wide = pl.DataFrame({"id": np.arange(300, 360), "toxic": rng.uniform(size=60), "obscene": rng.uniform(size=60)})
    long = task.as_submitted(wide)
    assert long.columns == ["Id", "P"] and long.height == 120 and long["Id"].to_list()[:3] == [30000, 30001, 30100]
    long.sample(fraction=1.0, shuffle=True, seed=0).write_csv(tmp_path / "long.csv")
    report = grade(task, tmp_path / "long.csv", tmp_path / "grading" / "answers.csv")
    answers = pl.read_csv(tmp_path / "grading" / "answers.csv")
    scored = answers["id"] >= 305  # the -1 rows are not scored
    truth = answers.filter(scored).select("toxic", "obscene").to_numpy().reshape(-1)
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score(truth, wide.filter(scored).select("toxic", "obscene").to_numpy().reshape(-1))
    assert report.valid_submission and report.score == pytest.approx(expected)
    task.as_submitted(answers.select("id", "toxic", "obscene")).write_csv(tmp_path / "long-answers.csv")
    assert grade(task, tmp_path / "long.csv", tmp_path / "long-answers.csv").score == pytest.approx(expected)
    long[1:].write_csv(tmp_path / "short.csv")
    assert "has 119 rows, expected 120" in grade(task, tmp_path / "short.csv", tmp_path / "grading" / "answers.csv").error
    long.with_columns(pl.col("Id") + 7).write_csv(tmp_path / "off.csv")
    assert "name no test row and target" in grade(task, tmp_path / "off.csv", tmp_path / "grading" / "answers.csv").error
    for bad, error in (("'{target}'", "must name the row"), ("'{id}_{name}'", "names \\['name'\\]")):
        path.write_text(path.read_text().rsplit("submission:", 1)[0] + f"submission: {{key: Id, value: P, format: {bad}}}\n")
        with pytest.raises(TaskError, match=error):
            Task.load(path)


@pytest.mark.e2e
@pytest.mark.skipif(sys.platform != "linux", reason="the sandbox's limits are Linux mechanisms")
def test_columns_are_solved_one_at_a_time_graded_together_and_resumed(tmp_path, cli):
    import json

    from crew.workflows.solve import solve

    path = _task(tmp_path / "t")
    summary = solve(path, out=tmp_path / "run", wall_time=30, workers=2)
    final = summary["final"]
    assert final["kind"] == "columns" and summary["elapsed"] <= 30 * 1.05
    assert final["targets"]["rare"]["kind"] == "constant" and final["targets"]["toxic"]["kind"] != "constant"
    assert (tmp_path / "run" / "targets" / "toxic" / "run" / "submission.csv").is_file()
    submission = pl.read_csv(tmp_path / "run" / "submission.csv")
    assert submission.columns == ["id", "toxic", "obscene", "rare"] and submission.height == 60
    report = grade(Task.load(path), tmp_path / "run" / "submission.csv", tmp_path / "t" / "grading" / "answers.csv")
    assert report.valid_submission and report.score is not None and report.score > 0.7  # rare's AUC: 0.5
    import crew

    model = crew.load(tmp_path / "run")  # each column's kept model, side by side
    test = pl.read_csv(tmp_path / "t" / "data" / "test.csv").to_pandas()
    mine = model.submission(test)
    assert list(mine.columns) == submission.columns
    assert mine.drop(columns="id").to_numpy() == pytest.approx(submission.drop("id").to_numpy(), abs=1e-9)
    assert model.predict(test).shape == (60, 3) and "toxic:" in model.describe()
    result = cli("predict", tmp_path / "run", tmp_path / "t" / "data" / "test.csv", "--out", tmp_path / "p.csv")
    assert result.exit_code == 0 and pl.read_csv(tmp_path / "p.csv").columns == submission.columns
    result = cli("report", tmp_path / "run")  # one run per column: the report names them
    assert result.exit_code == 2 and "a run of several targets" in result.stderr
    before = submission
    again = solve(None, resume=tmp_path / "run")  # every column solved already: nothing runs again
    assert again["experiments"] == 0 and pl.read_csv(tmp_path / "run" / "submission.csv").equals(before)
    assert json.loads((tmp_path / "run" / "final.json").read_text())["kind"] == "columns"


def test_a_joint_baseline_gives_every_column_a_model_within_seconds(tmp_path):
    """Before the columns' own runs: one linear model per column on shared features, run in the sandbox. A
    column left no time of its own keeps it (not a constant); crew.load predicts with it as the run did."""
    import json

    import crew
    from crew.workflows.columns import joint_script
    from crew.workflows.solve import solve

    path = _task(tmp_path / "t", metric="mae_columns", targets="[toxic, obscene, fare]")
    task = Task.load(path)
    train = pl.read_csv(tmp_path / "t" / "data" / "train.csv")
    code = joint_script(task, train, pl.read_csv(tmp_path / "t" / "data" / "test.csv"))
    assert "COLUMNS: dict = {'numeric': ['a', 'b', 'c'], 'categorical': [], 'text': []}" in code
    summary = solve(path, out=tmp_path / "run", wall_time=12, workers=1)  # too short for three columns' runs
    joint = json.loads((tmp_path / "run" / "joint.json").read_text())
    assert joint["ok"] and set(joint["per_column"]) == {"toxic", "obscene", "fare"}
    vetted = Blackboard(tmp_path / "run" / "joint" / "blackboard.sqlite").experiment("joint")  # priced first
    assert vetted.status == "done" and vetted.estimate["family"] == "linear" and vetted.wall_time
    kinds = {c: f["kind"] for c, f in summary["final"]["targets"].items()}
    assert "joint" in kinds.values() and "constant" not in kinds.values(), kinds
    submission = pl.read_csv(tmp_path / "run" / "submission.csv")
    assert submission["fare"].n_unique() > 10  # a model's predictions, not a constant
    model = crew.load(tmp_path / "run")
    mine = model.submission(pl.read_csv(tmp_path / "t" / "data" / "test.csv").to_pandas())
    assert mine.drop(columns="id").to_numpy() == pytest.approx(submission.drop("id").to_numpy(), rel=1e-6)
