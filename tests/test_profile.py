"""Profiling: column kinds, missing values, duplicates, imbalance and leakage suspects on data built to show them."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from crew import Task
from crew.tools.profile import profile_task


@pytest.fixture
def synthetic_task(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    signal = rng.normal(size=n)
    target = (signal + rng.normal(scale=0.8, size=n) > 1.0).astype(int)  # imbalanced, about 1:4
    frame = pl.DataFrame({
        "id": np.arange(1, n + 1),
        "signal": signal,
        "noisy": pl.Series(np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n))).fill_nan(None),
        "colour": rng.choice(["red", "green", "blue"], size=n),
        "when": [f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(n)],
        "note": [" ".join(rng.choice(["good", "bad", "very", "late", "item"], size=5)) for _ in range(n)],
        "constant": ["same"] * n,
        "leak": target * 10 + rng.integers(0, 2, size=n),
        "label": target,
    })
    frame.head(320).write_csv(tmp_path / "train.csv")
    frame.tail(80).drop("label").write_csv(tmp_path / "test.csv")
    (tmp_path / "task.yaml").write_text("name: synth\ndata: {train: train.csv, test: test.csv}\n"
                                        "target: label\nid_column: id\nmetric: roc_auc\n")
    return Task.load(tmp_path)


def test_column_kinds(synthetic_task):
    profile = profile_task(synthetic_task)
    kinds = {c.name: c.kind for c in profile.columns}
    assert kinds == {"signal": "numeric", "noisy": "numeric", "colour": "categorical", "when": "datetime",
                     "note": "text", "constant": "constant", "leak": "numeric"}
    noisy = next(c for c in profile.columns if c.name == "noisy")
    assert 0.1 < noisy.missing < 0.3


def test_target_balance_and_leakage(synthetic_task):
    profile = profile_task(synthetic_task)
    assert profile.target.type == "binary" and set(profile.target.classes) == {"0", "1"}
    assert profile.target.imbalance > 2
    assert list(profile.leakage_suspects) == ["leak"]


def test_regression_target_and_id_columns(tmp_path):
    rng = np.random.default_rng(1)
    n = 200
    x = rng.normal(size=n)
    frame = pl.DataFrame({"row": np.arange(n), "x": x, "y": np.exp(x + rng.normal(scale=0.1, size=n))})
    frame.head(150).write_csv(tmp_path / "train.csv")
    frame.tail(50).drop("y").write_csv(tmp_path / "test.csv")
    (tmp_path / "task.yaml").write_text("name: reg\ndata: {train: train.csv, test: test.csv}\ntarget: y\nmetric: rmse\n")
    profile = profile_task(Task.load(tmp_path))
    assert {c.name: c.kind for c in profile.columns} == {"row": "id", "x": "numeric"}
    assert profile.target.type == "regression" and profile.target.skew > 1
    assert profile.leakage_suspects == {}  # x predicts y well, but not almost perfectly


def test_development_tasks_profile_without_false_alarms(shared_tasks):
    for name in ("cars-mpg", "fair-affairs", "penguins-species", "wine-cultivar"):
        profile = profile_task(Task.load(shared_tasks / name))
        assert profile.leakage_suspects == {}, name
        assert not [c.name for c in profile.columns if c.kind in ("id", "constant")], name


def test_numbers_with_missing_markers_and_dates_in_other_formats(tmp_path):
    n = 60
    frame = pl.DataFrame({
        "id": np.arange(n),
        "income": [("?" if i % 7 == 0 else "n/a" if i % 11 == 0 else str(1000 + 37 * i)) for i in range(n)],
        "visit": [f"{1 + i % 28:02d}/{1 + i % 12:02d}/2021" for i in range(n)],
        "seen": [f"{['Jan', 'Feb', 'Mar'][i % 3]} {1 + i % 28}, 2020 10:{i % 60:02d}" for i in range(n)],
        "month": [["Jan", "Feb", "Mar"][i % 3] for i in range(n)],  # a month name alone is a category
        "grade": [("?" if i % 5 == 0 else "abc"[i % 3]) for i in range(n)],
        "y": np.arange(n) % 2,
    })
    frame.write_csv(tmp_path / "train.csv")
    frame.drop("y").write_csv(tmp_path / "test.csv")
    (tmp_path / "task.yaml").write_text("name: kinds\ndata: {train: train.csv, test: test.csv}\ntarget: y\n"
                                        "id_column: id\nmetric: accuracy\n")
    columns = {c.name: c for c in profile_task(Task.load(tmp_path)).columns}
    assert {name: c.kind for name, c in columns.items()} == {
        "income": "numeric", "visit": "datetime", "seen": "datetime", "month": "categorical", "grade": "categorical"}
    assert columns["income"].missing == pytest.approx(sum(i % 7 == 0 or i % 11 == 0 for i in range(n)) / n, abs=1e-3)


def test_text_columns_are_profiled_for_length_vocabulary_script_and_language() -> None:
    import polars as pl

    from crew.tools.profile import profile_text

    english = pl.Series(["the cat sat on the mat and it was happy", "you and I went to the park in the rain"] * 5)
    stats = profile_text(english, pl.Series(["the end"]))
    assert stats.script == "latin" and stats.language == "en" and stats.max_chars == 39
    assert stats.chars == 5 * (39 + 38) + 7 and stats.mean_words == 10.0 and stats.vocabulary == 16
    russian = profile_text(pl.Series(["я не знаю что это и как он это сделал"] * 3))
    assert (russian.script, russian.language) == ("cyrillic", "ru")
    codes = profile_text(pl.Series(["x9 zq7 kk", "pp vv ww"]))
    assert codes.language is None and codes.script == "latin"
