"""The ledger's schema: named migrations that only the writer applies, and the
temporary views through which a reader sees an older ledger in the newest shape.

A change to the schema is one migration here (and, for a column readers use, one
line of ``NEWEST``): every reader and the writer go through this module, and no
module outside ``store/`` holds an SQL statement.
"""
from __future__ import annotations

import sqlite3
from typing import Dict, Sequence, Set, Tuple

from ..core.layout import DB_NAME  # noqa: F401 - the ledger's file name, with the schema

APPLICATION_ID = 0x4D4C5031  # "MLP1": marks the file as an mlpipeline ledger

MIGRATIONS: Sequence[Tuple[str, str]] = (
    ("0001_runs_and_metrics", """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            uid TEXT NOT NULL UNIQUE,
            script TEXT NOT NULL,
            script_sha256 TEXT,
            version TEXT,
            params TEXT NOT NULL DEFAULT '{}',
            params_sha256 TEXT,
            mode TEXT NOT NULL,
            status TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER,
            child_pid INTEGER,
            model_dir TEXT,
            run_dir TEXT,
            started_at REAL,
            ended_at REAL,
            heartbeat_at REAL,
            exit_code INTEGER,
            signal INTEGER,
            error TEXT,
            traceback TEXT,
            steps INTEGER,
            eval_train_text TEXT,
            eval_test_text TEXT,
            command TEXT
        );
        CREATE INDEX runs_script_version ON runs (script, version, mode, id);
        CREATE INDEX runs_status ON runs (status);
        CREATE TABLE metrics (
            run_id INTEGER NOT NULL REFERENCES runs (id),
            split TEXT NOT NULL,
            name TEXT NOT NULL,
            step INTEGER,
            value REAL,
            recorded_at REAL NOT NULL
        );
        CREATE INDEX metrics_run ON metrics (run_id, name, step);
    """),
    ("0002_script_cache", """
        CREATE TABLE script_cache (
            sha256 TEXT PRIMARY KEY,
            info TEXT NOT NULL,
            created_at REAL NOT NULL
        );
    """),
    ("0003_reproducibility_and_imports", """
        ALTER TABLE runs ADD COLUMN git_commit TEXT;
        ALTER TABLE runs ADD COLUMN git_dirty INTEGER;
        ALTER TABLE runs ADD COLUMN python_version TEXT;
        ALTER TABLE runs ADD COLUMN packages TEXT;
        ALTER TABLE runs ADD COLUMN seed TEXT;
        ALTER TABLE runs ADD COLUMN source TEXT;
        ALTER TABLE runs ADD COLUMN source_key TEXT;
        CREATE UNIQUE INDEX runs_source_key ON runs (source_key) WHERE source_key IS NOT NULL;
        CREATE INDEX runs_started ON runs (started_at);
        CREATE INDEX metrics_name ON metrics (name, split);
    """),
    ("0004_daemon", """
        CREATE TABLE runners (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            mode TEXT NOT NULL,
            options TEXT NOT NULL DEFAULT '{}',
            started_at REAL NOT NULL,
            heartbeat_at REAL,
            ended_at REAL,
            config_error TEXT,
            queue_at REAL
        );
        CREATE TABLE queue (
            runner_id INTEGER NOT NULL REFERENCES runners (id),
            position INTEGER NOT NULL,
            script TEXT NOT NULL,
            version TEXT,
            state TEXT NOT NULL,
            reason TEXT
        );
        CREATE INDEX queue_runner ON queue (runner_id, position);
        ALTER TABLE runs ADD COLUMN gpu TEXT;
        ALTER TABLE runs ADD COLUMN cancel_requested REAL;
        ALTER TABLE runs ADD COLUMN runner_id INTEGER;
    """),
    ("0005_requests_summaries_fingerprints", """
        CREATE TABLE requests (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            run_id INTEGER,
            payload TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL,
            pid INTEGER,
            consumed_at REAL,
            consumed_by INTEGER,
            result TEXT
        );
        CREATE INDEX requests_open ON requests (consumed_at, id);
        CREATE TABLE metric_summary (
            run_id INTEGER NOT NULL,
            split TEXT NOT NULL,
            name TEXT NOT NULL,
            count INTEGER NOT NULL,
            first_step INTEGER,
            last_step INTEGER,
            last REAL,
            min REAL,
            max REAL,
            updated_at REAL,
            PRIMARY KEY (run_id, split, name)
        ) WITHOUT ROWID;
        DROP INDEX IF EXISTS metrics_name;
        INSERT INTO metric_summary (run_id, split, name, count, first_step, last_step, last, min, max)
            SELECT run_id, split, name, COUNT(*), MIN(step), MAX(step), NULL, MIN(value), MAX(value)
            FROM metrics GROUP BY run_id, split, name;
        UPDATE metric_summary SET last = (SELECT m.value FROM metrics m WHERE m.run_id = metric_summary.run_id
            AND m.split = metric_summary.split AND m.name = metric_summary.name ORDER BY m.rowid DESC LIMIT 1);
        ALTER TABLE runs ADD COLUMN fingerprint TEXT;
        ALTER TABLE runs ADD COLUMN pid_start INTEGER;
        ALTER TABLE runs ADD COLUMN node TEXT;
        ALTER TABLE runners ADD COLUMN pid_start INTEGER;
        ALTER TABLE runners ADD COLUMN paused_at REAL;
    """),
    # Final (step-less) values in order, for sorting runs by a metric and listing the metrics there are.
    ("0006_final_metrics_index", """
        CREATE INDEX metric_summary_final ON metric_summary (name, split, last, last_step) WHERE last_step IS NULL;
    """),
    ("0007_cluster_node_id", """
        ALTER TABLE runs ADD COLUMN node_id TEXT;
    """),
    # What the version's mlpipeline.data loaders read (``kind:sha256``), for compare and cached outputs.
    ("0008_data_fingerprint", """
        ALTER TABLE runs ADD COLUMN data_fingerprint TEXT;
    """),
    # Values versions saved with save_output (files under outputs/cache/), with what produced them.
    ("0009_cached_outputs", """
        CREATE TABLE outputs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER NOT NULL REFERENCES runs (id),
            script TEXT NOT NULL,
            version TEXT NOT NULL,
            name TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            path TEXT NOT NULL,
            kind TEXT NOT NULL,
            summary TEXT,
            size INTEGER,
            script_sha256 TEXT,
            code_fingerprint TEXT,
            params_sha256 TEXT,
            data_fingerprint TEXT,
            created_at REAL NOT NULL
        );
        CREATE INDEX outputs_lookup ON outputs (script, version, name, id);
        CREATE INDEX outputs_run ON outputs (run_id);
    """),
    # A run's result for a name (evaluate_model's value, or a point logged without a step) kept apart from the
    # curve of the same name: the curve columns (count, first/last step, last, min, max) cover stepped points only.
    ("0010_results_apart_from_curves", """
        ALTER TABLE metric_summary ADD COLUMN final REAL;
        ALTER TABLE metric_summary ADD COLUMN has_final INTEGER NOT NULL DEFAULT 0;
        UPDATE metric_summary SET has_final = 1, final = last WHERE last_step IS NULL;
        UPDATE metric_summary SET
            count = (SELECT COUNT(*) FROM metrics m WHERE m.run_id = metric_summary.run_id
                     AND m.split = metric_summary.split AND m.name = metric_summary.name AND m.step IS NOT NULL),
            first_step = (SELECT m.step FROM metrics m WHERE m.run_id = metric_summary.run_id
                          AND m.split = metric_summary.split AND m.name = metric_summary.name
                          AND m.step IS NOT NULL ORDER BY m.rowid LIMIT 1),
            last_step = (SELECT m.step FROM metrics m WHERE m.run_id = metric_summary.run_id
                         AND m.split = metric_summary.split AND m.name = metric_summary.name
                         AND m.step IS NOT NULL ORDER BY m.rowid DESC LIMIT 1),
            last = (SELECT m.value FROM metrics m WHERE m.run_id = metric_summary.run_id
                    AND m.split = metric_summary.split AND m.name = metric_summary.name
                    AND m.step IS NOT NULL ORDER BY m.rowid DESC LIMIT 1),
            min = (SELECT MIN(m.value) FROM metrics m WHERE m.run_id = metric_summary.run_id
                   AND m.split = metric_summary.split AND m.name = metric_summary.name AND m.step IS NOT NULL),
            max = (SELECT MAX(m.value) FROM metrics m WHERE m.run_id = metric_summary.run_id
                   AND m.split = metric_summary.split AND m.name = metric_summary.name AND m.step IS NOT NULL)
            WHERE has_final = 1;
        DROP INDEX IF EXISTS metric_summary_final;
        CREATE INDEX metric_summary_result ON metric_summary (name, split, final) WHERE has_final = 1;
    """),
    # Why a run ended as it did, in one word a retry policy can match (``oom``, ``nan``, ...), what the version
    # declared it needs (JSON: gpus, gpu_memory, cpus, memory), the UUIDs of the GPUs it was given, and which
    # attempt of its version it was (1, 2, ...) and the run it retried.
    ("0011_reason_resources_gpu_uuids", """
        ALTER TABLE runs ADD COLUMN reason TEXT;
        ALTER TABLE runs ADD COLUMN resources TEXT;
        ALTER TABLE runs ADD COLUMN gpu_uuids TEXT;
        ALTER TABLE runs ADD COLUMN attempt INTEGER;
        ALTER TABLE runs ADD COLUMN retry_of INTEGER;
    """),
    # A version run as a Slurm job: its job id, so a later runner adopts the job if this one dies.
    ("0012_slurm_job_id", """
        ALTER TABLE runs ADD COLUMN slurm_job_id TEXT;
    """),
    # Tags and a note per run (``mlpipeline tag``, ``note``); runs hidden from every listing (``delete``: the rows
    # stay, so history and -u stay exact); what ``gc`` took of a run's files (JSON: {"model_dir": when, ...}).
    ("0013_tags_notes_deleted", """
        CREATE TABLE run_tags (
            run_id INTEGER NOT NULL REFERENCES runs (id),
            tag TEXT NOT NULL,
            PRIMARY KEY (run_id, tag)
        ) WITHOUT ROWID;
        CREATE INDEX run_tags_tag ON run_tags (tag, run_id);
        ALTER TABLE runs ADD COLUMN note TEXT;
        ALTER TABLE runs ADD COLUMN deleted_at REAL;
        ALTER TABLE runs ADD COLUMN collected TEXT;
    """),
    # The environment a run ran in (installed distributions, Python, platform, CUDA and driver: JSON), stored
    # once per distinct one under the sha256 of its JSON; and the run an exact re-run (``rerun --exact``) redid.
    ("0014_environments_reruns", """
        CREATE TABLE environments (
            sha256 TEXT PRIMARY KEY,
            info TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        ALTER TABLE runs ADD COLUMN environment TEXT;
        ALTER TABLE runs ADD COLUMN rerun_of INTEGER;
    """),
)

