"""Grading: scores, every invalid-submission reason, and MLE-bench's medal rule at each bracket."""

from __future__ import annotations

import json
import math
import shutil

import polars as pl
import pytest

from crew import Task, get_metric, grade, medal_positions, place_on_leaderboard
from tests.conftest import EXAMPLE_ANSWERS, EXAMPLE_TASK, REPO

BAD = REPO / "tests" / "bad_tasks"


@pytest.fixture
def binary_task():
    return Task.load(EXAMPLE_TASK)


@pytest.fixture
def multiclass_task(tmp_path):
    shutil.copytree(BAD / "data", tmp_path / "data")
    (tmp_path / "task.yaml").write_text("name: mc\ndata: {train: data/train.csv, test: data/test.csv}\n"
                                        "target: label\nid_column: id\nmetric: log_loss\n")
    answers = pl.DataFrame({"id": list(range(31, 41)), "label": list("abcabcabca")})
    answers.write_csv(tmp_path / "answers.csv")
    return Task.load(tmp_path), tmp_path / "answers.csv"


def _answers():
    return pl.read_csv(EXAMPLE_ANSWERS)


def _write(tmp_path, frame: pl.DataFrame, name="submission.csv"):
    path = tmp_path / name
    frame.write_csv(path)
    return path


def test_perfect_and_constant_submissions(binary_task, tmp_path):
    answers = _answers()
    perfect = _write(tmp_path, answers.with_columns(pl.col("malignant").cast(pl.Float64)))
    report = grade(binary_task, perfect, EXAMPLE_ANSWERS)
    assert report.valid_submission and report.score == pytest.approx(1.0) and report.error is None
    constant = grade(binary_task, EXAMPLE_TASK / "data" / "sample_submission.csv", EXAMPLE_ANSWERS)
    assert constant.valid_submission and constant.score == pytest.approx(0.5)


def test_rows_are_matched_by_id_not_by_order(binary_task, tmp_path):
    shuffled = _answers().sample(fraction=1.0, shuffle=True, seed=1).with_columns(pl.col("malignant").cast(pl.Float64))
    assert grade(binary_task, _write(tmp_path, shuffled), EXAMPLE_ANSWERS).score == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: f.drop("malignant"), "missing column"),
        (lambda f: f.with_columns(pl.lit(1).alias("extra")), "unexpected column"),
        (lambda f: f.head(10), "has 10 rows, expected 114"),
        (lambda f: f.with_columns(pl.when(pl.col("id") == f["id"][0]).then(f["id"][1]).otherwise(pl.col("id")).alias("id")),
         "duplicated id"),
        (lambda f: f.with_columns((pl.col("id") + 100000).alias("id")), "not in the test set"),
        (lambda f: f.with_columns(pl.when(pl.col("id") == f["id"][0]).then(None).otherwise(pl.col("malignant")).alias("malignant")),
         "missing value"),
        (lambda f: f.with_columns((pl.col("malignant") * 2.0).alias("malignant")), "probabilities must lie in [0, 1]"),
        (lambda f: f.with_columns(pl.lit("high").alias("malignant")), "is not numeric"),
    ],
    ids=["missing-column", "extra-column", "row-count", "duplicate-ids", "unknown-ids", "missing-values",
         "probability-range", "non-numeric"],
)
def test_invalid_submission_reasons(binary_task, tmp_path, mutate, reason):
    submission = mutate(_answers().with_columns(pl.col("malignant").cast(pl.Float64) * 0.9))
    report = grade(binary_task, _write(tmp_path, submission), EXAMPLE_ANSWERS)
    assert not report.valid_submission and report.score is None
    assert reason in report.error


def test_unreadable_submission_is_invalid_not_a_crash(binary_task, tmp_path):
    path = tmp_path / "submission.csv"
    path.write_bytes(b"id,malignant\n1,caf\xe9\n")
    report = grade(binary_task, path, EXAMPLE_ANSWERS)
    assert not report.valid_submission and "could not read" in report.error
    assert not grade(binary_task, tmp_path / "absent.csv", EXAMPLE_ANSWERS).valid_submission


def test_multiclass_log_loss_needs_a_column_per_class(multiclass_task, tmp_path):
    task, answers = multiclass_task
    labels = pl.read_csv(answers)
    one_column = _write(tmp_path, labels)
    report = grade(task, one_column, answers)
    assert not report.valid_submission and "missing column(s) ['a', 'b', 'c']" in report.error
    probs = labels.select("id", *[(pl.col("label") == c).cast(pl.Float64).alias(c) * 0.8 + 0.1 for c in "abc"])
    good = grade(task, _write(tmp_path, probs, "probs.csv"), answers)
    assert good.valid_submission and good.score == pytest.approx(-math.log(0.9 / 1.1), rel=1e-6)  # rows normalised


