//! Point-in-time figures for the metrics endpoint, read in one short transaction.

use super::Store;
use crate::error::Result;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gauges {
    /// (sweep, state) → trials.
    pub trials: BTreeMap<(String, String), u64>,
    pub leases: u64,
    pub agents_alive: u64,
    pub agents_quarantined: u64,
    /// Sweeps paused because their trials fail on every agent.
    pub sweeps_paused: u64,
    /// Every metric row ever stored; rows are never deleted, so the highest sequence number is the count.
    pub metric_rows: u64,
}

impl Store {
    pub fn gauges(&self, now_ms: i64, alive_window_ms: i64) -> Result<Gauges> {
        let mut g = Gauges::default();
        let mut q = self.conn.prepare_cached("SELECT sweep, state, COUNT(*) FROM trials GROUP BY sweep, state")?;
        for row in
            q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)? as u64)))?
        {
            let (sweep, state, n) = row?;
            if state == "leased" || state == "running" {
                g.leases += n;
            }
            g.trials.insert((sweep, state), n);
        }
        let (alive, quarantined): (i64, i64) = self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(quarantined_at_ms IS NOT NULL), 0) FROM agents WHERE last_seen_ms >= ?1",
            rusqlite::params![now_ms - alive_window_ms],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        g.agents_alive = alive as u64;
        g.agents_quarantined = quarantined as u64;
        g.sweeps_paused =
            self.conn.query_row("SELECT COUNT(*) FROM sweeps WHERE state = 'paused'", [], |r| r.get::<_, i64>(0))?
                as u64;
        g.metric_rows =
            self.conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM metrics", [], |r| r.get::<_, i64>(0))? as u64;
        Ok(g)
    }
}
