//! A sweep's owner and the terms it was submitted with, as stored: what `crate::ownership` judges
//! a cancellation or a resubmission against.

use super::sweeps::{parse_spec, sweep_policy};
use crate::error::{Error, Result};
use crate::ownership::{self, Terms};
use rusqlite::{Connection, OptionalExtension, Transaction};

/// A stored sweep as a resubmission or a cancellation sees it.
pub(super) struct Stored {
    pub owner: Option<String>,
    pub terms: Terms,
}

/// The sweep named `name`, if there is one. Sweeps stored before definitions were recorded take
/// the definition of their first trial.
pub(super) fn stored(tx: &Connection, name: &str) -> Result<Option<Stored>> {
    let row: Option<(Option<String>, Option<String>, Option<String>)> = tx
        .query_row("SELECT owner, definition, schedule FROM sweeps WHERE name = ?1", [name], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((owner, definition, schedule)) = row else { return Ok(None) };
    let definitions = match definition {
        Some(json) => {
            serde_json::from_str(&json).map_err(|e| Error::Corrupt(format!("sweep {name} definition: {e}")))?
        }
        None => {
            let first: Option<String> = tx
                .query_row("SELECT spec FROM trials WHERE sweep = ?1 ORDER BY idx LIMIT 1", [name], |r| r.get(0))
                .optional()?;
            first
                .map(|spec| parse_spec(&spec))
                .transpose()?
                .map(|s| vec![ownership::definition(&s)])
                .unwrap_or_default()
        }
    };
    Ok(Some(Stored { owner, terms: Terms { policy: sweep_policy(tx, name)?, definitions, schedule } }))
}

/// The owner of sweep `name` (None: not recorded); UnknownSweep when there is no such sweep.
pub(super) fn owner(tx: &Transaction, name: &str) -> Result<Option<String>> {
    tx.query_row("SELECT owner FROM sweeps WHERE name = ?1", [name], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::UnknownSweep(name.to_string()))
}
