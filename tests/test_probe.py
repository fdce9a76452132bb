"""The label probe: honest out-of-fold predictions pass, in-sample ones and features computed from the target are
caught, each run twice in the real sandbox (the original train table, then the probe's copy with new labels)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crew import Task
from crew.sandbox import Launch, Limits, LocalExecutor
from crew.tools.probe import judge, perturb_train
from tests.conftest import EXAMPLE_TASK
from tests.test_llm_team import GOOD

IN_SAMPLE = GOOD.replace("oof[valid_idx] = model.predict_proba(train.loc[valid_idx, features])[:, 1]",
                         "oof[:] = model.fit(train[features], y).predict_proba(train[features])[:, 1]")
TARGET_FEATURE = GOOD.replace('features = [c for c in train.columns if c not in ("id", "malignant")]',
                              'train["leak"] = train["malignant"] + 0.0\ntest["leak"] = 0.5\n'
                              'features = [c for c in train.columns if c not in ("id", "malignant")]')


def _probe(code: str, tmp_path: Path, name: str):
    task = Task.load(EXAMPLE_TASK / "task.yaml")
    executor = LocalExecutor(root=tmp_path / "experiments")
    files = [task.data.train, task.data.test]
    limits = Limits(wall_time=120)
    first = executor.run(Launch(id=name, code=code, data_dir=str(task.root), data_files=files, limits=limits))
    assert first.reason == "ok", first.stderr_tail
    copy = tmp_path / "probe" / Path(task.data.train).name
    change = perturb_train(task, copy, seed=0)
    second = executor.run(Launch(id=f"{name}-probe", code=code, data_dir=str(task.root), data_files=files,
                                 data_sources={task.data.train: str(copy)}, limits=limits))
    assert second.reason == "ok", second.stderr_tail
    return judge(task, change, Path(first.workdir), Path(second.workdir))


def test_honest_out_of_fold_predictions_pass(tmp_path):
    verdict = _probe(GOOD, tmp_path, "honest")
    assert not verdict.caught and abs(verdict.z) < 3, verdict


@pytest.mark.parametrize("code", [IN_SAMPLE, TARGET_FEATURE], ids=["in-sample oof", "feature from the target"])
def test_predictions_that_read_their_own_label_are_caught(tmp_path, code):
    assert code != GOOD
    verdict = _probe(code, tmp_path, "cheat")
    assert verdict.caught and verdict.z > 5, verdict
