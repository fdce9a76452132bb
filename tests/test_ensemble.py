"""Final selection (crew.tools.ensemble): loading and aligning experiment predictions, greedy ensemble selection,
the honest ensemble-versus-single decision, and submissions that grading accepts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from crew import METRICS, Task, grade
from crew._grading import check_submission
from crew.tools.ensemble import (
    Candidates,
    EnsembleError,
    Selection,
    _encode,
    _scorer,
    choose,
    ensemble_selection,
    load_candidates,
    score_raw,
    select,
)
from crew.tools.submission import submission_frame, task_rows

# -- builders -----------------------------------------------------------------------------------


class Synthetic:
    """A task folder written in the TASK_FORMAT layout, with its hidden test answers and the rows' ids."""

    def __init__(self, tmp_path: Path, *, metric: str, y_train: np.ndarray, y_test: np.ndarray,
                 id_column: str | None = "id", name: str = "synthetic") -> None:
        self.root = tmp_path / name
        (self.root / "data").mkdir(parents=True)
        rng = np.random.default_rng(0)
        n, m = len(y_train), len(y_test)
        self.train_ids = np.arange(1000, 1000 + n) if id_column else np.arange(n)
        self.test_ids = np.arange(9000, 9000 + m) if id_column else np.arange(m)
        train = pd.DataFrame({"x": rng.normal(size=n), "target": y_train})
        test = pd.DataFrame({"x": rng.normal(size=m)})
        answers = pd.DataFrame({"target": y_test})
        if id_column:
            train.insert(0, id_column, self.train_ids)
            test.insert(0, id_column, self.test_ids)
            answers.insert(0, id_column, self.test_ids)
        train.to_csv(self.root / "data" / "train.csv", index=False)
        test.to_csv(self.root / "data" / "test.csv", index=False)
        self.answers = tmp_path / f"{name}-answers.csv"
        answers.to_csv(self.answers, index=False)
        ids = f"id_column: {id_column}\n" if id_column else ""
        (self.root / "task.yaml").write_text(
            f"name: {name}\nkind: tabular\ndata: {{train: data/train.csv, test: data/test.csv}}\n"
            f"target: target\n{ids}metric: {metric}\n")
        self.task = Task.load(self.root)
        self.id_name = id_column or "row"
        self.experiments = tmp_path / f"{name}-experiments"

    def columns(self) -> list[str]:
        return ["target"] if self.task.target_type == "regression" else self.task.classes

    def experiment(self, name: str, oof: np.ndarray, test: np.ndarray, *, shuffle: int | None = None,
                   files: tuple[str, ...] = ("oof.csv", "test_pred.csv")) -> Path:
        """An experiment folder as a pipelines script leaves it (rows optionally shuffled: alignment is by id)."""
        folder = self.experiments / name
        folder.mkdir(parents=True)
        for file, ids, raw in (("oof.csv", self.train_ids, oof), ("test_pred.csv", self.test_ids, test)):
            if file not in files:
                continue
            frame = pd.DataFrame(np.asarray(raw).reshape(len(ids), -1), columns=self.columns())
            frame.insert(0, self.id_name, ids)
            if shuffle is not None:
                frame = frame.sample(frac=1.0, random_state=shuffle)
            frame.to_csv(folder / file, index=False)
        (folder / "metrics.json").write_text(json.dumps({"metric": self.task.metric, "cv": 0.5, "cv_std": 0.0, "folds": []}))
        return folder

    def assert_gradable(self, selection: Selection, tmp_path: Path) -> pd.DataFrame:
        frame = submission_frame(self.task, selection.test_ids, selection.test)
        as_polars = pl.DataFrame({c: frame[c].tolist() for c in frame.columns})
        reason, _ = check_submission(self.task, as_polars, pl.read_csv(self.answers))
        assert reason is None
        path = tmp_path / f"{self.task.name}-submission.csv"
        frame.to_csv(path, index=False)
        report = grade(self.task, path, self.answers)
        assert report.valid_submission and report.error is None and np.isfinite(report.score)
        return frame


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _binary(p: np.ndarray) -> np.ndarray:
    return np.column_stack([1 - p, p])


