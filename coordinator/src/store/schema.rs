//! Table definitions. `user_version` records the schema so later releases can migrate in place.

use rusqlite::Connection;

const VERSION: i64 = 13;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sweeps (
    name            TEXT PRIMARY KEY,
    seq             INTEGER NOT NULL,          -- submission order: older sweeps are served first
    created_at_ms   INTEGER NOT NULL,
    state           TEXT NOT NULL,             -- active | paused | cancelled
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

/// Version 2: retry backoff per sweep, the earliest time a failed trial may run again, and
/// agents' failure streaks (quarantine).
const V2: &str = r#"
ALTER TABLE sweeps ADD COLUMN retry_backoff_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE trials ADD COLUMN not_before_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;
"#;

/// Version 3: how many trials each attempt trained with in one fused group (1: alone), and the
/// group's fusion key (`sweep_spec::fusion::key`), so that a group size that ran out of GPU memory
/// is not tried again for trials of the same key.
const V3: &str = r#"
ALTER TABLE attempts ADD COLUMN group_size INTEGER NOT NULL DEFAULT 1;
ALTER TABLE attempts ADD COLUMN fusion_key TEXT;
CREATE INDEX IF NOT EXISTS attempts_by_fusion_key ON attempts(sweep, fusion_key) WHERE fusion_key IS NOT NULL;
"#;

/// Version 4: the SHA-256 of each agent registration's session secret (`crate::session`; NULL for
/// agents registered before sessions, which must register again), and who submitted each sweep
/// with the trial definition it was submitted with (NULL before owners were recorded, or without
/// token files).
const V4: &str = r#"
ALTER TABLE agents ADD COLUMN session_hash BLOB;
ALTER TABLE sweeps ADD COLUMN owner TEXT;
ALTER TABLE sweeps ADD COLUMN definition TEXT;
"#;

/// Version 5: the distinct metric names each sweep has reported, so the per-sweep bound
/// (`--max-metric-names`) costs one lookup per name in a report. Filled from the finals of a store
/// written before.
const V5: &str = r#"
CREATE TABLE IF NOT EXISTS metric_names (
    sweep  TEXT NOT NULL,
    metric TEXT NOT NULL,
    PRIMARY KEY (sweep, metric)
) WITHOUT ROWID;
INSERT OR IGNORE INTO metric_names (sweep, metric) SELECT DISTINCT sweep, metric FROM finals;
"#;

/// Version 6: who is at fault when trials fail (`scheduler::blames_node`, `scheduler::should_pause`).
/// An agent's quarantine is a recorded decision with its evidence, cleared by an operator
/// (`quarantined_at_ms`, `quarantine_reason`); its run of failures starts after `streak_from_lease`
/// (its last success, or the moment it was let out of quarantine). A sweep is `paused` with a
/// reason and the common error of its failing trials; only failures after `failures_from_lease`
/// (its last resume) count towards pausing it.
const V6: &str = r#"
ALTER TABLE agents ADD COLUMN quarantined_at_ms INTEGER;
ALTER TABLE agents ADD COLUMN quarantine_reason TEXT;
ALTER TABLE agents ADD COLUMN streak_from_lease INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sweeps ADD COLUMN pause_reason TEXT;
ALTER TABLE sweeps ADD COLUMN pause_error TEXT;
ALTER TABLE sweeps ADD COLUMN failures_from_lease INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS attempts_by_agent ON attempts(agent, lease_id);
CREATE INDEX IF NOT EXISTS attempts_by_trial ON attempts(sweep, trial_id, outcome);
CREATE INDEX IF NOT EXISTS attempts_by_outcome ON attempts(sweep, outcome, lease_id);
"#;

/// Version 7: what failures and retries leave for users to read. Indexes to find the metric rows
/// a later attempt re-reported (the `superseded` column of the Parquet parts) and a trial's last
/// attempt (its exit code in `trials.parquet`), and the warnings about metric values an agent
/// skipped (a string where a number belongs), one per trial and field name.
const V7: &str = r#"
CREATE INDEX IF NOT EXISTS metrics_by_key ON metrics(sweep, trial_id, epoch, metric, attempt);
CREATE INDEX IF NOT EXISTS attempts_by_trial_lease ON attempts(sweep, trial_id, lease_id);
CREATE TABLE IF NOT EXISTS trial_warnings (
    sweep          TEXT NOT NULL,
    trial_id       TEXT NOT NULL,
    field          TEXT NOT NULL,
    message        TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    recorded_at_ms INTEGER NOT NULL,
    PRIMARY KEY (sweep, trial_id, field)
) WITHOUT ROWID;
"#;

/// Version 8: each trial's change counter, so the Parquet sink writes only the trials that changed
/// (`results/<sweep>/trial-changes/`) instead of rereading the whole sweep, and the queue order of
/// each sweep as an index, so a page of its trials is read without sorting all of them. A trigger
/// owns the counter: any change to a column of `trials.parquet` advances the sweep's
/// `trials_version` and stamps the trial with the new value, whichever statement made the change.
/// Heartbeats (`deadline_ms`) stamp nothing, nor does a statement that sets a column to the value
/// it had. Inserting trials stamps them once per batch inserted. A sweep's `trials_version` is always the highest
/// version of its trials, so trials stored before start at their sweep's.
const V8: &str = r#"
ALTER TABLE trials ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
UPDATE trials SET version = (SELECT trials_version FROM sweeps WHERE name = trials.sweep);
CREATE INDEX IF NOT EXISTS trials_by_version ON trials(sweep, version);
CREATE INDEX IF NOT EXISTS trials_by_idx ON trials(sweep, idx);
CREATE TRIGGER IF NOT EXISTS trial_changed
AFTER UPDATE OF state, attempt, agent, started_at_ms, finished_at_ms, last_error ON trials
WHEN OLD.state IS NOT NEW.state OR OLD.attempt IS NOT NEW.attempt OR OLD.agent IS NOT NEW.agent
  OR OLD.started_at_ms IS NOT NEW.started_at_ms OR OLD.finished_at_ms IS NOT NEW.finished_at_ms
  OR OLD.last_error IS NOT NEW.last_error
BEGIN
    UPDATE sweeps SET trials_version = trials_version + 1 WHERE name = NEW.sweep;
    UPDATE trials SET version = (SELECT trials_version FROM sweeps WHERE name = NEW.sweep)
     WHERE sweep = NEW.sweep AND trial_id = NEW.trial_id;
END;
"#;

/// Version 9: sweeps sent in parts (`SubmitSweepStream`). Each part's trials wait in
/// `upload_trials`, seen by nobody, until the last part arrived; then `base_idx` is set (where the
/// trials queue in their sweep) and they move into `trials` a batch per transaction. An upload
/// without `base_idx` at start-up was broken off and is dropped; one with it is finished.
/// `end_idx` is one past its last queue position, so two uploads of one sweep never share one.
const V9: &str = r#"
CREATE TABLE IF NOT EXISTS uploads (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    sweep          TEXT NOT NULL,
    started_at_ms  INTEGER NOT NULL,
    base_idx       INTEGER,
    end_idx        INTEGER
);
CREATE TABLE IF NOT EXISTS upload_trials (
    upload    INTEGER NOT NULL,
    trial_id  TEXT NOT NULL,
    idx       INTEGER NOT NULL,              -- the trial's index in its sweep file
    workload  TEXT NOT NULL,
    spec      TEXT NOT NULL,
    gpus      INTEGER NOT NULL,
    PRIMARY KEY (upload, idx, trial_id)       -- moved in and dropped in queue order, a range at a time
) WITHOUT ROWID;
"#;

/// Version 10: early stopping. A sweep's schedule (`sweep_spec::schedule::Schedule` as JSON, NULL
/// for none); each trial's value at each rung of its bracket it reached, in the transaction of the report that
/// reached it (NULL: NaN or infinite, or the trial failed before the rung: the worst value); one
/// row per decision, with what the value was compared with; and on each trial the epoch of the
/// highest rung it reached, a column of `trials.parquet` that the change trigger follows.
const V10: &str = r#"
ALTER TABLE sweeps ADD COLUMN schedule TEXT;
ALTER TABLE trials ADD COLUMN rung INTEGER;
CREATE TABLE IF NOT EXISTS rungs (
    sweep    TEXT NOT NULL,
    bracket  INTEGER NOT NULL,
    epoch    INTEGER NOT NULL,
    trial_id TEXT NOT NULL,
    value    REAL,
    PRIMARY KEY (sweep, bracket, epoch, trial_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decisions (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    sweep          TEXT NOT NULL,
    trial_id       TEXT NOT NULL,
    decided_at_ms  INTEGER NOT NULL,
    epoch          INTEGER NOT NULL,
    rung           INTEGER NOT NULL,
    action         TEXT NOT NULL,              -- continue | stop
    metric         TEXT NOT NULL,
    value          REAL,
    threshold      REAL,
    reached        INTEGER NOT NULL,
    kept           INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_by_sweep ON decisions(sweep, seq);
DROP TRIGGER IF EXISTS trial_changed;
CREATE TRIGGER trial_changed
AFTER UPDATE OF state, attempt, agent, started_at_ms, finished_at_ms, last_error, rung ON trials
WHEN OLD.state IS NOT NEW.state OR OLD.attempt IS NOT NEW.attempt OR OLD.agent IS NOT NEW.agent
  OR OLD.started_at_ms IS NOT NEW.started_at_ms OR OLD.finished_at_ms IS NOT NEW.finished_at_ms
  OR OLD.last_error IS NOT NEW.last_error OR OLD.rung IS NOT NEW.rung
BEGIN
    UPDATE sweeps SET trials_version = trials_version + 1 WHERE name = NEW.sweep;
    UPDATE trials SET version = (SELECT trials_version FROM sweeps WHERE name = NEW.sweep)
     WHERE sweep = NEW.sweep AND trial_id = NEW.trial_id;
END;
"#;

/// Version 11: pausing and promoting (`[schedule] promote`). Each trial's epoch budget, the
/// epoch its next attempt stops after (NULL: no limit), a column of `trials.parquet` that the
/// change trigger follows, and how many times it was queued again for its next rung (those
/// attempts are no retries); and on each attempt the budget it was leased with, so its end says
/// whether it trained a segment or the whole trial. And a TPE sweep's plan (`sweep_spec::tpe::Plan`
/// as JSON; NULL: every trial is submitted), from which the coordinator proposes its later trials.
const V11: &str = r#"
ALTER TABLE trials ADD COLUMN epochs_budget INTEGER;
ALTER TABLE trials ADD COLUMN segments INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sweeps ADD COLUMN search TEXT;
ALTER TABLE attempts ADD COLUMN stop_after INTEGER;
DROP TRIGGER IF EXISTS trial_changed;
CREATE TRIGGER trial_changed
AFTER UPDATE OF state, attempt, agent, started_at_ms, finished_at_ms, last_error, rung, epochs_budget ON trials
WHEN OLD.state IS NOT NEW.state OR OLD.attempt IS NOT NEW.attempt OR OLD.agent IS NOT NEW.agent
  OR OLD.started_at_ms IS NOT NEW.started_at_ms OR OLD.finished_at_ms IS NOT NEW.finished_at_ms
  OR OLD.last_error IS NOT NEW.last_error OR OLD.rung IS NOT NEW.rung OR OLD.epochs_budget IS NOT NEW.epochs_budget
BEGIN
    UPDATE sweeps SET trials_version = trials_version + 1 WHERE name = NEW.sweep;
    UPDATE trials SET version = (SELECT trials_version FROM sweeps WHERE name = NEW.sweep)
     WHERE sweep = NEW.sweep AND trial_id = NEW.trial_id;
END;
"#;

/// Version 12: population based training. A trial PBT made records the trial whose checkpoint it
/// started from, the epoch it copied, and how many copies lie behind it (its generation); and
/// each checkpoint an agent kept at the end of an interval, which later trials may copy. The
/// change trigger is unchanged: these are written once, when the trial is made.
const V12: &str = r#"
ALTER TABLE trials ADD COLUMN parent_trial_id TEXT;
ALTER TABLE trials ADD COLUMN copied_epoch INTEGER;
ALTER TABLE trials ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS kept_checkpoints (
    sweep    TEXT NOT NULL,
    trial_id TEXT NOT NULL,
    epoch    INTEGER NOT NULL,
    PRIMARY KEY (sweep, trial_id, epoch)
) WITHOUT ROWID;
"#;

/// Version 13: what each agent last said is left of its GPUs (the share not given to trials, and the
/// free memory the driver reported), as JSON, and when: the dashboard's agents page shows it.
const V13: &str = r#"
ALTER TABLE agents ADD COLUMN gpu_room TEXT;
ALTER TABLE agents ADD COLUMN gpu_room_at_ms INTEGER;
"#;

pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < 1 {
        conn.execute_batch(SCHEMA)?;
    }
    if version < 2 {
        conn.execute_batch(V2)?;
    }
    if version < 3 {
        conn.execute_batch(V3)?;
    }
    if version < 4 {
        conn.execute_batch(V4)?;
    }
    if version < 5 {
        conn.execute_batch(V5)?;
    }
    if version < 6 {
        conn.execute_batch(V6)?;
    }
    if version < 7 {
        conn.execute_batch(V7)?;
    }
    if version < 8 {
        conn.execute_batch(V8)?;
    }
    if version < 9 {
        conn.execute_batch(V9)?;
    }
    if version < 10 {
        conn.execute_batch(V10)?;
    }
    if version < 11 {
        conn.execute_batch(V11)?;
    }
    if version < 12 {
        conn.execute_batch(V12)?;
    }
    if version < 13 {
        conn.execute_batch(V13)?;
    }
    if version < VERSION {
        conn.pragma_update(None, "user_version", VERSION)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_store_migrates_in_place() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute("INSERT INTO agents (id, name, hostname, slots, gpus, registered_at_ms, last_seen_ms) VALUES ('a', 'a', 'h', 1, '', 0, 0)", []).unwrap();
        migrate(&conn).unwrap();
        let streak: i64 =
            conn.query_row("SELECT consecutive_failures FROM agents WHERE id = 'a'", [], |r| r.get(0)).unwrap();
        assert_eq!(streak, 0);
        conn.execute(
            "INSERT INTO attempts (sweep, trial_id, attempt, agent, leased_at_ms) VALUES ('s', 't', 1, 'a', 0)",
            [],
        )
        .unwrap();
        let group: i64 = conn.query_row("SELECT group_size FROM attempts", [], |r| r.get(0)).unwrap();
        assert_eq!(group, 1, "attempts before fusion ran alone");
        let session: Option<Vec<u8>> =
            conn.query_row("SELECT session_hash FROM agents WHERE id = 'a'", [], |r| r.get(0)).unwrap();
        assert_eq!(session, None, "an agent from before sessions has none: it must register again");
        let (quarantined, from): (Option<i64>, i64) = conn
            .query_row("SELECT quarantined_at_ms, streak_from_lease FROM agents WHERE id = 'a'", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((quarantined, from), (None, 0), "no agent is quarantined by the migration");
        assert_eq!(conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)).unwrap(), VERSION);
        migrate(&conn).unwrap();
    }
}
