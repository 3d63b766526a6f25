//! Table definitions. `user_version` records the schema so later releases can migrate in place.

use rusqlite::Connection;

const VERSION: i64 = 1;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sweeps (
    name            TEXT PRIMARY KEY,
    seq             INTEGER NOT NULL,          -- submission order: older sweeps are served first
    created_at_ms   INTEGER NOT NULL,
    state           TEXT NOT NULL,             -- active | cancelled
    source          TEXT NOT NULL,
    source_path     TEXT NOT NULL,
    max_attempts    INTEGER NOT NULL,
    max_lost        INTEGER NOT NULL,
    trials_version  INTEGER NOT NULL DEFAULT 0, -- bumped on every trial change; the Parquet sink follows it
    last_metric_seq INTEGER NOT NULL DEFAULT 0  -- highest metrics.seq of this sweep
);

CREATE TABLE IF NOT EXISTS trials (
    sweep          TEXT NOT NULL REFERENCES sweeps(name),
    trial_id       TEXT NOT NULL,
    idx            INTEGER NOT NULL,
    workload       TEXT NOT NULL,
    spec           TEXT NOT NULL,              -- the TrialSpec as JSON
    gpus           INTEGER NOT NULL,
    state          TEXT NOT NULL,
    attempt        INTEGER NOT NULL DEFAULT 0,
    user_failures  INTEGER NOT NULL DEFAULT 0,
    lost           INTEGER NOT NULL DEFAULT 0,
    lease_id       INTEGER,                    -- the current lease, the fencing token
    agent          TEXT,
    deadline_ms    INTEGER,
    started_at_ms  INTEGER,
    finished_at_ms INTEGER,
    last_error     TEXT,
    PRIMARY KEY (sweep, trial_id)
);
CREATE INDEX IF NOT EXISTS trials_by_state ON trials(state, sweep, idx);
CREATE INDEX IF NOT EXISTS trials_by_lease ON trials(lease_id);

CREATE TABLE IF NOT EXISTS attempts (
    lease_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    sweep          TEXT NOT NULL,
    trial_id       TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    agent          TEXT NOT NULL,
    leased_at_ms   INTEGER NOT NULL,
    started_at_ms  INTEGER,
    finished_at_ms INTEGER,
    outcome        TEXT,                        -- succeeded | failed | bad_config | stopped | lost | cancelled
    exit_code      INTEGER,
    signal         INTEGER,
    error          TEXT
);

CREATE TABLE IF NOT EXISTS agents (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    hostname      TEXT NOT NULL,
    slots         INTEGER NOT NULL,
    gpus          TEXT NOT NULL,
    registered_at_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS metrics (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    sweep          TEXT NOT NULL,
    trial_id       TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    epoch          INTEGER NOT NULL,
    step           INTEGER NOT NULL,
    metric         TEXT NOT NULL,
    value          REAL,                        -- SQLite stores NaN as NULL; read back as NaN
    recorded_at_us INTEGER NOT NULL,
    UNIQUE (sweep, trial_id, attempt, epoch, metric)
);
CREATE INDEX IF NOT EXISTS metrics_by_sweep ON metrics(sweep, seq);

-- The latest value of each metric of each trial: highest epoch, then highest attempt.
CREATE TABLE IF NOT EXISTS finals (
    sweep    TEXT NOT NULL,
    trial_id TEXT NOT NULL,
    metric   TEXT NOT NULL,
    epoch    INTEGER NOT NULL,
    attempt  INTEGER NOT NULL,
    value    REAL,
    PRIMARY KEY (sweep, trial_id, metric)
);
"#;

pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < VERSION {
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", VERSION)?;
    }
    Ok(())
}