@pytest.fixture
def binary(tmp_path):
    """roc_auc: two equally good models with independent noise, so their average is clearly better."""
    rng = np.random.default_rng(1)
    z_train, z_test = rng.normal(size=600), rng.normal(size=150)
    y_train = (z_train + 0.3 * rng.normal(size=600) > 0).astype(int)
    y_test = (z_test + 0.3 * rng.normal(size=150) > 0).astype(int)
    s = Synthetic(tmp_path, metric="roc_auc", y_train=y_train, y_test=y_test, name="bin")

    def model(z: np.ndarray) -> np.ndarray:
        return _binary(_sigmoid(1.5 * z + 1.5 * rng.normal(size=len(z))))

    s.oofs = {"a": model(z_train), "b": model(z_train)}
    s.folders = [s.experiment("a", s.oofs["a"], model(z_test), shuffle=3), s.experiment("b", s.oofs["b"], model(z_test))]
    return s


# -- loading ----------------------------------------------------------------------------------------


def test_candidates_are_aligned_by_id_and_scored(binary):
    candidates = load_candidates(binary.task, binary.folders)
    assert isinstance(candidates, Candidates) and [c.name for c in candidates] == ["a", "b"]
    assert not candidates.skipped
    a = candidates[0]
    np.testing.assert_allclose(a.oof, binary.oofs["a"])  # written shuffled, read back in train order
    assert a.test.shape == (150, 2) and a.reported_cv == 0.5
    assert a.score == pytest.approx(score_raw(binary.task, task_rows(binary.task).y, binary.oofs["a"]))


def test_probabilities_off_by_float_rounding_are_used_not_skipped(binary):
    """Averaging folds x repeats x seeds can sum a probability to 1 + 2e-16; final selection once skipped such
    an experiment as 'outside [0, 1] (0 to 1)'. Rounding is read and clipped; a real excursion is still refused."""
    rounded = binary.oofs["a"].copy()
    rounded[0] = [sum([1 / 9] * 9) - 1.0, sum([1 / 9] * 9)]  # -> (2.2e-16, 1 + 2.2e-16)
    assert rounded.max() > 1.0
    test = np.full((150, 2), 0.5)
    kept = load_candidates(binary.task, [binary.experiment("rounded", rounded, test)])
    assert [c.name for c in kept] == ["rounded"] and kept[0].oof.max() == 1.0
    wrong = rounded.copy()
    wrong[0] = [-0.01, 1.01]
    skipped = load_candidates(binary.task, [binary.experiment("wrong", wrong, test)]).skipped
    assert len(skipped) == 1 and "outside [0, 1] (-0.01 to 1.01)" in skipped[0].reason


def test_unusable_folders_are_reported_not_dropped(binary, tmp_path):
    s = binary
    good_oof = s.oofs["a"]
    test = np.full((150, 2), 0.5)
    no_oof = s.experiment("no-oof", good_oof, test, files=("test_pred.csv",))
    no_test = s.experiment("no-test", good_oof, test, files=("oof.csv",))
    shifted = s.experiment("shifted", good_oof, test)
    frame = pd.read_csv(shifted / "oof.csv")
    frame["id"] += 1
    frame.to_csv(shifted / "oof.csv", index=False)
    short = s.experiment("short", good_oof, test)
    pd.read_csv(short / "oof.csv").head(10).to_csv(short / "oof.csv", index=False)
    no_class = s.experiment("no-class", good_oof, test)
    pd.read_csv(no_class / "oof.csv").drop(columns="0").to_csv(no_class / "oof.csv", index=False)
    with_nan = s.experiment("nan", good_oof, test)
    frame = pd.read_csv(with_nan / "oof.csv")
    frame.loc[3, "1"] = np.nan
    frame.to_csv(with_nan / "oof.csv", index=False)
    missing_folder = tmp_path / "never-ran"

    bad = [no_oof, no_test, shifted, short, no_class, with_nan, missing_folder]
    candidates = load_candidates(s.task, [s.folders[0], *bad])
    assert [c.name for c in candidates] == ["a"]
    reasons = {skip.folder.name: skip.reason for skip in candidates.skipped}
    assert set(reasons) == {f.name for f in bad}
    assert "oof.csv is missing" in reasons["no-oof"]
    assert "test_pred.csv is missing" in reasons["no-test"]
    assert "that are not in the train table" in reasons["shifted"]  # the reviewer's words: one artifact reader
    assert "has 10 rows, the task's train table has 600" in reasons["short"]
    assert "expected one probability column per class ['0', '1']" in reasons["no-class"]
    assert "missing or infinite" in reasons["nan"]
    assert "not a folder" in reasons["never-ran"]

    with pytest.raises(EnsembleError, match="shifted"):
        load_candidates(s.task, [s.folders[0], shifted], strict=True)
    selection = select(s.task, [*s.folders, shifted])
    assert [skip.folder.name for skip in selection.skipped] == ["shifted"]
    assert "skipped 1 folder(s)" in selection.rationale and "shifted" in selection.rationale
    with pytest.raises(EnsembleError, match="no usable"):
        select(s.task, bad)


