"""Blackboard: round trips, queries, concurrent writers, SIGKILL safety, migrations and pickling."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crew._blackboard import MIGRATIONS, SCHEMA_VERSION, Blackboard, BlackboardError
from crew.errors import CrewError
from crew.types import EVERYONE, Experiment, LLMUsage, Message, ScoreEntry, code_hash

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def bb(tmp_path):
    with Blackboard(tmp_path / "blackboard.sqlite") as board:
        yield board


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


# -- opening and schema ------------------------------------------------------------------


def test_fresh_file_is_wal_at_latest_version(tmp_path):
    path = tmp_path / "run" / "blackboard.sqlite"
    Blackboard(path).close()
    db = _raw(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"task", "experiments", "messages", "score_log", "llm_usage", "meta"} <= tables
    indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"experiments_parent", "experiments_code_hash", "messages_sent_from", "messages_cause_by"} <= indexes


def test_migrates_a_version_1_file_keeping_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    db = _raw(path)
    db.executescript(MIGRATIONS[0])
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO experiments (id, parent, stage, insights, code, code_hash, status, estimate, metrics, "
               "score, cv_folds, gpu, artifacts, created_at) "
               "VALUES ('old1', NULL, 'model', '[]', 'print(1)', ?, 'done', '{}', '{\"cv\": 0.5}', 0.5, '[]', '[]', "
               "'{}', 1.0)", (code_hash("print(1)"),))
    old = Experiment(id="old1", code="print(1)", status="done", score=0.5, metrics={"cv": 0.5}, created_at=1.0)
    db.close()

    with Blackboard(path) as board:
        assert board.experiment("old1") == old
        assert board.find_by_code_hash(code_hash("print(1)")) == old
        board.set_meta("k", 1)  # the v2 table exists
    assert _raw(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_too_new_file_says_upgrade(tmp_path):
    path = tmp_path / "future.sqlite"
    Blackboard(path).close()
    _raw(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(BlackboardError, match="upgrade crew") as info:
        Blackboard(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, CrewError)


def test_garbage_file_names_the_file(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"this is not a database, just some text\n" * 200)
    with pytest.raises(BlackboardError) as info:
        Blackboard(path)
    assert str(path) in str(info.value)
    assert path.read_bytes().startswith(b"this is not")  # left untouched


def test_closed_board_refuses_use(tmp_path):
    board = Blackboard(tmp_path / "b.sqlite")
    board.close()
    board.close()
    with pytest.raises(BlackboardError, match="closed"):
        board.experiments()


# -- round trips -------------------------------------------------------------------------


def test_task_round_trip(bb):
    assert bb.task() is None
    bb.set_task("cars", {"metric": "rmse", "higher_is_better": False, "budget": {"wall_time": 60}})
    bb.set_task("cars", {"metric": "rmse", "higher_is_better": False})
    assert bb.task() == {"name": "cars", "spec": {"metric": "rmse", "higher_is_better": False}}


def test_meta_round_trip(bb):
    assert bb.get_meta("missing") is None
    assert bb.get_meta("missing", default=3) == 3
    bb.set_meta("seed", 42)
    bb.set_meta("resume", {"node": "modeler", "steps": [1, 2]})
    bb.set_meta("seed", 7)
    assert bb.get_meta("seed") == 7
    assert bb.get_meta("resume") == {"node": "modeler", "steps": [1, 2]}


def test_experiment_round_trip_and_update(bb):
    exp = Experiment(parent=None, stage="features", insights=["log target"], code="x = 1", estimate={"seconds": 3.0},
                     metrics={"cv": 0.9, "folds": 5}, score=0.9, cv_folds=[0.8, 1.0], wall_time=1.5,
                     peak_memory=123456789, gpu=[0, 1], artifacts={"oof": "oof.csv"}, error=None)
    assert bb.add_experiment(exp) == exp
    assert bb.experiment(exp.id) == exp
    assert exp.code_hash == code_hash("x = 1")
    with pytest.raises(ValueError, match=exp.id):
        bb.add_experiment(exp)

    done = bb.update_experiment(exp.id, status="done", score=0.95, finished_at=123.0)
    assert done.status == "done" and done.score == 0.95 and done.finished_at == 123.0
    assert bb.experiment(exp.id) == done
    recoded = bb.update_experiment(exp.id, code="x = 2")
    assert recoded.code_hash == code_hash("x = 2")

    with pytest.raises(ValueError, match="bogus"):
        bb.update_experiment(exp.id, bogus=1)
    with pytest.raises(ValueError, match="'id'"):
        bb.update_experiment(exp.id, id="other")
    with pytest.raises(KeyError, match="nope"):
        bb.update_experiment("nope", status="done")
    with pytest.raises(KeyError, match="nope"):
        bb.experiment("nope")
    with pytest.raises(ValueError):
        bb.update_experiment(exp.id, status="exploded")  # validated like a new experiment
    assert bb.experiment(exp.id) == recoded


def test_experiments_filters_and_code_cache(bb):
    a = bb.add_experiment(Experiment(id="a", stage="features", code="same", status="done", score=1.0))
    b = bb.add_experiment(Experiment(id="b", stage="model", code="same", status="done", score=2.0))
    c = bb.add_experiment(Experiment(id="c", stage="model", code="other", status="failed"))
    assert [e.id for e in bb.experiments()] == ["a", "b", "c"]
    assert bb.experiments(status="done") == [a, b]
    assert bb.experiments(stage="model") == [b, c]
    assert bb.experiments(status="failed", stage="model") == [c]
    assert bb.find_by_code_hash(code_hash("same")) == a
    assert bb.find_by_code_hash(code_hash("other")) is None
    assert bb.find_by_code_hash(code_hash("other"), status="failed") == c
    assert bb.find_by_code_hash(code_hash("other"), status=None) == c


def test_best_in_both_directions(bb):
    for i, (score, status) in enumerate([(0.5, "done"), (0.9, "done"), (None, "done"), (0.99, "failed"),
                                         (0.1, "done"), (0.9, "done")]):
        bb.add_experiment(Experiment(id=f"e{i}", status=status, score=score))
    with pytest.raises(BlackboardError, match="set_task"):
        bb.best()
    assert [e.id for e in bb.best(3, higher_is_better=True)] == ["e1", "e5", "e0"]
    assert [e.id for e in bb.best(2, higher_is_better=False)] == ["e4", "e0"]
    assert len(bb.best(100, higher_is_better=True)) == 4
    bb.set_task("t", {"metric": "rmse", "higher_is_better": False})
    assert [e.id for e in bb.best()] == ["e4"]
    assert [e.id for e in bb.best(higher_is_better=True)] == ["e1"]
    bb.set_task("t", {"metric": "auc", "higher_is_better": True})
    assert [e.id for e in bb.best(2)] == ["e1", "e5"]


def test_children_and_lineage(bb):
    bb.add_experiment(Experiment(id="root"))
    bb.add_experiment(Experiment(id="kid1", parent="root"))
    bb.add_experiment(Experiment(id="kid2", parent="root"))
    bb.add_experiment(Experiment(id="grandkid", parent="kid2"))
    bb.add_experiment(Experiment(id="orphan", parent="deleted"))
    assert [e.id for e in bb.children("root")] == ["kid1", "kid2"]
    assert bb.children("grandkid") == []
    assert [e.id for e in bb.lineage("grandkid")] == ["root", "kid2", "grandkid"]
    assert [e.id for e in bb.lineage("root")] == ["root"]
    assert [e.id for e in bb.lineage("orphan")] == ["orphan"]
    with pytest.raises(KeyError):
        bb.lineage("nope")


def test_messages_round_trip_and_filters(bb):
    m1 = bb.post(Message(content="plan", sent_from="planner", cause_by="planner.decide", payload={"steps": [1]},
                         payload_type="Plan"))
    m2 = bb.post(Message(content="report", sent_from="analyst", send_to=["modeler", "critic"],
                         cause_by="analyst.decide"))
    m3 = bb.post(Message(content="idea", sent_from="modeler", send_to=["critic"], cause_by="modeler.decide"))
    m4 = bb.post(Message(content="ok", sent_from="critic", send_to=["modeler"], cause_by="critic.decide"))
    assert m1.send_to == [EVERYONE]
    assert bb.messages() == [m1, m2, m3, m4]
    assert bb.messages(sent_from="modeler") == [m3]
    assert bb.messages(send_to="modeler") == [m1, m2, m4]
    assert bb.messages(send_to="critic") == [m1, m2, m3]
    assert bb.messages(send_to="reviewer") == [m1]
    assert bb.messages(kind="critic.decide") == [m4]
    assert bb.messages(kind="critic") == []
    assert bb.messages(send_to="modeler", sent_from="critic") == [m4]
    assert bb.messages(since_seq=2) == [m3, m4]
    cursor = bb.last_message_seq()
    assert cursor == 4 and bb.messages(since_seq=cursor) == []
    with pytest.raises(ValueError, match=m1.id):
        bb.post(m1)


def test_scores_round_trip(bb):
    entries = [ScoreEntry(source="cv", score=0.8, experiment_id="a", details={"folds": [0.7, 0.9]}),
               ScoreEntry(source="kernel", score=None, valid=False, details={"why": "wrong shape"})]
    for entry in entries:
        bb.log_score(entry)
    assert bb.scores() == entries


def test_llm_usage_and_spend(bb):
    assert bb.llm_spend() == 0.0
    usages = [LLMUsage(role="modeler", model="openai:gpt-4o", input_tokens=100, output_tokens=20, cost=0.01),
              LLMUsage(role="critic", model="ollama:qwen", input_tokens=5, cost=None, estimated_tokens=True),
              LLMUsage(role="modeler", model="openai:gpt-4o", cost=0.02, ok=False, note="timeout")]
    for usage in usages:
        bb.record_llm_usage(usage)
    assert bb.llm_usage() == usages
    assert bb.llm_usage(role="modeler") == [usages[0], usages[2]]
    assert bb.llm_usage(role="nobody") == []
    assert bb.llm_spend() == pytest.approx(0.03)


def test_to_pandas_every_table(bb):
    bb.set_task("t", {"higher_is_better": True})
    bb.add_experiment(Experiment(id="a", metrics={"cv": 1.0}, score=1.0))
    bb.post(Message(content="hi", sent_from="planner", cause_by="planner.decide"))
    bb.log_score(ScoreEntry(source="cv", score=1.0))
    bb.record_llm_usage(LLMUsage(role="r", model="m", cost=0.5))
    bb.set_meta("k", [1])

    frame = bb.to_pandas()
    assert list(frame.columns) == ["seq", "id", "parent", "stage", "insights", "code", "code_hash", "status",
                                   "estimate", "metrics", "score", "cv_folds", "wall_time", "peak_memory", "gpu",
                                   "artifacts", "error", "created_at", "finished_at", "spec"]
    assert frame.loc[0, "metrics"] == {"cv": 1.0} and frame.loc[0, "score"] == 1.0
    assert list(bb.to_pandas("messages").columns) == ["seq", "id", "sent_from", "send_to", "cause_by", "content",
                                                      "payload", "payload_type", "created_at"]
    assert bb.to_pandas("messages").loc[0, "send_to"] == [EVERYONE]
    assert list(bb.to_pandas("score_log").columns) == ["seq", "at", "source", "experiment_id", "score", "valid",
                                                       "details"]
    usage = bb.to_pandas("llm_usage")
    assert list(usage.columns) == ["seq", "at", "role", "model", "input_tokens", "output_tokens", "cost",
                                   "estimated_tokens", "ok", "note"]
    assert bool(usage.loc[0, "ok"]) is True
    assert bb.to_pandas("task").loc[0, "spec"] == {"higher_is_better": True}
    assert bb.to_pandas("meta").loc[0, "value"] == [1]
    assert len(bb.to_pandas("messages")) == 1
    with pytest.raises(ValueError, match="experiments, messages"):
        bb.to_pandas("sqlite_master")


def test_empty_to_pandas(bb):
    assert len(bb.to_pandas()) == 0 and "metrics" in bb.to_pandas().columns


# -- processes ---------------------------------------------------------------------------

_WRITER = textwrap.dedent("""
    import sys
    from crew._blackboard import Blackboard
    from crew.types import Experiment, Message
    path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    board = Blackboard(path)
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    for i in range(n):
        board.add_experiment(Experiment(id=f"{tag}-{i}", parent=f"{tag}-{i - 1}" if i else None, code=f"x = {i}"))
        if i % 500 == 0:
            board.post(Message(content=f"{tag} at {i}", sent_from=tag, cause_by="test.progress"))
        if tag == "killme":  # the SIGKILL test needs to know what was committed
            print(f"{tag}-{i}", flush=True)
    board.close()
