"""Every metric of TASK_FORMAT.md against values computed by hand."""

import math

import numpy as np
import pytest

from crew import METRICS, get_metric
from crew._metrics import canonical_labels, positive_label


def test_the_table_of_task_format_is_complete():
    assert set(METRICS) == {"accuracy", "balanced_accuracy", "f1", "f1_macro", "qwk", "roc_auc", "log_loss",
                            "rmse", "mae", "rmsle", "r2", "pearson", "spearman",
                            "roc_auc_columns", "log_loss_columns", "mcrmse", "rmsle_columns", "mae_columns",
                            "spearman_columns", "roc_auc_micro"}
    lower = {name for name, m in METRICS.items() if not m.higher_is_better}
    assert lower == {"log_loss", "rmse", "mae", "rmsle", "log_loss_columns", "mcrmse", "rmsle_columns", "mae_columns"}
    assert all(METRICS[m.per_column].per_column is None for m in METRICS.values() if m.per_column)


def test_columnwise_metrics_average_their_metric_over_the_columns_and_skip_unscored_rows():
    from sklearn.metrics import roc_auc_score, root_mean_squared_log_error

    y = np.array([[0, 1], [1, 0], [1, 1], [0, 0], [-1, -1]])  # the last row: -1 everywhere, not scored
    p = np.array([[0.1, 0.9], [0.8, 0.2], [0.7, 0.4], [0.2, 0.5], [0.9, 0.9]])
    expected = (roc_auc_score(y[:4, 0], p[:4, 0]) + roc_auc_score(y[:4, 1], p[:4, 1])) / 2
    assert get_metric("roc_auc_columns").score(y, p) == pytest.approx(expected) and expected < 1
    t, q = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 2.0], [3.0, 5.0]])
    assert get_metric("rmsle_columns").score(t, q) == pytest.approx(root_mean_squared_log_error(t[:, 1], q[:, 1]) / 2)
    assert get_metric("mcrmse").score(t, q) == pytest.approx(0.5 * math.sqrt(0.5))


@pytest.mark.parametrize(
    ("name", "y", "pred", "classes", "expected"),
    [
        ("accuracy", ["a", "b", "c", "a"], ["a", "b", "b", "a"], [], 0.75),
        ("accuracy", [1, 0], [1.0, 0.0], [], 1.0),  # labels survive an int -> float round trip
        ("balanced_accuracy", [0, 0, 0, 1], [0, 0, 1, 1], [], (2 / 3 + 1) / 2),
        ("f1", [1, 1, 0, 0, 1], [1, 0, 0, 1, 1], ["0", "1"], 2 / 3),
        ("f1_macro", ["a", "a", "b", "b"], ["a", "b", "b", "b"], [], (2 / 3 + 0.8) / 2),
        ("roc_auc", [0, 0, 1, 1], np.array([0.1, 0.4, 0.35, 0.8]), ["0", "1"], 0.75),
        ("log_loss", [1, 0], np.array([0.8, 0.4]), ["0", "1"], -(math.log(0.8) + math.log(0.6)) / 2),
        ("log_loss", ["a", "b"], np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]]), ["a", "b", "c"],
         -(math.log(0.7) + math.log(0.6)) / 2),
        # weights (i - j)^2 / 4 over ratings 1..3: observed weighted misses 1/4, expected (true x predicted
        # histograms / n) 3.75 / 3 -> 1 - 0.25 / 1.25
        ("qwk", [1, 2, 3], [1, 3, 3], [], 0.8),
        ("qwk", [1, 2, 10], [1.0, 2.0, 10.0], [], 1.0),  # ratings compare as numbers, not as the text "10" < "2"
        ("rmse", [1, 2, 3], [2, 2, 5], [], math.sqrt(5 / 3)),
        ("mae", [1, 2, 3], [2, 2, 5], [], 1.0),
        ("rmsle", [0, math.e - 1], [math.e - 1, math.e - 1], [], math.sqrt(0.5)),
        ("r2", [1, 2, 3], [1, 2, 4], [], 0.5),
    ],
)
def test_metric_matches_hand_computation(name, y, pred, classes, expected):
    assert get_metric(name).score(y, pred, classes) == pytest.approx(expected, rel=1e-9)


def test_binary_log_loss_clips_at_machine_epsilon_as_scikit_learn_and_mle_bench_do():
    from sklearn.metrics import log_loss

    hard = np.array([1.0, 0.0, 1.0, 0.0])
    y = [1, 0, 0, 1]  # two sure and wrong
    expected = log_loss(y, hard)  # scikit-learn clips at np.finfo(float).eps
    assert get_metric("log_loss").score(y, hard, ["0", "1"]) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(-2 * math.log(np.finfo(float).eps) / 4, rel=1e-9)


def test_multiclass_probabilities_are_normalised_per_row():
    metric = get_metric("log_loss")
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    assert metric.score(["a", "b"], probs * 2, ["a", "b", "c"]) == pytest.approx(metric.score(["a", "b"], probs, ["a", "b", "c"]))


def test_multiclass_roc_auc_is_one_vs_rest():
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    assert get_metric("roc_auc").score(["a", "b", "c", "a"], probs, ["a", "b", "c"]) == pytest.approx(1.0)
    swapped = probs[:, [1, 0, 2]]
    assert get_metric("roc_auc").score(["a", "b", "c", "a"], swapped, ["a", "b", "c"]) < 0.8


