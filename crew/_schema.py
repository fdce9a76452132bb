"""The blackboard's SQLite schema, as an append-only list of migrations (`PRAGMA user_version` counts them)."""

MIGRATIONS: list[str] = [
    # v1: the tables. JSON columns hold TEXT; `seq` keeps insertion order across processes.
    """
    CREATE TABLE task (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, spec TEXT NOT NULL,
                       created_at REAL NOT NULL);
    CREATE TABLE experiments (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, parent TEXT, stage TEXT NOT NULL,
        insights TEXT NOT NULL, code TEXT NOT NULL, code_hash TEXT NOT NULL, status TEXT NOT NULL,
        estimate TEXT NOT NULL, metrics TEXT NOT NULL, score REAL, cv_folds TEXT NOT NULL, wall_time REAL,
        peak_memory INTEGER, gpu TEXT NOT NULL, artifacts TEXT NOT NULL, error TEXT, created_at REAL NOT NULL,
        finished_at REAL);
    CREATE TABLE messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, sent_from TEXT NOT NULL,
        send_to TEXT NOT NULL, cause_by TEXT NOT NULL, content TEXT NOT NULL, payload TEXT NOT NULL,
        payload_type TEXT, created_at REAL NOT NULL);
    CREATE TABLE score_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, source TEXT NOT NULL, experiment_id TEXT,
        score REAL, valid INTEGER NOT NULL, details TEXT NOT NULL);
    CREATE TABLE llm_usage (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, role TEXT NOT NULL, model TEXT NOT NULL,
        input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cost REAL,
        estimated_tokens INTEGER NOT NULL, ok INTEGER NOT NULL, note TEXT NOT NULL);
    """,
    # v2: indexes for the tree walks, the stage cache and the mailbox; run-level key/value meta.
    """
    CREATE INDEX experiments_parent ON experiments(parent);
    CREATE INDEX experiments_code_hash ON experiments(code_hash);
    CREATE INDEX messages_sent_from ON messages(sent_from);
    CREATE INDEX messages_cause_by ON messages(cause_by);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # v3: the modeler's structured design of each experiment, so that children extend their parent's stages.
    """
    ALTER TABLE experiments ADD COLUMN spec TEXT NOT NULL DEFAULT '{}';
    """,
]
"""Schema scripts; applying the first n gives schema version n (`PRAGMA user_version`). Only ever append."""

SCHEMA_VERSION = len(MIGRATIONS)