def test_rmsle_refuses_negative_predictions(tmp_path):
    shutil.copytree(BAD / "data", tmp_path / "data")
    (tmp_path / "task.yaml").write_text("name: r\ndata: {train: data/train.csv, test: data/test.csv}\n"
                                        "target: y\nid_column: id\nmetric: rmsle\n")
    task = Task.load(tmp_path)
    pl.DataFrame({"id": range(31, 41), "y": [1.0] * 10}).write_csv(tmp_path / "answers.csv")
    negative = _write(tmp_path, pl.DataFrame({"id": range(31, 41), "y": [-1.0] + [1.0] * 9}))
    report = grade(task, negative, tmp_path / "answers.csv")
    assert not report.valid_submission and "rmsle needs predictions >= 0" in report.error


@pytest.mark.parametrize(
    ("n", "positions"),
    [(1, (1, 1, 1)), (4, (1, 1, 1)), (10, (1, 2, 4)), (99, (9, 19, 39)), (100, (10, 20, 40)), (249, (10, 49, 99)),
     (250, (10, 50, 100)), (999, (11, 50, 100)), (1000, (12, 50, 100)), (5000, (20, 250, 500))],
)
def test_medal_positions_per_bracket(n, positions):
    assert medal_positions(n) == positions


@pytest.mark.parametrize("n", [10, 99, 100, 249, 250, 999, 1000])
@pytest.mark.parametrize("higher", [True, False])
def test_medal_boundaries(n, higher):
    metric = get_metric("accuracy" if higher else "rmse")
    step = 1.0 if higher else -1.0
    scores = [float(i) * step for i in range(n, 0, -1)]  # best first: position k has score (n - k + 1) * step
    gold, silver, bronze = medal_positions(n)

    def at(position):
        return scores[position - 1]

    nudge = 0.5 * step
    assert place_on_leaderboard(at(gold), scores, metric).medal == "gold"
    below_gold = place_on_leaderboard(at(gold) - nudge, scores, metric).medal
    assert below_gold == ("silver" if silver > gold else "bronze" if bronze > gold else None)
    if silver > gold:
        assert place_on_leaderboard(at(silver), scores, metric).medal == "silver"
    if bronze > silver:
        assert place_on_leaderboard(at(bronze), scores, metric).medal == "bronze"
    assert place_on_leaderboard(at(bronze) - nudge, scores, metric).medal is None
    placement = place_on_leaderboard(at(gold), scores, metric)
    assert placement.rank == gold and placement.of == n


def test_ties_and_strict_median():
    metric = get_metric("accuracy")
    scores = [9.0, 8.0, 8.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0]  # gold position 1, silver 2, bronze 4; median 6.5
    assert place_on_leaderboard(8.0, scores, metric).medal == "silver"  # equal to the team at position 2
    assert place_on_leaderboard(8.0, scores, metric).rank == 2  # one team strictly better
    assert place_on_leaderboard(6.5, scores, metric).above_median is False
    assert place_on_leaderboard(6.51, scores, metric).above_median is True
    assert place_on_leaderboard(None, scores, metric).medal is None


def test_a_score_is_rounded_to_five_decimals_before_it_is_placed():
    """MLE-bench's grader returns round(score, 5) and ranks that: a hair below a medal line rounds onto it."""
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]  # gold at position 1
    assert place_on_leaderboard(0.899996, scores, get_metric("roc_auc")).medal == "gold"
    assert place_on_leaderboard(0.89999, scores, get_metric("roc_auc")).medal != "gold"
    assert place_on_leaderboard(0.000004, [0.0, 1.0, 2.0], get_metric("rmse")).medal == "gold"


def test_cli_grade_prints_the_report_with_a_leaderboard(cli, tmp_path):
    task_dir = tmp_path / "task"
    shutil.copytree(EXAMPLE_TASK, task_dir)
    pl.DataFrame({"score": [0.99 - 0.01 * i for i in range(20)]}).write_csv(task_dir / "leaderboard.csv")
    perfect = _write(tmp_path, _answers().with_columns(pl.col("malignant").cast(pl.Float64)))
    result = cli("grade", task_dir / "task.yaml", perfect, "--answers", EXAMPLE_ANSWERS)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report == {"task": "breast-cancer", "metric": "roc_auc", "score": 1.0, "valid_submission": True,
                      "error": None, "leaderboard": {"rank": 1, "of": 20, "above_median": True, "medal": "gold"}}


def test_cli_grade_without_leaderboard_and_with_bad_answers(cli, tmp_path):
    result = cli("grade", EXAMPLE_TASK, EXAMPLE_TASK / "data" / "sample_submission.csv", "--answers", EXAMPLE_ANSWERS)
    assert result.exit_code == 0 and "leaderboard" not in json.loads(result.stdout)
    bad = _write(tmp_path, pl.DataFrame({"id": [1]}), "answers.csv")
    result = cli("grade", EXAMPLE_TASK, EXAMPLE_TASK / "data" / "sample_submission.csv", "--answers", bad)
    assert result.exit_code == 2 and "--answers" in result.stderr and "malignant" in result.stderr


def test_grading_the_development_tasks_sample_submissions(cli, shared_tasks):
    for name in ("cars-mpg", "fair-affairs", "penguins-species", "wine-cultivar"):
        folder = shared_tasks / name
        result = cli("grade", folder, folder / "data" / "sample_submission.csv", "--answers", folder / "grading" / "answers.csv")
        report = json.loads(result.stdout)
        assert report["valid_submission"] and report["score"] is not None, report
