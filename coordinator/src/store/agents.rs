//! Agents: who registered, what they offer, when they were last heard from.

use super::Store;
use crate::error::Result;
use rusqlite::params;

#[derive(Debug, Clone, PartialEq)]
pub struct AgentRecord {
    pub id: String,
    pub hostname: String,
    pub slots: u32,
    pub gpus: Vec<String>,
    pub last_seen_ms: i64,
    /// Trials it holds leases for now.
    pub running: u32,
    /// Its attempts that failed in a row, most recent last.
    pub consecutive_failures: u32,
    /// It gets no new leases (see [`crate::scheduler::blames_node`]).
    pub quarantined: bool,
    /// The evidence it was quarantined on.
    pub quarantine_reason: Option<String>,
    /// What it last said is left of each GPU, in its lease requests, and when.
    pub gpu_room: Vec<crate::scheduler::GpuRoom>,
    pub gpu_room_at_ms: Option<i64>,
}

impl Store {
    /// Registers an agent and returns its id: its name, or the name and a number when an earlier
    /// registration holds it. Only the hash of the registration's session secret is kept; every
    /// later call must present the secret.
    pub fn register_agent(
        &mut self,
        name: &str,
        hostname: &str,
        slots: u32,
        gpus: &[String],
        session: &crate::session::SessionHash,
        now_ms: i64,
    ) -> Result<String> {
        let tx = self.conn.transaction()?;
        // The name as given, unless an earlier registration holds it (this agent before a restart,
        // or another agent of the same name): then a number keeps every registration apart.
        let taken: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM agents WHERE id = ?1)", [name], |r| r.get(0))?;
        let id = if taken {
            let n: i64 = tx.query_row("SELECT COUNT(*) + 1 FROM agents", [], |r| r.get(0))?;
            format!("{name}-{n}")
        } else {
            name.to_string()
        };
        tx.execute(
            "INSERT INTO agents (id, name, hostname, slots, gpus, registered_at_ms, last_seen_ms, session_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
            params![id, name, hostname, slots, gpus.join(","), now_ms, &session.0[..]],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Hosts other than `hostname` with an agent heard from within `window_ms`.
    pub fn hosts_alive_besides(&self, hostname: &str, now_ms: i64, window_ms: i64) -> Result<u32> {
        let n: u32 = self.conn.query_row(
            "SELECT COUNT(DISTINCT hostname) FROM agents WHERE hostname != ?1 AND last_seen_ms >= ?2",
            params![hostname, now_ms - window_ms],
            |r| r.get(0),
        )?;
        Ok(n)
    }

    /// Agents heard from within `window_ms`, with the number of leases each holds.
    pub fn agents(&self, now_ms: i64, window_ms: i64) -> Result<Vec<AgentRecord>> {
        let mut q = self.conn.prepare(
            "SELECT a.id, a.hostname, a.slots, a.gpus, a.last_seen_ms,
                    (SELECT COUNT(*) FROM trials t WHERE t.agent = a.id AND t.state IN ('leased', 'running')),
                    a.consecutive_failures, a.quarantined_at_ms IS NOT NULL, a.quarantine_reason,
                    a.gpu_room, a.gpu_room_at_ms
             FROM agents a WHERE a.last_seen_ms >= ?1 ORDER BY a.registered_at_ms, a.id",
        )?;
        let rows = q.query_map([now_ms - window_ms], |r| {
            let gpus: String = r.get(3)?;
            Ok(AgentRecord {
                id: r.get(0)?,
                hostname: r.get(1)?,
                slots: r.get(2)?,
                gpus: gpus.split(',').filter(|g| !g.is_empty()).map(str::to_string).collect(),
                last_seen_ms: r.get(4)?,
                running: r.get(5)?,
                consecutive_failures: r.get(6)?,
                quarantined: r.get(7)?,
                quarantine_reason: r.get(8)?,
                gpu_room: r.get::<_, Option<String>>(9)?.map(|j| rooms_from_json(&j)).unwrap_or_default(),
                gpu_room_at_ms: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// The GPU rooms as stored: `[[share, free bytes or null], ...]`.
pub(super) fn rooms_to_json(rooms: &[crate::scheduler::GpuRoom]) -> String {
    serde_json::Value::Array(rooms.iter().map(|r| serde_json::json!([r.share, r.free_bytes])).collect()).to_string()
}

/// What [`rooms_to_json`] wrote; anything else reads as no rooms.
fn rooms_from_json(text: &str) -> Vec<crate::scheduler::GpuRoom> {
    let Ok(serde_json::Value::Array(rooms)) = serde_json::from_str(text) else { return Vec::new() };
    rooms
        .iter()
        .filter_map(|r| Some(crate::scheduler::GpuRoom { share: r.get(0)?.as_f64()?, free_bytes: r.get(1)?.as_u64() }))
        .collect()
}