# The columns readers may use, by table, as the newest schema has them. A reader of a ledger no runner
# has upgraded yet gets a temporary view of the same name with each missing column as NULL.
NEWEST: Dict[str, Tuple[str, ...]] = {
    "runs": ("id", "uid", "script", "script_sha256", "version", "params", "params_sha256", "mode", "status", "host",
             "pid", "child_pid", "model_dir", "run_dir", "started_at", "ended_at", "heartbeat_at", "exit_code",
             "signal", "error", "traceback", "steps", "eval_train_text", "eval_test_text", "command", "git_commit",
             "git_dirty", "python_version", "packages", "seed", "source", "source_key", "gpu", "cancel_requested",
             "runner_id", "fingerprint", "pid_start", "node", "node_id", "data_fingerprint", "reason", "resources",
             "gpu_uuids", "attempt", "retry_of", "slurm_job_id", "note", "deleted_at", "collected",
             "environment", "rerun_of"),
    "runners": ("id", "pid", "host", "mode", "options", "started_at", "heartbeat_at", "ended_at", "config_error",
                "queue_at", "pid_start", "paused_at"),
    "queue": ("runner_id", "position", "script", "version", "state", "reason"),
    "requests": ("id", "kind", "run_id", "payload", "created_at", "pid", "consumed_at", "consumed_by", "result"),
    "script_cache": ("sha256", "info", "created_at"),
    "run_tags": ("run_id", "tag"),
    "environments": ("sha256", "info", "created_at"),
    "outputs": ("id", "run_id", "script", "version", "name", "sha256", "path", "kind", "summary", "size",
                "script_sha256", "code_fingerprint", "params_sha256", "data_fingerprint", "created_at"),
}

