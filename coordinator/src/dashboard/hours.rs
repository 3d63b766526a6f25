//! The compute each sweep has used, for the sweeps page. Summing a sweep's attempts costs a lookup
//! per attempt (a quarter of a second at 100,000), so the dashboard keeps each sweep's figure, sums
//! every sweep once when it starts, and sums a sweep again in the background when its figure is
//! older than [`FRESH`]: the page always answers from what is held, at most that old.

use crate::shared::Shared;
use crate::store::ComputeHours;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How old a shown figure may be before it is summed again.
const FRESH: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Hours {
    held: Mutex<HashMap<String, (Instant, ComputeHours)>>,
    summing: Mutex<HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hours {
    /// Starts summing every stored sweep, so the first look at the sweeps page finds them held.
    pub fn warm(shared: &Shared) -> Arc<Hours> {
        let hours = Arc::new(Hours::default());
        let (held, shared) = (hours.clone(), shared.clone());
        tokio::spawn(async move {
            let Ok(names) = shared.read(|s, _| s.sweep_names()).await else { return };
            for name in names {
                let _ = held.sum(&shared, &name).await;
            }
        });
        hours
    }

    /// The hours of `sweep`: the held figure (summed again in the background once stale), or
    /// summed now for a sweep not seen before.
    pub async fn of(self: &Arc<Self>, shared: &Shared, sweep: &str) -> crate::Result<ComputeHours> {
        let held = lock(&self.held).get(sweep).copied();
        match held {
            Some((at, value)) => {
                if at.elapsed() > FRESH && lock(&self.summing).insert(sweep.to_string()) {
                    let (me, shared, name) = (self.clone(), shared.clone(), sweep.to_string());
                    tokio::spawn(async move {
                        let _ = me.sum(&shared, &name).await;
                        lock(&me.summing).remove(&name);
                    });
                }
                Ok(value)
            }
            None => self.sum(shared, sweep).await,
        }
    }

    async fn sum(&self, shared: &Shared, sweep: &str) -> crate::Result<ComputeHours> {
        let name = sweep.to_string();
        let value = shared.read(move |s, now| s.compute_hours(&name, now)).await?;
        lock(&self.held).insert(sweep.to_string(), (Instant::now(), value));
        Ok(value)
    }
}
