"""bench/compare.py's pure parts: NS, the summary, the crew -> FLAML metric mapping, features, the dummy. No solves."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import numpy as np
import pandas as pd
import pytest

from crew import METRICS, Task, grade

from .conftest import EXAMPLE_ANSWERS, EXAMPLE_TASK, REPO

_spec = importlib.util.spec_from_file_location("bench_compare", REPO / "bench" / "compare.py")
compare = importlib.util.module_from_spec(_spec)
sys.modules["bench_compare"] = compare  # dataclasses look their module up by name
_spec.loader.exec_module(compare)

HAS_FLAML = importlib.util.find_spec("flaml") is not None
needs_flaml = pytest.mark.skipif(not HAS_FLAML, reason="flaml is not installed (pip install -e '.[bench]')")


def result(crew, flaml, dummy, higher=True, wall=10.0, budget=10.0, task="t"):
    return compare.TaskResult(task=task, metric="m", higher_is_better=higher, budget_s=budget, dummy=dummy,
                              crew=crew, flaml=flaml, crew_wall_s=wall, flaml_wall_s=wall)


# -- NS -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("crew", "flaml", "dummy", "expected"), [
    (0.9, 0.9, 0.5, 1.0),        # matches FLAML
    (0.7, 0.9, 0.5, 0.5),        # halfway between dummy and FLAML
    (0.95, 0.9, 0.5, 1.125),     # beats FLAML
    (0.5, 0.9, 0.5, 0.0),        # no better than the dummy
    (0.4, 0.9, 0.5, -0.25),      # worse than the dummy
    (None, 0.9, 0.5, 0.0),       # invalid crew submission counts as the dummy
])
def test_ns_higher_is_better(crew, flaml, dummy, expected):
    assert compare.normalized_score(crew, flaml, dummy) == pytest.approx(expected)


@pytest.mark.parametrize(("crew", "flaml", "dummy", "expected"), [
    (2.0, 2.0, 8.0, 1.0),        # rmse: matches FLAML
    (5.0, 2.0, 8.0, 0.5),        # halfway
    (1.4, 2.0, 8.0, 1.1),        # lower than FLAML = better: NS > 1
    (8.0, 2.0, 8.0, 0.0),
    (11.0, 2.0, 8.0, -0.5),      # worse than the dummy: negative
])
def test_ns_lower_is_better_needs_no_sign_flip(crew, flaml, dummy, expected):
    assert compare.normalized_score(crew, flaml, dummy) == pytest.approx(expected)


def test_ns_undefined_when_flaml_equals_dummy_or_is_invalid():
    assert compare.normalized_score(0.8, 0.5, 0.5) is None
    assert compare.normalized_score(0.5, 0.5, 0.5) is None
    assert compare.normalized_score(0.8, 0.5 + 1e-15, 0.5) is None  # float noise counts as equal
    assert compare.normalized_score(0.8, None, 0.5) is None
    assert compare.normalized_score(None, None, 0.5) is None


def test_crew_at_least_as_good_follows_the_metric_direction():
    ge = compare.crew_at_least_as_good
    assert ge(0.9, 0.8, True) and not ge(0.8, 0.9, True)
    assert ge(2.0, 3.0, False) and not ge(3.0, 2.0, False)
    assert ge(0.8, 0.8, True) and ge(3.0, 3.0, False) and ge(0.1 + 0.2, 0.3, True)  # ties count
    assert ge(0.1, None, True) and ge(9.0, None, False)                            # FLAML invalid
    assert not ge(None, 0.1, True) and not ge(None, None, False)                    # crew invalid


# -- the summary ------------------------------------------------------------------------------------


def test_summary_mixed_directions_edge_cases_and_budget():
    rows = [
        result(0.9, 0.8, 0.5, higher=True, task="auc", wall=10.2),             # NS 4/3, crew wins, within 5%
        result(4.0, 2.0, 8.0, higher=False, task="rmse", wall=9.0),            # NS 2/3, crew loses
        result(0.7, 0.5, 0.5, higher=True, task="flaml-dummy", wall=10.4),     # NS undefined, crew wins
        result(None, 0.3, 1.1, higher=False, task="crew-invalid", wall=10.6),  # NS 0, loses, over budget
    ]
    s = compare.summarize(rows)
    assert s["tasks"] == 4
    assert s["mean_ns"] == pytest.approx((4 / 3 + 2 / 3 + 0.0) / 3)
    assert s["ns_defined"] == 3 and s["ns_undefined"] == ["flaml-dummy"]
    assert s["crew_ge_flaml"] == 2
    assert s["crew_valid_rate"] == pytest.approx(0.75) and s["flaml_valid_rate"] == 1.0
    assert s["crew_all_within_budget"] is False and s["crew_over_budget"] == ["crew-invalid"]
    assert s["crew_max_wall_over_budget"] == pytest.approx(1.06)
    text = compare.render(rows, s)
    assert text.splitlines()[0].startswith("| task | metric | crew | FLAML | AutoGluon |")
    assert "| rmse | m ↓ | 4.0000 | 2.0000 | — | 8.0000 |" in text
    assert "| crew-invalid | m ↓ | — |" in text and "crew over" in text
    assert "mean NS: 0.667 over 3 task(s) (1 undefined: flaml-dummy)" in text
    assert "crew >= FLAML: 2/4" in text and "crew 75%, FLAML 100%" in text
    json.dumps(s)  # what --out writes


def test_summary_all_within_budget_and_nothing_defined():
    s = compare.summarize([result(0.6, 0.5, 0.5, wall=10.5), result(0.5, None, 0.5, wall=1.0)])
    assert s["crew_all_within_budget"] is True  # exactly budget + 5% is within
    assert s["mean_ns"] is None and s["ns_defined"] == 0
    assert "mean NS: n/a" in compare.render([], compare.summarize([]))


# -- the metric mapping -------------------------------------------------------------------------------


def test_every_crew_metric_maps_to_flaml():
    one_target = {name for name, metric in METRICS.items() if not metric.per_column}
    assert one_target == set(compare._FLAML_METRICS), "a crew metric has no FLAML mapping"
    assert one_target == set(compare.AUTOGLUON_METRICS), "a crew metric has no AutoGluon mapping"
    expected = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "f1": "f1", "f1_macro": "macro_f1",
                "roc_auc": "roc_auc", "log_loss": "log_loss", "rmse": "rmse", "mae": "mae", "rmsle": "rmse", "r2": "r2"}
    for name, flaml_name in expected.items():
        target = "regression" if METRICS[name].task == "regression" else "binary"
        assert compare.flaml_metric(name, target).name == flaml_name
    assert compare.flaml_metric("roc_auc", "multiclass").name == "roc_auc_ovr"  # crew grades one-vs-rest macro
    assert compare.flaml_metric("log_loss", "multiclass").name == "log_loss"
    assert compare.flaml_metric("rmsle").log_target and not compare.flaml_metric("rmse").log_target
    assert compare.flaml_metric("balanced_accuracy").custom and not compare.flaml_metric("accuracy").custom
    with pytest.raises(KeyError, match="no FLAML metric"):
        compare.flaml_metric("nope")


@needs_flaml
def test_mapped_builtin_names_are_flaml_metrics():
    from flaml.automl.ml import is_in_sklearn_metric_name_set, metric_loss_score

    for name, metric in METRICS.items():
        if metric.per_column:
            continue
        for target in (["binary", "multiclass"] if metric.task == "classification" else ["regression"]):
            mapped = compare.flaml_metric(name, target)
            if mapped.custom:
                continue
            assert is_in_sklearn_metric_name_set(mapped.name), (name, mapped)
    # FLAML's losses agree with crew's scores on a toy case (loss = 1 - score for these)
    y, p = np.array([0, 1, 1, 0, 1]), np.array([0.2, 0.7, 0.4, 0.1, 0.9])
    assert 1 - metric_loss_score("roc_auc", p, y) == pytest.approx(METRICS["roc_auc"].score(y, p, ["0", "1"]))


@needs_flaml
def test_balanced_accuracy_custom_metric():
    class Fixed:
        def predict(self, X):
            return np.array([0, 0, 0, 1])

    loss, extra = compare.balanced_accuracy_loss(None, np.array([0, 0, 1, 1]), Fixed(), None, None, None)
    assert extra["balanced_accuracy"] == pytest.approx(0.75) and loss == pytest.approx(0.25)


# -- features, dummy, CLI ------------------------------------------------------------------------------


def test_prepare_features_categories_and_dates():
    train = pd.DataFrame({"c": ["x", "y", None, "x"], "d": ["2020-01-01", "2020-02-03", "2021-05-06", None],
                          "n": [1.0, 2.0, np.nan, 4.0]})
    test = pd.DataFrame({"c": ["z", "y", None], "d": ["2020-01-09", None, "bad"], "n": [1.0, 2.0, 3.0]})
    a, b = compare.prepare_features(train, test)
    assert isinstance(a["c"].dtype, pd.CategoricalDtype) and list(a["c"].cat.categories) == ["x", "y"]
    assert b["c"].dtype == a["c"].dtype and b["c"].isna().tolist() == [True, False, True]  # unseen -> missing
    assert pd.api.types.is_datetime64_any_dtype(a["d"]) and b["d"].isna().tolist() == [False, True, True]
    assert a["n"].dtype == float and train["c"].dtype != a["c"].dtype  # numbers kept, inputs not modified


def test_dummy_raw_priors_and_mean():
    task = Task.load(EXAMPLE_TASK / "task.yaml")
    raw = compare.dummy_raw(task, np.array(["0", "1", "1", "1"], dtype=object), 3)
    assert raw.shape == (3, 2) and raw[0].tolist() == [0.25, 0.75]


def test_dummy_score_on_the_example_task(tmp_path):
    task = Task.load(EXAMPLE_TASK / "task.yaml")
    assert compare.dummy_score(task, EXAMPLE_ANSWERS, tmp_path) == pytest.approx(0.5)  # a constant: roc_auc 0.5
    assert grade(task, tmp_path / "dummy-breast-cancer.csv", EXAMPLE_ANSWERS).valid_submission


def test_dummy_score_regression_and_label_metric(shared_tasks, tmp_path):
    for name in ("cars-mpg", "penguins-species"):
        task = Task.load(shared_tasks / name / "task.yaml")
        score = compare.dummy_score(task, shared_tasks / name / "grading" / "answers.csv", tmp_path)
        assert math.isfinite(score)
    frame = pd.read_csv(tmp_path / "dummy-penguins-species.csv")
    assert frame["species"].nunique() == 1  # the majority class


def test_tasks_discovered_and_unknown_task_rejected(capsys):
    known = compare.discover_tasks()
    assert "breast-cancer" in known and known["breast-cancer"][1] == EXAMPLE_ANSWERS
    if HAS_FLAML:
        with pytest.raises(SystemExit):
            compare.main(["--tasks", "no-such-task"])
        assert "unknown task" in capsys.readouterr().err


def test_without_flaml_main_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "flaml", None)  # import flaml raises ImportError
    assert compare.main(["--tasks", "breast-cancer", "--peers", "flaml"]) == 2
    assert "pip install -e '.[bench]'" in capsys.readouterr().err


def test_without_autogluon_main_names_the_interpreter(capsys):
    assert compare.main(["--tasks", "breast-cancer", "--peers", "autogluon",
                         "--autogluon-python", sys.executable + "-missing"]) == 2
    assert "cannot import autogluon.tabular" in capsys.readouterr().err


def test_error_ratios_are_distances_to_a_perfect_score_with_a_floor():
    assert compare.error_ratio(0.9, 0.8, 0.5, 1.0) == pytest.approx(0.5)  # errors 0.1 vs 0.2
    assert compare.error_ratio(2.0, 4.0, 8.0, 0.0) == pytest.approx(0.5)  # a loss: same arithmetic
    assert compare.error_ratio(1.0, 0.9, 0.5, 1.0) == pytest.approx(0.005 / 0.1)  # perfect: floored at 1% of 0.5
    assert compare.error_ratio(None, 0.9, 0.5, 1.0) is None and compare.error_ratio(0.9, 0.9, 0.5, None) is None
    assert compare.geometric_mean([0.5, 2.0]) == pytest.approx(1.0) and compare.geometric_mean([]) is None
    row = compare.TaskResult(task="t", metric="m", higher_is_better=True, budget_s=10, dummy=0.5, crew=0.9,
                             flaml=0.8, autogluon=0.95, best=1.0)
    assert row.crew_ge_flaml and not row.crew_ge_autogluon and row.error_ratio_autogluon == pytest.approx(2.0)
    s = compare.summarize([row])
    assert s["geomean_error_ratio_flaml"] == pytest.approx(0.5) and s["crew_ge_autogluon"] == 0


def test_autogluon_worker_spec_never_names_the_answers(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(compare, "_run", lambda cmd, log, cpus, timeout, cwd: calls.append(cmd) or (0.0, 0))
    task = Task.load(EXAMPLE_TASK / "task.yaml")
    compare.run_autogluon(task, EXAMPLE_TASK, tmp_path / "ag", 60.0, 0, [0], "python-x")
    spec = json.loads((tmp_path / "ag" / "spec.json").read_text())
    assert "answers" not in json.dumps(spec) and "grading" not in json.dumps(spec)
    assert spec["ag_metric"] == "roc_auc" and spec["presets"] == "best_quality" and spec["n_jobs"] == 1
    assert calls[0][0] == "python-x" and calls[0][1].endswith("autogluon_worker.py")


def test_flaml_worker_spec_never_names_the_answers(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(compare, "_run", lambda cmd, log, cpus, timeout, cwd: calls.append(cmd) or (0.0, 0))
    task = Task.load(EXAMPLE_TASK / "task.yaml")
    compare.run_flaml(task, EXAMPLE_TASK, tmp_path / "flaml", 60.0, 0, [0])
    spec = (tmp_path / "flaml" / "spec.json").read_text()
    assert "answers" not in spec and "grading" not in spec
    assert json.loads(spec)["n_jobs"] == 1 and json.loads(spec)["margin_s"] == 3.0
    assert calls[0][-2:] == ["--flaml-worker", str(tmp_path / "flaml" / "spec.json")]