""")

_LOOP = _WRITER.replace("for i in range(n):", "import itertools\nfor i in itertools.count():")


def _spawn(code: str, *args: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)


def test_four_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "blackboard.sqlite"  # a fresh file: the writers also race to create the schema
    writers = [_spawn(_WRITER, path, f"w{k}", 2000) for k in range(4)]
    for w in writers:
        assert w.stdout.readline().strip() == "ready"
    for w in writers:
        w.stdin.write("go\n")
        w.stdin.flush()
    for w in writers:
        assert w.wait(timeout=120) == 0
    with Blackboard(path) as board:
        ids = [e.id for e in board.experiments()]
        assert len(ids) == len(set(ids)) == 8000
        assert set(ids) == {f"w{k}-{i}" for k in range(4) for i in range(2000)}
        assert len(board.messages(kind="test.progress")) == 16
        assert [e.id for e in board.lineage("w3-1999")][:2] == ["w3-0", "w3-1"]


def test_sigkill_mid_write_keeps_every_committed_row(tmp_path):
    path = tmp_path / "blackboard.sqlite"
    writer = _spawn(_LOOP, path, "killme", 0)
    assert writer.stdout.readline().strip() == "ready"
    writer.stdin.write("go\n")
    writer.stdin.flush()
    reported = [writer.stdout.readline().strip() for _ in range(300)]
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    reported += [line.strip() for line in writer.stdout.read().splitlines() if line.strip()]
    assert writer.returncode == -signal.SIGKILL

    db = _raw(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with Blackboard(path) as board:
        stored = {e.id for e in board.experiments()}
        assert set(reported) <= stored
        assert len(stored) >= 300
        board.add_experiment(Experiment(id="after-the-crash"))  # still writable
        assert board.experiment("after-the-crash").id == "after-the-crash"


def _child_writes(board: Blackboard, exp_id: str) -> None:
    board.add_experiment(Experiment(id=exp_id, status="done", score=1.0))
    board.post(Message(content=f"from {os.getpid()}", sent_from="child", cause_by="test.child"))


def test_pickled_board_works_in_a_spawned_child(bb):
    copy = pickle.loads(pickle.dumps(bb))
    assert copy.path == bb.path
    copy.close()
    bb.add_experiment(Experiment(id="parent-row"))
    process = multiprocessing.get_context("spawn").Process(target=_child_writes, args=(bb, "from-spawn"))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert bb.experiment("from-spawn").score == 1.0
    assert [m.content for m in bb.messages(kind="test.child")] == [f"from {process.pid}"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_reopens_its_own_connection(bb):
    bb.add_experiment(Experiment(id="before-fork"))
    process = multiprocessing.get_context("fork").Process(target=_child_writes, args=(bb, "from-fork"))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert bb.experiment("from-fork").score == 1.0
    bb.add_experiment(Experiment(id="after-fork"))  # the parent's connection is unharmed
    assert [e.id for e in bb.experiments()] == ["before-fork", "from-fork", "after-fork"]


def test_threads_share_one_board(bb):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: bb.add_experiment(Experiment(id=f"t{i}")), range(200)))
    assert len(bb.experiments()) == 200
