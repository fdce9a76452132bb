"""The label probe: honest out-of-fold predictions pass, in-sample ones and features computed from the target are
caught, each run twice in the real sandbox (the original train table, then the probe's copy with new labels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from crew import Task
from crew.sandbox import Launch, Limits, LocalExecutor
from crew.tools.probe import judge, judge_canaries, perturb_train
from tests.conftest import EXAMPLE_TASK
from tests.test_llm_team import GOOD

pytestmark = pytest.mark.e2e  # whole solves, suites or clusters: not in the fast tier

IN_SAMPLE = GOOD.replace("oof[valid_idx] = model.predict_proba(train.loc[valid_idx, features])[:, 1]",
                         "oof[:] = model.fit(train[features], y).predict_proba(train[features])[:, 1]")
# honest out-of-fold predictions, but a submission that is the sample one nudged by a rule, or labels looked up
SAMPLE = GOOD + """
sample = pd.read_csv(os.path.join(root, "data/sample_submission.csv"))
sample.loc[sample.index[:20], "malignant"] = np.random.default_rng(1).uniform(size=min(20, len(sample)))
sample.to_csv("predictions.csv", index=False)
sample.to_csv("test_pred.csv", index=False)
"""
LOOKUP = GOOD + """
known = dict(zip(train["id"], train["malignant"]))
guess = [known.get(i, 0.5) for i in test["id"]]
pd.DataFrame({"id": test["id"], "malignant": guess}).to_csv("predictions.csv", index=False)
"""
TARGET_FEATURE = GOOD.replace('features = [c for c in train.columns if c not in ("id", "malignant")]',
                              'train["leak"] = train["malignant"] + 0.0\ntest["leak"] = 0.5\n'
                              'features = [c for c in train.columns if c not in ("id", "malignant")]')


def _probe(code: str, tmp_path: Path, name: str):
    task = Task.load(EXAMPLE_TASK / "task.yaml")
    executor = LocalExecutor(root=tmp_path / "experiments")
    files = [task.data.train, task.data.test, task.data.sample_submission]
    limits = Limits(wall_time=120)
    first = executor.run(Launch(id=name, code=code, data_dir=str(task.root), data_files=files, limits=limits))
    assert first.reason == "ok", first.stderr_tail
    change = perturb_train(task, tmp_path / "probe", seed=0)
    second = executor.run(Launch(id=f"{name}-probe", code=code, data_dir=str(task.root), data_files=files,
                                 data_sources=change.sources, limits=limits))
    assert second.reason == "ok", second.stderr_tail
    return judge(task, change, Path(first.workdir), Path(second.workdir)), judge_canaries(task, change,
                                                                                       Path(second.workdir))


def test_honest_out_of_fold_predictions_pass(tmp_path):
    labels, canaries = _probe(GOOD, tmp_path, "honest")
    assert not labels.caught and abs(labels.z) < 3, labels
    assert not canaries.caught and canaries.z < 3 and canaries.rows >= 30, canaries


@pytest.mark.parametrize("code", [IN_SAMPLE, TARGET_FEATURE], ids=["in-sample oof", "feature from the target"])
def test_predictions_that_read_their_own_label_are_caught(tmp_path, code):
    assert code != GOOD
    verdict, _ = _probe(code, tmp_path, "cheat")
    assert verdict.caught and verdict.z > 5, verdict


@pytest.mark.parametrize("code", [SAMPLE, LOOKUP], ids=["tweaked sample submission", "labels looked up by id"])
def test_predictions_that_do_not_come_from_the_model_are_caught(tmp_path, code):
    labels, canaries = _probe(code, tmp_path, "handwritten")
    assert not labels.caught, labels  # its out-of-fold predictions are honest: only the canaries can tell
    assert canaries.caught and canaries.z > 5, canaries


def test_canaries_hide_among_the_test_rows(tmp_path):
    task = Task.load(EXAMPLE_TASK / "task.yaml")
    change = perturb_train(task, tmp_path, seed=3)
    test = pl.read_csv(change.sources[task.data.test])
    sample = pl.read_csv(change.sources[task.data.sample_submission])
    original = pl.read_csv(task.path(task.data.test))
    train = pl.read_csv(task.path(task.data.train))
    k = len(change.canary_rows)
    assert test.height == original.height + k and sample["id"].to_list() == test["id"].to_list()
    assert test["id"].n_unique() == test.height and not set(change.canary_ids) & set(map(str, train["id"]))
    planted = test.filter(pl.col("id").cast(pl.Utf8).is_in(change.canary_ids)).drop("id")
    assert planted.height == k and not set(change.canary_rows.tolist()) & set(change.rows.tolist())
    assert sorted(planted.rows()) == sorted(train[change.canary_rows.tolist()].drop("id", "malignant").rows())
    assert np.abs(np.sort(change.canary_positions) - np.arange(original.height, test.height)).sum() > 0  # shuffled