def test_positive_label_follows_task_format():
    assert positive_label(["0", "1"]) == "1"
    assert positive_label(["no", "yes"]) == "yes"
    assert positive_label(["benign", "malignant"]) == "malignant"
    assert list(canonical_labels([1, 1.0, "1", True, 2.5])) == ["1", "1", "1", "True", "2.5"]


def test_direction_helpers():
    rmse, acc = get_metric("rmse"), get_metric("accuracy")
    assert rmse.is_better(1.0, 2.0) and not rmse.is_better(2.0, 1.0)
    assert acc.is_better(0.9, 0.8) and acc.at_least_as_good(0.8, 0.8)


def test_unknown_metric_names_the_known_ones():
    with pytest.raises(KeyError, match="roc_auc"):
        get_metric("auc")


def test_one_helper_ranks_by_direction_everywhere():
    from types import SimpleNamespace as S

    from crew import best_first, better, oriented

    rows = [S(id="a", score=0.5), S(id="b", score=None), S(id="c", score=0.9), S(id="d", score=0.5)]
    assert [r.id for r in best_first(rows, True)] == ["c", "a", "d"]  # no score: left out; ties keep their order
    assert [r.id for r in best_first(rows, False)] == ["a", "d", "c"]
    assert best_first([3.0, 1.0, 2.0], False, score=float) == [1.0, 2.0, 3.0]
    assert better(0.2, None, False) and better(0.2, 0.3, False) and not better(0.2, 0.3, True)
    assert oriented(2.0, False) == -2.0 and METRICS["rmse"].is_better(1.0, 2.0)
    assert METRICS["r2"].at_least_as_good(0.5, 0.5) and not METRICS["log_loss"].at_least_as_good(0.6, 0.5)


def test_a_metric_registered_in_one_place_is_used_everywhere(tmp_path, monkeypatch):
    """One `Metric(...)` in METRICS: task validation, the experiment script, the reviewer, final selection and
    grading all use it, and no other file names it."""
    import json
    import os
    import subprocess
    import sys

    import polars as pl

    from crew import Metric, Task, grade
    from crew.tools import ensemble
    from crew.tools.pipelines import PipelineSpec, render
    from crew.tools.review import audit

    def mse(y, p, classes):
        return float(np.mean((np.asarray(y, dtype=float) - np.asarray(p, dtype=float)) ** 2))

    monkeypatch.setitem(METRICS, "mse", Metric("mse", False, "regression", "value", False, mse,
                                               template="    return metrics.mean_squared_error(y, raw)", best=0.0))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 2))
    y = 3 * x[:, 0] - x[:, 1] + rng.normal(scale=0.5, size=240)
    (tmp_path / "data").mkdir()
    frame = pl.DataFrame({"id": np.arange(240), "a": x[:, 0], "b": x[:, 1], "y": y})
    frame[:200].write_csv(tmp_path / "data" / "train.csv")
    frame[200:].drop("y").write_csv(tmp_path / "data" / "test.csv")
    frame[200:].select("id", "y").write_csv(tmp_path / "answers.csv")
    (tmp_path / "task.yaml").write_text("name: mse-task\nkind: tabular\ndata:\n  train: data/train.csv\n"
                                        "  test: data/test.csv\ntarget: y\nid_column: id\nmetric: mse\n")
    task = Task.load(tmp_path / "task.yaml")  # validation knows it
    folder = tmp_path / "experiment"
    folder.mkdir()
    (folder / "code.py").write_text(render(PipelineSpec(model="linear", numeric=["a", "b"]), task))
    run = subprocess.run([sys.executable, "code.py"], cwd=folder, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "CREW_DATA": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    claimed = json.loads((folder / "metrics.json").read_text())
    assert claimed["metric"] == "mse" and 0.1 < claimed["cv"] < 0.5  # noise variance 0.25: the script scored mse
    review = audit(task, {"workdir": str(folder), "reason": "ok"})  # the reviewer recomputes it from oof.csv
    assert not review.failures and abs(review.score - claimed["cv"]) < 1e-6 * max(1.0, claimed["cv"])
    selection = ensemble.select(task, [folder])  # final selection scores raw predictions with it
    assert abs(selection.cv - claimed["cv"]) < 1e-6
    report = grade(task, folder / "predictions.csv", tmp_path / "answers.csv")  # and so does grading
    assert report.valid_submission and 0.1 < report.score < 0.5


def test_correlations_are_scipys_and_nan_for_a_constant_prediction():
    from scipy import stats

    from crew._metrics import _fast_pearson

    rng = np.random.default_rng(0)
    y, p = rng.normal(size=50), rng.normal(size=50)
    p[:5] = p[5]  # ties
    assert get_metric("pearson").score(y, p) == pytest.approx(stats.pearsonr(y, p)[0])
    assert get_metric("spearman").score(y, p) == pytest.approx(stats.spearmanr(y, p).correlation)
    assert _fast_pearson(y, [], "regression")(p) == pytest.approx(stats.pearsonr(y, p)[0])
    assert math.isnan(get_metric("pearson").score(y, np.ones(50)))
    table = np.column_stack([y, y**2])
    guess = np.column_stack([p, p])
    expected = (stats.spearmanr(y, p).correlation + stats.spearmanr(y**2, p).correlation) / 2
    assert get_metric("spearman_columns").score(table, guess) == pytest.approx(expected)
