"""`Blackboard`: the run's single SQLite file holding the task, the experiment tree, messages, scores and LLM usage."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from crew._schema import MIGRATIONS, SCHEMA_VERSION
from crew.errors import CrewError
from crew.types import EVERYONE, Experiment, LLMUsage, Message, ScoreEntry, code_hash

if TYPE_CHECKING:
    import pandas

__all__ = ["MIGRATIONS", "Blackboard", "BlackboardError"]

T = TypeVar("T")
M = TypeVar("M", Experiment, Message, ScoreEntry, LLMUsage)


_EXP_FIELDS = list(Experiment.model_fields)
_JSON_COLUMNS = {
    "task": {"spec"}, "experiments": {"insights", "spec", "estimate", "metrics", "cv_folds", "gpu", "artifacts"},
    "messages": {"send_to", "payload"}, "score_log": {"details"}, "llm_usage": set(), "meta": {"value"},
}
_BOOL_COLUMNS = {"score_log": {"valid"}, "llm_usage": {"estimated_tokens", "ok"}}
_TABLES = tuple(_JSON_COLUMNS)
_RETRY_SECONDS = 60.0
_ABANDONED: list[sqlite3.Connection] = []  # inherited across fork: never closed in the child, see `_connection`


class BlackboardError(CrewError):
    """A blackboard that cannot be used: not SQLite, written by a newer crew, closed, or missing what a query needs."""


def _is_busy(exc: BaseException) -> bool:
    text = str(exc).lower() if isinstance(exc, sqlite3.OperationalError) else ""
    return "locked" in text or "busy" in text


def _statements(script: str) -> Iterator[str]:
    """Split a script into statements, because `executescript` would commit the migration's open transaction."""
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n\t;"):
                yield buffer.strip()
            buffer = ""


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _decode(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """A stored row back to Python values: JSON text to objects, 0/1 flags to booleans."""
    for column in _JSON_COLUMNS[table] & row.keys():
        row[column] = json.loads(row[column])
    for column in _BOOL_COLUMNS.get(table, set()) & row.keys():
        row[column] = bool(row[column])
    return row


class Blackboard:
    """The source of truth of one run: every role reads and writes here, so a run can be resumed and audited.

    Safe for several processes at once (WAL, short `BEGIN IMMEDIATE` writes retried while
    the file is locked) and for several threads sharing one instance (a lock per instance).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._closed = False
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._retry(self._open)

    # -- connection management ------------------------------------------------------------

    def _open(self) -> None:
        """Connect, set the pragmas, bring the schema up to date; refuse files we must not touch."""
        db = None
        try:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout = 30000")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            self._check_version(version)
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            while version < SCHEMA_VERSION:
                version = self._migrate(db)
        except BaseException as exc:
            if db is not None:
                db.close()
            if not isinstance(exc, sqlite3.DatabaseError) or _is_busy(exc):
                raise  # our own BlackboardError, or a lock that `_retry` waits out
            raise BlackboardError(f"{self.path}: cannot use this file as a crew blackboard, SQLite says: {exc}; "
                                  "point crew at a run's blackboard.sqlite, or at a new path") from None
        self._db = db

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise BlackboardError(f"{self.path}: blackboard schema version {version} is newer than this crew knows "
                                  f"(version {SCHEMA_VERSION}); upgrade crew to open it")

    def _migrate(self, db: sqlite3.Connection) -> int:
        """Apply the next migration under the write lock, re-reading the version so racing openers apply it once."""
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            self._check_version(version)
            if version < SCHEMA_VERSION:
                for statement in _statements(MIGRATIONS[version]):
                    db.execute(statement)
                version += 1
                db.execute(f"PRAGMA user_version = {version}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return version

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """This process's connection, held exclusively by one thread: SQLite handles must not cross `fork`."""
        if self._pid != os.getpid():  # a forked child: start afresh before touching the inherited lock
            if self._db is not None:
                _ABANDONED.append(self._db)  # closing the parent's handle here could disturb the parent's locks
            self._db, self._pid = None, os.getpid()
            self._lock = threading.RLock()  # another parent thread may have held the old one at fork time
        with self._lock:
            if self._closed:
                raise BlackboardError(f"{self.path}: the blackboard was closed; open a new Blackboard to use it again")
            if self._db is None:
                self._retry(self._open)
            assert self._db is not None
            yield self._db

    def close(self) -> None:
        """Release the file so the run folder can be moved or deleted; the object is unusable afterwards."""
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            elif self._db is not None:
                _ABANDONED.append(self._db)  # the parent's handle, inherited by fork: see `_connection`
            self._db, self._closed = None, True

    def __enter__(self) -> Blackboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[type[Blackboard], tuple[str]]:
        """Pickle by path: worker processes and LangGraph checkpoints get their own connection to the same file."""
        return (Blackboard, (str(self.path),))

    def __repr__(self) -> str:
        return f"Blackboard({str(self.path)!r})"

    # -- transactions ---------------------------------------------------------------------

    @staticmethod
    def _retry(fn: Callable[[], T]) -> T:
        """Run `fn` until the file stops being locked by another process, giving up after about a minute."""
        deadline = time.monotonic() + _RETRY_SECONDS
        delay = 0.005
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """One short `BEGIN IMMEDIATE` transaction, so concurrent writers queue up instead of deadlocking."""
        def attempt() -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(db)
                db.execute("COMMIT")
                return result
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

        with self._connection() as db:
            return self._retry(attempt)

    def _read(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        def attempt() -> list[dict[str, Any]]:
            cursor = db.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        with self._connection() as db:
            return self._retry(attempt)

    # -- task and meta --------------------------------------------------------------------

    def set_task(self, name: str, spec: dict[str, Any]) -> None:
        """Record what the run is solving, so `best()` knows the metric's direction and reports can name the task."""
        self._write(lambda db: db.execute(
            "INSERT INTO task (id, name, spec, created_at) VALUES (1, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET name = excluded.name, spec = excluded.spec",
            (name, _dumps(spec), time.time())))

    def task(self) -> dict[str, Any] | None:
        """The task as `{"name", "spec"}`, or None on a blackboard nobody has told what it is for."""
        rows = self._read("SELECT name, spec FROM task WHERE id = 1")
        return {"name": rows[0]["name"], "spec": json.loads(rows[0]["spec"])} if rows else None

    def set_meta(self, key: str, value: Any) -> None:
        """Run-level facts that belong to no table (resume points, versions, seeds); any JSON value."""
        self._write(lambda db: db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, _dumps(value))))

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    # -- rows <-> models ------------------------------------------------------------------

    def _insert(self, table: str, record: Experiment | Message | ScoreEntry | LLMUsage) -> None:
        data = record.model_dump(mode="json")
        for column in _JSON_COLUMNS[table]:
            data[column] = _dumps(data[column])
        sql = f"INSERT INTO {table} ({', '.join(data)}) VALUES ({', '.join('?' * len(data))})"
        self._write(lambda db: db.execute(sql, list(data.values())))

    def _load(self, table: str, model: type[M], where: dict[str, Any] | None = None, extra: str = "",
              params: list[Any] | None = None, order: str = "seq") -> list[M]:
        """Select rows as models; `where` holds equality filters, None values meaning "any"."""
        clauses = [f"{k} = ?" for k, v in (where or {}).items() if v is not None] + ([extra] if extra else [])
        values = [v for v in (where or {}).values() if v is not None] + (params or [])
        sql = (f"SELECT {', '.join(model.model_fields)} FROM {table} "
               f"{'WHERE ' + ' AND '.join(clauses) if clauses else ''} ORDER BY {order}")
        return [model.model_validate(_decode(table, row)) for row in self._read(sql, values)]

    # -- experiments ----------------------------------------------------------------------

    def add_experiment(self, exp: Experiment) -> Experiment:
        """Put a node on the tree; its id must be new, because experiments are never silently replaced."""
        try:
            self._insert("experiments", exp)
        except sqlite3.IntegrityError:
            raise ValueError(f"experiment {exp.id!r} is already on the blackboard; use update_experiment") from None
        return exp

    def update_experiment(self, exp_id: str, **fields: Any) -> Experiment:
        """Change an experiment as it moves through its life (running, done, scored), validated like a new one."""
        unknown = [f for f in fields if f not in _EXP_FIELDS or f == "id"]
        if unknown:
            raise ValueError(f"cannot update experiment field(s) {', '.join(map(repr, unknown))}; "
                             f"valid fields: {', '.join(f for f in _EXP_FIELDS if f != 'id')}")
        if "code" in fields and "code_hash" not in fields:
            fields["code_hash"] = code_hash(fields["code"]) if fields["code"] else ""

        def update(db: sqlite3.Connection) -> Experiment:
            row = db.execute(f"SELECT {', '.join(_EXP_FIELDS)} FROM experiments WHERE id = ?", (exp_id,)).fetchone()
            if row is None:
                raise KeyError(f"no experiment {exp_id!r} on the blackboard {self.path}")
            current = Experiment.model_validate(_decode("experiments", dict(zip(_EXP_FIELDS, row, strict=False))))
            new = Experiment.model_validate({**current.model_dump(), **fields})
            data = new.model_dump(mode="json")
            values = [_dumps(data[f]) if f in _JSON_COLUMNS["experiments"] else data[f] for f in fields]
            assignments = ", ".join(f"{f} = ?" for f in fields)
            db.execute(f"UPDATE experiments SET {assignments} WHERE id = ?", [*values, exp_id])
            return new

        return self._write(update)

    def experiment(self, exp_id: str) -> Experiment:
        found = self.find_experiment(exp_id)
        if found is None:
            raise KeyError(f"no experiment {exp_id!r} on the blackboard {self.path}")
        return found

    def find_experiment(self, exp_id: str) -> Experiment | None:
        """The experiment called `exp_id`, or None when this board has none (a role run on someone else's state)."""
        found = self._load("experiments", Experiment, {"id": exp_id})
        return found[0] if found else None

    def experiments(self, *, status: str | None = None, stage: str | None = None) -> list[Experiment]:
        """The tree as a list in the order experiments were proposed, optionally narrowed to one status or stage."""
        return self._load("experiments", Experiment, {"status": status, "stage": stage})

    def find_by_code_hash(self, h: str, status: str | None = "done") -> Experiment | None:
        """The stage cache: identical code already run (first one wins) need not run again."""
        found = self._load("experiments", Experiment, {"code_hash": h, "status": status}, order="seq LIMIT 1")
        return found[0] if found else None

    def best(self, k: int = 1, *, higher_is_better: bool | None = None) -> list[Experiment]:
        """The leaders the search strategy expands and the final step ensembles; ties go to the earlier experiment."""
        if higher_is_better is None:
            spec = (self.task() or {}).get("spec", {})
            if not isinstance(spec.get("higher_is_better"), bool):
                raise BlackboardError(f"{self.path}: cannot rank experiments without the metric's direction; call "
                                      "set_task(name, {..., 'higher_is_better': True/False}) or pass higher_is_better=")
            higher_is_better = spec["higher_is_better"]
        order = f"score {'DESC' if higher_is_better else 'ASC'}, seq LIMIT {int(k)}"
        return self._load("experiments", Experiment, {"status": "done"}, "score IS NOT NULL", order=order)

    def children(self, exp_id: str) -> list[Experiment]:
        return self._load("experiments", Experiment, {"parent": exp_id})

    def lineage(self, exp_id: str) -> list[Experiment]:
        """The chain of ideas that led here, root first, so a role can read what its ancestors tried."""
        chain = [self.experiment(exp_id)]
        seen = {exp_id}
        while chain[-1].parent is not None and chain[-1].parent not in seen:
            seen.add(chain[-1].parent)
            parent = self.find_experiment(chain[-1].parent)
            if parent is None:
                break  # a dangling parent (say, a pruned branch) ends the chain instead of failing the walk
            chain.append(parent)
        return chain[::-1]

    # -- messages -------------------------------------------------------------------------

    def post(self, message: Message) -> Message:
        """Append to the transcript; every message is kept so a run can be replayed and taught from."""
        try:
            self._insert("messages", message)
        except sqlite3.IntegrityError:
            raise ValueError(f"message {message.id!r} is already on the blackboard") from None
        return message

    def messages(self, *, sent_from: str | None = None, send_to: str | None = None, kind: str | None = None,
                 since_seq: int | None = None) -> list[Message]:
        """A role's mailbox: `send_to` also matches messages for everyone; `since_seq` skips what was already read."""
        extra: list[str] = []
        params: list[Any] = []
        if send_to is not None:
            extra.append("EXISTS (SELECT 1 FROM json_each(messages.send_to) WHERE value IN (?, ?))")
            params += [send_to, EVERYONE]
        if since_seq is not None:
            extra.append("seq > ?")
            params.append(since_seq)
        return self._load("messages", Message, {"sent_from": sent_from, "cause_by": kind}, " AND ".join(extra), params)

    def last_message_seq(self) -> int:
        """A cursor for `messages(since_seq=...)`: read it after handling the mailbox, pass it next time."""
        return self._read("SELECT COALESCE(MAX(seq), 0) AS seq FROM messages")[0]["seq"]

    # -- scores and LLM usage -------------------------------------------------------------

    def log_score(self, entry: ScoreEntry) -> None:
        """Every score ever seen, valid or not, so a run's progress curve can be drawn afterwards."""
        self._insert("score_log", entry)

    def scores(self) -> list[ScoreEntry]:
        return self._load("score_log", ScoreEntry)

    def record_llm_usage(self, usage: LLMUsage) -> None:
        """Every chat-model call, so the budget can stop on spend and the report can say what the run cost."""
        self._insert("llm_usage", usage)

    def llm_usage(self, *, role: str | None = None) -> list[LLMUsage]:
        return self._load("llm_usage", LLMUsage, {"role": role})

    def llm_spend(self) -> float:
        """Known spend only: calls whose price is unknown count as zero here and are visible in `llm_usage()`."""
        return float(self._read("SELECT COALESCE(SUM(cost), 0.0) AS spend FROM llm_usage")[0]["spend"])

    # -- export ---------------------------------------------------------------------------

    def to_pandas(self, table: str = "experiments") -> pandas.DataFrame:
        """A table for users' own analysis, JSON columns decoded to Python objects and flags to booleans."""
        if table not in _TABLES:
            raise ValueError(f"unknown blackboard table {table!r}; valid tables: {', '.join(_TABLES)}")
        import pandas

        order = {"task": "id", "meta": "key"}.get(table, "seq")
        rows = self._read(f"SELECT * FROM {table} ORDER BY {order}")
        columns = [r["name"] for r in self._read(f"PRAGMA table_info({table})")]
        return pandas.DataFrame([_decode(table, row) for row in rows], columns=columns)
