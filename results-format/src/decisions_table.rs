//! `decisions.parquet`: one row per decision an early-stopping schedule made, so a user can ask
//! "why was trial X stopped?" with one query. Rewritten whole (atomically) as decisions are added.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::atomic::ensure_dir;
use super::parquet_io::{column, opt, read_batches, timestamp_type, write_batch, UTC};
use super::ResultsError;

/// File name of the per-sweep decisions table, inside the sweep's folder.
pub const DECISIONS_FILE: &str = "decisions.parquet";

/// What a schedule decided for one trial at one rung.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    /// Order of the decisions of the whole store.
    pub seq: i64,
    pub sweep: String,
    pub trial_id: String,
    /// Microseconds since the Unix epoch, UTC.
    pub decided_at_us: i64,
    /// The epoch of the rung.
    pub epoch: i32,
    /// The rung's number in the trial's bracket, from 0.
    pub rung: i32,
    /// `continue` or `stop`; under a promoting schedule also `pause` and `promote`.
    pub action: String,
    pub metric: String,
    /// The trial's value at the rung; None when it was NaN or infinite (the worst value).
    pub value: Option<f64>,
    /// The worst value still inside the cut; None when a missing value was inside it.
    pub threshold: Option<f64>,
    /// Trials that had reached the rung, this one included, and how many of them go on.
    pub reached: i32,
    pub kept: i32,
}

/// The decisions schema; names and order are part of the users' contract.
fn decisions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("seq", DataType::Int64, false),
        Field::new("sweep", DataType::Utf8, false),
        Field::new("trial_id", DataType::Utf8, false),
        Field::new("decided_at", timestamp_type(), false),
        Field::new("epoch", DataType::Int32, false),
        Field::new("rung", DataType::Int32, false),
        Field::new("action", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
        Field::new("threshold", DataType::Float64, true),
        Field::new("reached", DataType::Int32, false),
        Field::new("kept", DataType::Int32, false),
    ]))
}

/// Writes every decision of the sweep as `<sweep_dir>/decisions.parquet`, replacing it atomically.
pub fn write_decisions_table(sweep_dir: &Path, rows: &[DecisionRow]) -> Result<PathBuf, ResultsError> {
    let path = sweep_dir.join(DECISIONS_FILE);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.seq))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.sweep))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.trial_id))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.decided_at_us)).with_timezone(UTC)),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.epoch))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.rung))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.action))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.metric))),
        Arc::new(rows.iter().map(|r| r.value).collect::<Float64Array>()),
        Arc::new(rows.iter().map(|r| r.threshold).collect::<Float64Array>()),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.reached))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.kept))),
    ];
    let batch = RecordBatch::try_new(decisions_schema(), columns).map_err(ResultsError::arrow(&path))?;
    ensure_dir(sweep_dir)?;
    write_batch(&path, &batch, None)?;
    Ok(path)
}

/// Every row of `<sweep_dir>/decisions.parquet`, or none when the file does not exist.
pub fn read_decisions_table(sweep_dir: &Path) -> Result<Vec<DecisionRow>, ResultsError> {
    let path = sweep_dir.join(DECISIONS_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for batch in read_batches(&path)? {
        let p = &path;
        let seq = column::<Int64Array>(&batch, "seq", &DataType::Int64, true, p)?;
        let sweep = column::<StringArray>(&batch, "sweep", &DataType::Utf8, true, p)?;
        let trial_id = column::<StringArray>(&batch, "trial_id", &DataType::Utf8, true, p)?;
        let at = column::<TimestampMicrosecondArray>(&batch, "decided_at", &timestamp_type(), true, p)?;
        let epoch = column::<Int32Array>(&batch, "epoch", &DataType::Int32, true, p)?;
        let rung = column::<Int32Array>(&batch, "rung", &DataType::Int32, true, p)?;
        let action = column::<StringArray>(&batch, "action", &DataType::Utf8, true, p)?;
        let metric = column::<StringArray>(&batch, "metric", &DataType::Utf8, true, p)?;
        let value = column::<Float64Array>(&batch, "value", &DataType::Float64, false, p)?;
        let threshold = column::<Float64Array>(&batch, "threshold", &DataType::Float64, false, p)?;
        let reached = column::<Int32Array>(&batch, "reached", &DataType::Int32, true, p)?;
        let kept = column::<Int32Array>(&batch, "kept", &DataType::Int32, true, p)?;
        out.extend((0..batch.num_rows()).map(|i| DecisionRow {
            seq: seq.value(i),
            sweep: sweep.value(i).to_owned(),
            trial_id: trial_id.value(i).to_owned(),
            decided_at_us: at.value(i),
            epoch: epoch.value(i),
            rung: rung.value(i),
            action: action.value(i).to_owned(),
            metric: metric.value(i).to_owned(),
            value: opt(value, i, Float64Array::value),
            threshold: opt(threshold, i, Float64Array::value),
            reached: reached.value(i),
            kept: kept.value(i),
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_read_back_with_missing_values_as_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let row = |seq: i64, action: &str, value: Option<f64>| DecisionRow {
            seq,
            sweep: "s".into(),
            trial_id: format!("t{seq}"),
            decided_at_us: 1_700_000_000_000_000 + seq,
            epoch: 3,
            rung: 1,
            action: action.into(),
            metric: "test_error".into(),
            value,
            threshold: Some(0.25),
            reached: 4,
            kept: 2,
        };
        let rows = vec![row(1, "continue", Some(0.2)), row(2, "stop", None)];
        assert_eq!(read_decisions_table(dir.path()).unwrap(), vec![], "no file: no decisions");
        write_decisions_table(dir.path(), &rows).unwrap();
        assert_eq!(read_decisions_table(dir.path()).unwrap(), rows);
        write_decisions_table(dir.path(), &rows[..1]).unwrap();
        assert_eq!(read_decisions_table(dir.path()).unwrap(), rows[..1], "a rewrite replaces the file");
    }
}