# -- the decision -----------------------------------------------------------------------------------


def test_binary_roc_auc_complementary_models_make_an_ensemble(binary, tmp_path):
    selection = select(binary.task, binary.folders, rounds=25, seed=0, stack=False)
    assert selection.kind == "ensemble", selection.rationale
    assert selection.weights["a"] > 0 and selection.weights["b"] > 0
    assert selection.gain > selection.gain_se > 0
    assert selection.ensemble_cv > selection.single_cv
    assert selection.cv == selection.ensemble_cv and selection.spread >= 0
    assert selection.rationale.startswith("ensemble") and "nested 5-fold" in selection.rationale
    assert selection.in_sample > max(selection.candidate_scores.values())
    assert selection.oof.shape == (600, 2) and selection.test.shape == (150, 2)
    frame = binary.assert_gradable(selection, tmp_path)
    assert list(frame.columns) == ["id", "target"] and frame["target"].between(0, 1).all()
    json.dumps(selection.summary())  # JSON-ready for the blackboard


def test_weights_are_deterministic_for_a_seed(binary):
    first, second = (select(binary.task, binary.folders, seed=7) for _ in range(2))
    assert first.weights == second.weights and first.ensemble_weights == second.ensemble_weights
    assert first.cv == second.cv and first.gain_se == second.gain_se
    np.testing.assert_array_equal(first.test, second.test)


def test_multiclass_log_loss_without_id_column(tmp_path):
    rng = np.random.default_rng(2)
    labels = np.array(["a", "b", "c"])
    logits_train, logits_test = 1.5 * rng.normal(size=(450, 3)), 1.5 * rng.normal(size=(120, 3))
    y_train = labels[[rng.choice(3, p=p) for p in _softmax(logits_train)]]
    y_test = labels[[rng.choice(3, p=p) for p in _softmax(logits_test)]]
    s = Synthetic(tmp_path, metric="log_loss", y_train=y_train, y_test=y_test, id_column=None, name="multi")

    def model(logits: np.ndarray) -> np.ndarray:
        return _softmax(logits + 1.2 * rng.normal(size=logits.shape))

    folders = [s.experiment(n, model(logits_train), model(logits_test), shuffle=i) for i, n in enumerate(["m1", "m2", "m3"])]
    selection = select(s.task, folders)
    assert selection.kind == "ensemble", selection.rationale
    assert sum(w > 0 for w in selection.weights.values()) >= 2
    assert selection.cv < min(selection.candidate_scores.values())  # lower is better
    frame = s.assert_gradable(selection, tmp_path)
    assert list(frame.columns) == ["a", "b", "c"] and len(frame) == 120


def test_accuracy_strong_model_plus_junk_keeps_the_single_model(tmp_path):
    rng = np.random.default_rng(3)
    y_train, y_test = rng.choice([1, 2, 3], size=500), rng.choice([1, 2, 3], size=100)
    s = Synthetic(tmp_path, metric="accuracy", y_train=y_train, y_test=y_test, name="acc")

    def strong(y: np.ndarray) -> np.ndarray:
        return _softmax(2.0 * np.eye(3)[y - 1] + rng.normal(size=(len(y), 3)))

    folders = [s.experiment("junk", rng.dirichlet(np.ones(3), 500), rng.dirichlet(np.ones(3), 100)),
               s.experiment("strong", strong(y_train), strong(y_test)),
               s.experiment("junk2", rng.dirichlet(np.ones(3), 500), rng.dirichlet(np.ones(3), 100))]
    selection = select(s.task, folders)
    assert selection.kind == "single" and selection.best_single == "strong", selection.rationale
    assert selection.weights == {"junk": 0, "strong": 1, "junk2": 0}
    assert selection.rationale.startswith("single model strong")
    assert selection.candidate_scores["strong"] > 0.8 > max(selection.candidate_scores["junk"], selection.candidate_scores["junk2"])
    frame = s.assert_gradable(selection, tmp_path)
    assert set(frame["target"]) <= {"1", "2", "3"}  # canonical class labels
    np.testing.assert_array_equal(selection.test, load_candidates(s.task, folders)[1].test)