# metric_summary as 0010 keeps it (a run's result apart from its curve), from what an older ledger holds.
_SUMMARY_FROM_POINTS = """
    CREATE TEMP VIEW metric_summary AS SELECT run_id, split, name,
        SUM(step IS NOT NULL) AS count, MIN(step) AS first_step, MAX(step) AS last_step,
        (SELECT x.value FROM main.metrics x WHERE x.run_id = m.run_id AND x.split = m.split AND x.name = m.name
         AND x.step IS NOT NULL ORDER BY x.rowid DESC LIMIT 1) AS last,
        MIN(CASE WHEN step IS NOT NULL THEN value END) AS min, MAX(CASE WHEN step IS NOT NULL THEN value END) AS max,
        MAX(recorded_at) AS updated_at,
        (SELECT x.value FROM main.metrics x WHERE x.run_id = m.run_id AND x.split = m.split AND x.name = m.name
         AND x.step IS NULL ORDER BY x.rowid DESC LIMIT 1) AS final,
        SUM(step IS NULL) > 0 AS has_final
    FROM main.metrics m GROUP BY run_id, split, name
"""
_SUMMARY_BEFORE_RESULTS = """
    CREATE TEMP VIEW metric_summary AS SELECT run_id, split, name,
        CASE WHEN last_step IS NULL THEN count - 1 ELSE count END AS count, first_step, last_step,
        CASE WHEN last_step IS NULL THEN NULL ELSE last END AS last, min, max, updated_at,
        CASE WHEN last_step IS NULL THEN last END AS final, last_step IS NULL AS has_final
    FROM main.metric_summary
"""


def shape_as_newest(conn: sqlite3.Connection, applied: Set[str]) -> None:
    """On a reader's connection (before ``query_only``): temporary views that show an older
    ledger in the newest shape, so no query anywhere branches on the schema's age."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table, columns in NEWEST.items():
        if table not in tables:
            conn.execute(f"CREATE TEMP VIEW {table} AS SELECT {', '.join(f'NULL AS {c}' for c in columns)} WHERE 0")
            continue
        have = {r[1] for r in conn.execute(f"PRAGMA main.table_info({table})")}
        missing = [c for c in columns if c not in have]
        if missing:
            conn.execute(f"CREATE TEMP VIEW {table} AS SELECT *, {', '.join(f'NULL AS {c}' for c in missing)} "
                         f"FROM main.{table}")
    if "metric_summary" not in tables:
        conn.execute(_SUMMARY_FROM_POINTS)
    elif not any(name.startswith("0010") for name in applied):
        conn.execute(_SUMMARY_BEFORE_RESULTS)


def unknown_migrations(applied: Set[str]) -> Sequence[str]:
    """Migrations this mlpipeline does not know (a newer one wrote the ledger)."""
    return sorted(applied - {name for name, _ in MIGRATIONS})
