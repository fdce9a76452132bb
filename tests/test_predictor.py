"""Saved experiment models (crew.tools.predictor): an experiment's model.skops predicts the task's test file as the
experiment did, and a file that is not what crew wrote is refused before anything in it is built."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crew import Task
from crew.sandbox import Launch, Limits, LocalExecutor
from crew.tools.pipelines import PipelineSpec, render
from crew.tools.predictor import ModelError, Predictor, load_experiment_model


def _task(root: Path, *, target: str = "binary") -> Task:
    rng = np.random.default_rng(0)
    n = 260
    x = rng.normal(size=n)
    city = rng.choice([f"c{i}" for i in range(40)], size=n)
    words = np.array(["late", "fine", "broken", "great", "slow", "cancel"])
    note = [" ".join(rng.choice(words, 4)) for _ in range(n)]
    when = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    signal = x + (np.char.find(np.array(note), "cancel") >= 0) + (pd.Series(city).str.endswith("1").to_numpy())
    frame = pd.DataFrame({"id": np.arange(n), "x": np.where(rng.random(n) < 0.1, np.nan, x).round(3),
                          "amount": [("?" if i % 13 == 0 else f"{v:.2f}") for i, v in enumerate(rng.gamma(2, 3, n))],
                          "city": city, "when": when.strftime("%d/%m/%Y"), "note": note})
    if target == "binary":
        frame["y"] = np.where(signal + rng.normal(scale=0.5, size=n) > 0.8, "yes", "no")
        metric = "log_loss"
    elif target == "multiclass":
        frame["y"] = np.digitize(signal + rng.normal(scale=0.5, size=n), [0.0, 1.0]).astype(str)
        metric = "f1_macro"
    else:
        frame["y"] = np.exp(signal + rng.normal(scale=0.3, size=n)).round(3)
        metric = "rmse"
    (root / "data").mkdir(parents=True)
    frame.head(200).to_csv(root / "data/train.csv", index=False)
    frame.tail(60).drop(columns="y").to_csv(root / "data/test.csv", index=False)
    (root / "task.yaml").write_text(f"name: saved\ndata: {{train: data/train.csv, test: data/test.csv}}\n"
                                    f"target: y\nid_column: id\nmetric: {metric}\n")
    return Task.load(root)


def _run(task: Task, tmp_path: Path, **fields) -> Path:
    spec = PipelineSpec(numeric=["x", "amount"], categorical=["city"], datetime=["when"], text=["note"], folds=3,
                        features=["datetime_parts", "text_tfidf", "numeric_interactions", "frequency_encoding"],
                        target_encode=["city"], **fields)
    result = LocalExecutor(root=tmp_path / "experiments").run(
        Launch(code=render(spec, task), data_dir=str(task.root), limits=Limits(wall_time=180, memory=3 * 1024**3)))
    assert result.reason == "ok", result.stderr_tail
    return Path(result.workdir)


@pytest.mark.parametrize(("model", "target", "extra"), [
    ("lightgbm", "binary", {"preprocessing": ["native_categories"]}),
    ("xgboost", "multiclass", {}),
    ("catboost", "binary", {}),
    ("hist_gradient_boosting", "regression", {"bags": 2}),
    ("random_forest", "multiclass", {}),
    ("linear", "regression", {}),
])
def test_a_saved_model_predicts_the_test_file_as_the_experiment_did(tmp_path: Path, model: str, target: str,
                                                                   extra: dict) -> None:
    task = _task(tmp_path / "task", target=target)
    folder = _run(task, tmp_path, model=model, **extra)
    saved = load_experiment_model(folder)
    test = pd.read_csv(task.path(task.data.test))
    raw = saved.predict_raw(test)
    expected = pd.read_csv(folder / "test_pred.csv").drop(columns="id").to_numpy()
    assert raw.reshape(expected.shape) == pytest.approx(expected, rel=1e-6, abs=1e-9)
    if target != "regression":
        labels = np.asarray(saved.classes)[saved.decide(raw).argmax(axis=1)]
        submitted = pd.read_csv(folder / "predictions.csv")
        if task.metric_info.submission == "label":
            assert labels.tolist() == submitted["y"].astype(str).tolist()
    # new rows, one at a time and shuffled: each row's prediction does not depend on the others
    shuffled = test.sample(frac=1.0, random_state=1)
    again = saved.predict_raw(shuffled)
    assert again.reshape(len(test), -1) == pytest.approx(raw.reshape(len(test), -1)[shuffled.index.to_numpy()],
                                                       rel=1e-6, abs=1e-9)
    assert saved.predict_raw(test.head(1)).reshape(1, -1) == pytest.approx(raw.reshape(len(test), -1)[:1],
                                                                           rel=1e-6, abs=1e-9)


def test_files_that_are_not_crews_models_are_refused(tmp_path: Path) -> None:
    import skops.io as sio

    with pytest.raises(ModelError, match="saved no model"):
        load_experiment_model(tmp_path)
    (tmp_path / "model.skops").write_bytes(b"not a zip file")
    with pytest.raises(ModelError, match="not a readable skops file"):
        load_experiment_model(tmp_path)
    sio.dump({"format": 1, "x": pd.Timestamp("2020-01-01")}, tmp_path / "model.skops")  # a type crew never saves
    with pytest.raises(ModelError, match="does not trust"):
        load_experiment_model(tmp_path)
    sio.dump({"format": 99}, tmp_path / "model.skops")
    with pytest.raises(ModelError, match="format 1"):
        load_experiment_model(tmp_path)


def test_a_table_without_the_models_columns_is_refused(tmp_path: Path) -> None:
    task = _task(tmp_path / "task", target="binary")
    saved = load_experiment_model(_run(task, tmp_path, model="linear"))
    test = pd.read_csv(task.path(task.data.test))
    with pytest.raises(ModelError, match="lacks column"):
        saved.predict_raw(test.drop(columns=["city"]))
    assert saved.feature_names_in == ["x", "amount", "city", "when", "note"]


def test_the_schema_check_reads_dates_in_the_training_format(tmp_path: Path) -> None:
    task = _task(tmp_path / "task", target="binary")
    saved = load_experiment_model(_run(task, tmp_path, model="linear"))
    schema = {"x": {"kind": "numeric"}, "amount": {"kind": "numeric"}, "city": {"kind": "categorical"},
              "when": {"kind": "datetime"}, "note": {"kind": "text"}}
    predictor = Predictor({"schema": schema, "task": {"id_column": "id", "target": "y"}}, {"m": saved})
    test = pd.read_csv(task.path(task.data.test))
    assert predictor.check(test) == ([], [])
    some = test.assign(when=test["when"].where(test.index >= 2, "soon"))
    problems, notes = predictor.check(some)
    assert not problems and len(notes) == 1
    assert "2 row(s) hold values that are not dates in the training format (%d/%m/%Y), such as 'soon'" in notes[0]
    problems, _ = predictor.check(test.assign(when="soon", note=123))  # a text column reads anything
    assert len(problems) == 1 and problems[0].startswith("column 'when': 60 row(s)")


@pytest.mark.parametrize("nb_weights", [False, True], ids=["tfidf", "nb_weights"])
def test_a_linear_model_on_sparse_text_ngrams_saves_and_predicts_as_the_experiment_did(tmp_path: Path,
                                                                                       nb_weights: bool) -> None:
    """With NB-SVM's weights too: the experiment's own NBWeights is saved as scikit-learn's MaxAbsScaler."""
    task = _task(tmp_path / "task", target="multiclass")
    spec = PipelineSpec(numeric=["x", "amount"], categorical=["city"], datetime=["when"], text=["note"], folds=3,
                        features=["datetime_parts", "text_ngrams", *(["nb_weights"] if nb_weights else [])],
                        model="linear")
    assert ("class NBWeights" in render(spec, task)) == nb_weights
    result = LocalExecutor(root=tmp_path / "experiments").run(
        Launch(code=render(spec, task), data_dir=str(task.root), limits=Limits(wall_time=180, memory=3 * 1024**3)))
    assert result.reason == "ok", result.stderr_tail
    saved = load_experiment_model(result.workdir)
    test = pd.read_csv(task.path(task.data.test))
    expected = pd.read_csv(Path(result.workdir) / "test_pred.csv").drop(columns="id").to_numpy()
    assert saved.predict_raw(test) == pytest.approx(expected, rel=1e-6, abs=1e-9)
    _, Z, _ = saved.inputs(test)[0]
    assert Z.shape[1] > 100 and hasattr(Z, "tocsr")  # the n-grams stay sparse
