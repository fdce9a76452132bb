"""kind: seq2seq: the task contract, the normalizer experiment script, the normalize workflow, exact-text grading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import crew
from crew import Blackboard, Task, grade

WORDS = ["the", "cat", "sat", "on", "a", "mat", "in", "of", "dog", "runs"]


def token_task(root: Path, *, sentences: int = 300, seed: int = 0, wall_time: str = "40s", memory: str = "4GiB") -> Path:
    """A small normalisation task: words mostly unchanged, some upper-case words spelt letter by letter, numbers
    spelt out, and the token "st" that reads "street" after a number and "saint" before a name (context)."""
    from num2words import num2words

    rng = np.random.default_rng(seed)
    rows = []
    for sentence in range(sentences):
        tokens: list[tuple[str, str]] = []
        for _ in range(int(rng.integers(4, 9))):
            draw = rng.random()
            if draw < 0.15:
                number = int(rng.integers(0, 5000))
                tokens.append((str(number), num2words(number)))
            elif draw < 0.22:
                word = "".join(rng.choice(list("ABCDEFGH"), size=3))
                tokens.append((word, " ".join(word.lower())))
            elif draw < 0.3:
                tokens += [("12", "twelve"), ("st", "street")] if rng.random() < 0.5 else [("st", "saint"),
                                                                                          ("Paul", "Paul")]
            else:
                word = str(rng.choice(WORDS))
                tokens.append((word, word))
        rows += [(sentence, i, before, after) for i, (before, after) in enumerate(tokens)]
    frame = pd.DataFrame(rows, columns=["sentence_id", "token_id", "before", "after"])
    frame["id"] = frame["sentence_id"].astype(str) + "_" + frame["token_id"].astype(str)
    cut = int(sentences * 0.8)
    (root / "data").mkdir(parents=True)
    (root / "grading").mkdir()
    frame[frame.sentence_id < cut].to_csv(root / "data" / "train.csv", index=False)
    test = frame[frame.sentence_id >= cut]
    test[["id", "sentence_id", "token_id", "before"]].to_csv(root / "data" / "test.csv", index=False)
    test[["id", "after"]].to_csv(root / "grading" / "answers.csv", index=False)
    (root / "task.yaml").write_text(f"name: tokens\nkind: seq2seq\ndata:\n  train: data/train.csv\n  test: "
                                    f"data/test.csv\nsource: before\ntarget: after\ngroup: sentence_id\nid_column: id\n"
                                    f"metric: accuracy\nbudget:\n  wall_time: {wall_time}\n  memory: {memory}\n")
    return root / "task.yaml"


def test_a_seq2seq_task_reads_as_text_out(tmp_path):
    task = Task.load(token_task(tmp_path))
    assert (task.kind, task.target_type, task.source, task.group) == ("seq2seq", "text", "before", "sentence_id")
    assert task.submission_columns() == ["id", "after"] and task.output_name == "submission.csv"
    assert task.classes == []
    assert (task.summary()["source"], task.summary()["group"]) == ("before", "sentence_id")


def test_text_is_graded_as_written(tmp_path):
    """Exact matches of the text: "1.0" is not "1", and an empty output is not a missing one."""
    task = Task.load(token_task(tmp_path))
    answers = pd.read_csv(tmp_path / "grading" / "answers.csv", dtype=str)
    answers.loc[answers.index[:2], "after"] = ["1.0", ""]
    answers.to_csv(tmp_path / "grading" / "answers.csv", index=False)
    submission = answers.copy()
    submission.loc[submission.index[0], "after"] = "1"
    submission.to_csv(tmp_path / "submission.csv", index=False)
    report = grade(task, tmp_path / "submission.csv", tmp_path / "grading" / "answers.csv")
    assert report.valid_submission and report.score == pytest.approx(1 - 1 / len(answers))


def test_the_normalizer_learns_mappings_fallbacks_and_context(tmp_path, monkeypatch):
    from crew.tools import normalizer

    Task.load(token_task(tmp_path))  # a valid task
    train = pd.read_csv(tmp_path / "data" / "train.csv", dtype=str, keep_default_na=False)
    monkeypatch.setattr(normalizer, "TASK", {"train": "", "test": "", "source": "before", "target": "after",
                                             "id_column": "id", "group": "sentence_id"})
    assert normalizer.shape("Ab12,") == "Aa9," and normalizer.shape("1999") == "9"
    assert normalizer.language(train) == "en"
    unseen = pd.DataFrame({"sentence_id": ["0"] * 4, "before": ["98765", "XYZQ", "the", "."]})
    monkeypatch.setattr(normalizer, "CONFIG", {**normalizer.CONFIG, "shapes": False})
    plain, how = normalizer.predict(normalizer.fit(train), unseen)
    assert plain.tolist() == ["98765", "XYZQ", "the", "."] and how.tolist()[:2] == ["unchanged", "unchanged"]
    monkeypatch.setattr(normalizer, "CONFIG", {**normalizer.CONFIG, "shapes": True})
    learnt, how = normalizer.predict(normalizer.fit(train), unseen)
    assert learnt.tolist()[:3] == ["ninety-eight thousand, seven hundred and sixty-five", "x y z q", "the"]
    assert how.tolist()[:3] == ["shape", "shape", "token"]
    streets = pd.DataFrame({"sentence_id": ["0", "0", "1", "1"], "before": ["12", "st", "st", "Paul"]})
    monkeypatch.setattr(normalizer, "CONFIG", {**normalizer.CONFIG, "context": True, "min_context": 2})
    assert normalizer.predict(normalizer.fit(train), streets)[0].tolist() == ["twelve", "street", "saint", "Paul"]


def test_solve_runs_the_ladder_in_the_sandbox_and_keeps_the_best(tmp_path):
    from crew.workflows.seq2seq import LADDER
    from crew.workflows.solve import solve

    path = token_task(tmp_path / "task")
    summary = solve(path, out=tmp_path / "run", wall_time=60)
    board = Blackboard(tmp_path / "run" / "blackboard.sqlite")
    experiments = board.experiments()
    assert [e.insights[0] for e in experiments] == [name for name, _ in LADDER]
    assert all(e.status == "done" and e.wall_time for e in experiments)
    assert [e.estimate["basis"].split(":")[0] for e in experiments] == [  # the critic priced each
        "normalizer (tokens)", "normalizer (shapes)", "normalizer (context)", "normalizer (context)"]
    scores = {e.insights[0]: e.score for e in experiments}
    assert scores["shape_fallbacks"] > scores["token_memory"] and scores["context_memory"] > scores["shape_fallbacks"]
    final = summary["final"]
    assert final["kind"] == "seq2seq" and final["cv"] == max(scores.values())
    messages = [m.content for m in board.messages()]
    assert messages[0].startswith("wrote every before unchanged")  # the safety net came first
    report = grade(Task.load(path), tmp_path / "run" / "submission.csv", tmp_path / "task" / "grading" / "answers.csv")
    assert report.valid_submission and report.score > 0.97
    assert json.loads((tmp_path / "run" / "final.json").read_text())["experiment"] == final["experiment"]
    predictor = crew.load(tmp_path / "run")  # the kept mapping normalises new rows as the run did
    test = pd.read_csv(tmp_path / "task" / "data" / "test.csv")
    assert predictor.check(test) == ([], []) and predictor.check(test.drop(columns="before"))[0]
    submitted = pd.read_csv(tmp_path / "run" / "submission.csv", dtype=str, keep_default_na=False)
    assert predictor.submission(test)["after"].tolist() == submitted["after"].tolist()
    table = tmp_path / "run" / "predictor" / "tokens.parquet"
    table.write_bytes(table.read_bytes() + b"x")
    with pytest.raises(crew.CrewError, match="SHA-256"):
        crew.load(tmp_path / "run")
    again = solve(None, resume=tmp_path / "run")  # a finished run resumed runs nothing again
    assert len(Blackboard(tmp_path / "run" / "blackboard.sqlite").experiments()) == len(LADDER)
    assert again["final"]["experiment"] == final["experiment"]


def test_what_the_machine_cannot_hold_is_not_launched_and_the_safety_net_stays(tmp_path):
    from crew.workflows.solve import solve

    path = token_task(tmp_path / "task", memory="100MiB")
    summary = solve(path, out=tmp_path / "run", wall_time=30)
    experiments = Blackboard(tmp_path / "run" / "blackboard.sqlite").experiments()
    assert experiments and all(e.status == "rejected" and not e.wall_time for e in experiments)
    assert "MiB" in str(experiments[0].error) and summary["final"]["kind"] == "unchanged"
    submission = pd.read_csv(tmp_path / "run" / "submission.csv", dtype=str, keep_default_na=False)
    test = pd.read_csv(tmp_path / "task" / "data" / "test.csv", dtype=str, keep_default_na=False)
    assert submission["after"].tolist() == test["before"].tolist()  # every token as it was
    report = grade(Task.load(path), tmp_path / "run" / "submission.csv", tmp_path / "task" / "grading" / "answers.csv")
    assert report.valid_submission and 0.5 < report.score < 0.9


def test_the_critic_prices_a_normalizer_per_token_and_by_how_much_it_learns(tmp_path):
    from crew.tools.cost import CostModel, read_normalizer_workload
    from crew.workflows.seq2seq import LADDER, script_for

    task = Task.load(token_task(tmp_path))
    works = [read_normalizer_workload(script_for(task, config), rows=9_000_000, test_rows=1_000_000)
             for _, config in LADDER]
    assert [w.normalizer for w in works] == ["tokens", "shapes", "context", "context"]
    estimates = [CostModel().estimate(w) for w in works]
    assert estimates[0].seconds < estimates[1].seconds < estimates[2].seconds
    assert estimates[0].memory < estimates[2].memory and estimates[2].memory > 3 * 2**30  # ten million tokens


def test_a_rung_a_kill_interrupted_runs_again_on_resume(tmp_path):
    from crew import Experiment
    from crew.workflows.seq2seq import LADDER
    from crew.workflows.solve import solve

    path = token_task(tmp_path / "task")
    solve(path, out=tmp_path / "run", wall_time=60, max_experiments=1)  # the first rung only
    board = Blackboard(tmp_path / "run" / "blackboard.sqlite")
    board.add_experiment(Experiment(insights=[LADDER[1][0]], status="running"))  # killed while it ran
    record = tmp_path / "run" / "run.json"  # room for two more experiments in the resumed run
    record.write_text(json.dumps({**json.loads(record.read_text()), "max_experiments": 3}))
    solve(None, resume=tmp_path / "run")
    experiments = Blackboard(tmp_path / "run" / "blackboard.sqlite").experiments()
    runs = [(e.insights[0], e.status) for e in experiments]
    assert runs.count((LADDER[1][0], "failed")) == 1 and runs.count((LADDER[1][0], "done")) == 1
    assert runs.count((LADDER[0][0], "done")) == 1  # the finished rung is not run again