def _regression(tmp_path: Path, metric: str, name: str) -> tuple[Synthetic, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    y_train, y_test = 10 + 3 * rng.normal(size=500), 10 + 3 * rng.normal(size=120)
    return Synthetic(tmp_path, metric=metric, y_train=y_train, y_test=y_test, name=name), y_train, y_test


def test_regression_rmse_tiny_in_sample_gain_keeps_the_single_model(tmp_path):
    s, y_train, y_test = _regression(tmp_path, "rmse", "tiny")
    rng = np.random.default_rng(5)
    a_oof, a_test = y_train + rng.normal(size=500), y_test + rng.normal(size=120)
    b_oof, b_test = a_oof + 0.05 * rng.normal(size=500), a_test + 0.05 * rng.normal(size=120)
    selection = select(s.task, [s.experiment("a", a_oof, a_test), s.experiment("b", b_oof, b_test)], stack=False)
    assert selection.kind == "single", selection.rationale
    assert selection.ensemble_weights["b"] > 0  # greedy found an in-sample gain...
    assert selection.gain <= selection.gain_se  # ...that held-out rows do not confirm
    assert sum(selection.weights.values()) == 1
    s.assert_gradable(selection, tmp_path)


def test_regression_rmse_complementary_models_make_an_ensemble(tmp_path):
    s, y_train, y_test = _regression(tmp_path, "rmse", "comp")
    rng = np.random.default_rng(6)
    folders = [s.experiment(n, y_train + rng.normal(size=500), y_test + rng.normal(size=120)) for n in ("a", "b")]
    selection = select(s.task, folders, stack=False)
    assert selection.kind == "ensemble", selection.rationale
    stacked = select(s.task, folders)  # a ridge on the two also shrinks their noise towards the mean: better still
    assert stacked.kind == "stack" and stacked.cv < selection.cv
    assert selection.weights["a"] > 0 and selection.weights["b"] > 0
    assert selection.cv < min(selection.candidate_scores.values())
    s.assert_gradable(selection, tmp_path)


def test_rmsle_submission_is_clipped_at_zero_and_one_candidate_is_single(tmp_path):
    rng = np.random.default_rng(7)
    y_train, y_test = rng.exponential(size=200), rng.exponential(size=50)
    s = Synthetic(tmp_path, metric="rmsle", y_train=y_train, y_test=y_test, name="rmsle")
    selection = select(s.task, [s.experiment("only", y_train + rng.normal(size=200), y_test + rng.normal(size=50))])
    assert selection.kind == "single" and "only usable candidate" in selection.rationale
    assert selection.test.min() < 0
    frame = s.assert_gradable(selection, tmp_path)
    assert frame["target"].min() == 0.0


def test_greedy_selection_init_and_weights(binary):
    candidates = load_candidates(binary.task, binary.folders)
    single_start = ensemble_selection(binary.task, candidates, rounds=1)
    assert sorted(single_start.values()) == [0, 1]
    assert ensemble_selection(binary.task, candidates, rounds=10, init=2)["a"] >= 1
    assert all(w >= 1 for w in ensemble_selection(binary.task, candidates, rounds=10, init=2).values())
    with pytest.raises(EnsembleError):
        choose(binary.task, [])
    with pytest.raises(ValueError, match="folds >= 2"):
        choose(binary.task, candidates, folds=1)


# -- scoring ------------------------------------------------------------------------------------------


_KINDS = {name: (["binary", "multiclass"] if m.task == "classification" and not m.binary_only else
                 ["binary"] if m.binary_only else ["regression"]) for name, m in METRICS.items()
          if not m.per_column}  # a column-wise metric's task is solved one column at a time, by its per-column metric


@pytest.mark.parametrize(("metric", "target_type"), [(m, k) for m, kinds in _KINDS.items() for k in kinds])
def test_fast_scorer_equals_the_metric(tmp_path, metric, target_type):
    """The greedy loop's scorer must agree with crew's Metric.score (what grading uses), ties and clipping included."""
    rng = np.random.default_rng(8)
    n = 300
    if target_type == "regression":
        y, y_test = rng.exponential(size=n), rng.exponential(size=5)
        raw = y + rng.normal(size=n)  # some negatives: rmsle clips them
    else:
        labels = ["no", "yes"] if target_type == "binary" else ["x", "y", "z"]
        if METRICS[metric].ordinal:  # ratings, ordered as numbers ("10" after "2")
            labels = [1, 2] if target_type == "binary" else [1, 2, 10]
        y, y_test = rng.choice(labels, size=n), rng.choice(labels, size=5)
        raw = np.round(rng.dirichlet(np.ones(len(labels)), n), 1)  # coarse: ties in ranks and in argmax
        raw[raw.sum(axis=1) == 0] = 1.0
    s = Synthetic(tmp_path, metric=metric, y_train=y, y_test=y_test, name="fast")
    truth = task_rows(s.task).y
    for sample in (raw, raw[:40]):
        fast = _scorer(s.task, _encode(s.task, truth[: len(sample)]))(sample)
        assert fast == pytest.approx(score_raw(s.task, truth[: len(sample)], sample), rel=1e-9, abs=1e-12)


def test_a_label_metric_that_decides_gets_its_threshold_fitted_on_the_blend(tmp_path):
    """balanced accuracy on a 10%-positive target whose models never put a positive above 0.5: argmax would
    predict one class (0.5); the selection fits class weights on the chosen option and submits with them."""
    rng = np.random.default_rng(3)
    z_train, z_test = rng.normal(size=800), rng.normal(size=200)
    y_train = (z_train + 0.5 * rng.normal(size=800) > 1.3).astype(int)
    y_test = (z_test + 0.5 * rng.normal(size=200) > 1.3).astype(int)
    s = Synthetic(tmp_path, metric="balanced_accuracy", y_train=y_train, y_test=y_test, name="decide")

    def model(z: np.ndarray) -> np.ndarray:
        return _binary(0.45 * _sigmoid(2 * (z - 1.3) + rng.normal(size=len(z))))

    folders = [s.experiment("a", model(z_train), model(z_test)), s.experiment("b", model(z_train), model(z_test))]
    selection = select(s.task, folders, seed=0)
    assert selection.class_weights is not None and selection.class_weights[1] > 1
    assert selection.cv > 0.75 and "labels decided with class weights" in selection.rationale
    frame = submission_frame(s.task, selection.test_ids, selection.test, selection.class_weights)
    assert frame["target"].astype(str).eq("1").any()  # plain argmax would never predict the positive class
    path = tmp_path / "decided.csv"
    frame.to_csv(path, index=False)
    assert grade(s.task, path, s.answers).score > 0.75


def test_a_stack_recalibrates_overconfident_models_when_it_wins_the_nested_check(tmp_path):
    """log_loss with two overconfident models: averaging keeps them overconfident, a logistic stack on their
    log-odds learns to shrink them, and wins on held-out rows."""
    rng = np.random.default_rng(5)
    z_train, z_test = rng.normal(size=1000), rng.normal(size=250)
    y_train = (z_train + rng.normal(size=1000) > 0).astype(int)
    y_test = (z_test + rng.normal(size=250) > 0).astype(int)
    s = Synthetic(tmp_path, metric="log_loss", y_train=y_train, y_test=y_test, name="stack")

    def model(z: np.ndarray) -> np.ndarray:
        return _binary(_sigmoid(6 * (z + 0.5 * rng.normal(size=len(z)))))

    folders = [s.experiment("a", model(z_train), model(z_test)), s.experiment("b", model(z_train), model(z_test))]
    selection = select(s.task, folders, seed=0)
    assert selection.kind == "stack" and selection.weights == {"a": 1, "b": 1}
    assert selection.cv < min(selection.candidate_scores.values()) - 0.05 and "stack" in selection.rationale
    frame = s.assert_gradable(selection, tmp_path)
    assert frame["target"].min() > 0 and frame["target"].max() < 1


def test_the_stack_is_given_up_when_its_nested_fits_outlast_their_time(tmp_path, monkeypatch):
    import crew.tools.ensemble as ensemble_module
    rng = np.random.default_rng(5)
    z = rng.normal(size=400)
    y = (z + rng.normal(size=400) > 0).astype(int)
    s = Synthetic(tmp_path, metric="log_loss", y_train=y, y_test=y[:100], name="slow")
    folders = [s.experiment(n, _binary(_sigmoid(6 * (z + 0.5 * rng.normal(size=400)))),
                            _binary(_sigmoid(6 * z[:100]))) for n in ("a", "b")]
    monkeypatch.setattr(ensemble_module, "STACK_SECONDS", 0.0)
    selection = select(s.task, folders, seed=0)
    assert selection.kind != "stack" and "the stack was given up after 0s" in selection.rationale


def test_on_many_rows_greedy_weights_are_fitted_on_a_sample_and_still_find_the_ensemble(binary, monkeypatch):
    import crew.tools.ensemble as ensemble_module
    seen: list[int] = []
    proxy = ensemble_module._proxy

    def counting(task, target):
        seen.append(len(target))
        return proxy(task, target)

    monkeypatch.setattr(ensemble_module, "GREEDY_ROWS", 200)
    monkeypatch.setattr(ensemble_module, "_proxy", counting)
    selection = select(binary.task, binary.folders, rounds=25, seed=0, stack=False)
    assert seen and set(seen) == {200}  # every greedy fit (nested and final) on 200 of the 600 / 480 rows
    assert selection.kind == "ensemble" and selection.weights["a"] > 0 and selection.weights["b"] > 0
