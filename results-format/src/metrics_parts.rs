//! Append-only metrics: each flush of the coordinator's store becomes one
//! `metrics/part-<first_seq>-<last_seq>.parquet`. The sequence range in the file name is the
//! resume point after a crash, so no row is written twice and none is skipped. A part's rows never
//! change, only their `superseded` mark: the coordinator rewrites the part (same name, same rows)
//! when a retry re-reports an epoch of it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::atomic::{ensure_dir, refuse_link};
use super::parquet_io::{column, read_batches, timestamp_type, write_batch, UTC};
use super::part_files::{list_parts, part_name, remove_stale_temporaries};
use super::{ResultsError, METRICS_DIR};

/// One metric value of one epoch of one attempt of a trial.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub sweep: String,
    pub trial_id: String,
    pub attempt: i32,
    pub epoch: i32,
    pub step: i64,
    pub metric: String,
    pub value: f64,
    /// Microseconds since the Unix epoch, UTC.
    pub recorded_at_us: i64,
    /// A later attempt of the same trial reported the same epoch and metric: the row is history,
    /// and queries that average or count values skip it (`WHERE NOT superseded`).
    pub superseded: bool,
}

/// The metrics schema; the order and the names are part of the users' contract.
fn metrics_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sweep", DataType::Utf8, false),
        Field::new("trial_id", DataType::Utf8, false),
        Field::new("attempt", DataType::Int32, false),
        Field::new("epoch", DataType::Int32, false),
        Field::new("step", DataType::Int64, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
        Field::new("recorded_at", timestamp_type(), false),
        Field::new(SUPERSEDED, DataType::Boolean, false),
    ]))
}

/// The column that marks rows a later attempt re-reported. Parts written before it existed lack
/// it; the coordinator rewrites them at its next start ([`metric_parts`] says which).
const SUPERSEDED: &str = "superseded";

/// Writes rows with sequence numbers first_seq..=last_seq (global, increasing ids assigned by the
/// coordinator's store) as `<sweep_dir>/metrics/part-{first_seq:016}-{last_seq:016}.parquet`;
/// creates folders as needed. The sweep's folder and its `metrics/` must be real folders, not
/// symbolic links: the error names the one that is a link.
///
/// The caller must not write a range overlapping an earlier part (start after
/// [`last_written_seq`]): parts are never merged or deduplicated, so an overlap would show up as
/// duplicate rows in every query. Writing the exact range of an existing part replaces it
/// atomically: that is how rows that became superseded are marked in parts already written.
pub fn write_metrics_part(
    sweep_dir: &Path,
    first_seq: i64,
    last_seq: i64,
    rows: &[MetricRow],
) -> Result<PathBuf, ResultsError> {
    let dir = sweep_dir.join(METRICS_DIR);
    let path = dir.join(part_name(first_seq, last_seq));
    // Negative numbers would format as "-00…" and break both the name parser and name ordering.
    if first_seq < 0 || first_seq > last_seq {
        return Err(ResultsError::SeqRange { path, first_seq, last_seq });
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.sweep))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.trial_id))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.attempt))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.epoch))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.step))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.metric))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.value))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.recorded_at_us)).with_timezone(UTC)),
        Arc::new(rows.iter().map(|r| Some(r.superseded)).collect::<BooleanArray>()),
    ];
    let batch = RecordBatch::try_new(metrics_schema(), columns).map_err(ResultsError::arrow(&path))?;
    ensure_dir(sweep_dir)?;
    write_batch(&path, &batch, None)?;
    Ok(path)
}

/// The highest last_seq among finished part files of this sweep (parsed from the file names), or
/// None. After a crash the coordinator resumes writing after it, so no row is written twice and
/// none is skipped. Ignores temporary files and removes them: they are leftovers of a write that
/// never got renamed, so call this at startup, before this process writes any part.
///
/// Refuses a sweep folder or `metrics/` that is a symbolic link: cleaning up through it would
/// remove files elsewhere.
pub fn last_written_seq(sweep_dir: &Path) -> Result<Option<i64>, ResultsError> {
    let dir = sweep_dir.join(METRICS_DIR);
    refuse_link(sweep_dir)?;
    refuse_link(&dir)?;
    remove_stale_temporaries(&dir)?;
    Ok(list_parts(&dir)?.iter().map(|p| p.last).max())
}

/// All rows of all finished parts, in file-name order (which is sequence order). Temporary files
/// of a write in progress are skipped, so this is safe to call while the sweep runs.
pub fn read_metrics(sweep_dir: &Path) -> Result<Vec<MetricRow>, ResultsError> {
    let mut rows = Vec::new();
    visit_metrics(sweep_dir, |row| rows.push(row.to_row()))?;
    Ok(rows)
}

/// One metric row as it is read, its strings borrowed from the part: what [`visit_metrics`] hands
/// out, so a reader that keeps only some of each row never holds the whole sweep's rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricRowRef<'a> {
    pub sweep: &'a str,
    pub trial_id: &'a str,
    pub attempt: i32,
    pub epoch: i32,
    pub step: i64,
    pub metric: &'a str,
    pub value: f64,
    pub recorded_at_us: i64,
    pub superseded: bool,
}

impl MetricRowRef<'_> {
    pub fn to_row(&self) -> MetricRow {
        MetricRow {
            sweep: self.sweep.to_owned(),
            trial_id: self.trial_id.to_owned(),
            attempt: self.attempt,
            epoch: self.epoch,
            step: self.step,
            metric: self.metric.to_owned(),
            value: self.value,
            recorded_at_us: self.recorded_at_us,
            superseded: self.superseded,
        }
    }
}

/// Every row of [`read_metrics`], in the same order, handed to `f` one at a time; a part's rows
/// are in memory only while it is read.
pub fn visit_metrics(sweep_dir: &Path, mut f: impl FnMut(MetricRowRef<'_>)) -> Result<(), ResultsError> {
    for part in list_parts(&sweep_dir.join(METRICS_DIR))? {
        for batch in read_batches(&part.path)? {
            visit_rows(&batch, &part.path, &mut f)?;
        }
    }
    Ok(())
}

fn visit_rows(batch: &RecordBatch, path: &Path, f: &mut impl FnMut(MetricRowRef<'_>)) -> Result<(), ResultsError> {
    let sweep = column::<StringArray>(batch, "sweep", &DataType::Utf8, true, path)?;
    let trial_id = column::<StringArray>(batch, "trial_id", &DataType::Utf8, true, path)?;
    let attempt = column::<Int32Array>(batch, "attempt", &DataType::Int32, true, path)?;
    let epoch = column::<Int32Array>(batch, "epoch", &DataType::Int32, true, path)?;
    let step = column::<Int64Array>(batch, "step", &DataType::Int64, true, path)?;
    let metric = column::<StringArray>(batch, "metric", &DataType::Utf8, true, path)?;
    let value = column::<Float64Array>(batch, "value", &DataType::Float64, true, path)?;
    let recorded_at = column::<TimestampMicrosecondArray>(batch, "recorded_at", &timestamp_type(), true, path)?;
    // Absent from parts written before the column existed: nothing was marked there.
    let superseded = match batch.column_by_name(SUPERSEDED) {
        Some(_) => Some(column::<BooleanArray>(batch, SUPERSEDED, &DataType::Boolean, true, path)?),
        None => None,
    };
    for i in 0..batch.num_rows() {
        f(MetricRowRef {
            sweep: sweep.value(i),
            trial_id: trial_id.value(i),
            attempt: attempt.value(i),
            epoch: epoch.value(i),
            step: step.value(i),
            metric: metric.value(i),
            value: value.value(i),
            recorded_at_us: recorded_at.value(i),
            superseded: superseded.is_some_and(|s| s.value(i)),
        });
    }
    Ok(())
}

/// A finished part of a sweep as the coordinator checks it against its store: the sequence range
/// its name declares and how many of its rows are marked superseded (`None`: written before the
/// column existed, or not counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSummary {
    pub first_seq: i64,
    pub last_seq: i64,
    pub superseded_rows: Option<usize>,
}

/// Every finished part of the sweep, in sequence order; with `count`, each with its count of
/// superseded rows (only that column is read), else only the ranges of their names.
pub fn metric_parts(sweep_dir: &Path, count: bool) -> Result<Vec<PartSummary>, ResultsError> {
    let mut out = Vec::new();
    for part in list_parts(&sweep_dir.join(METRICS_DIR))? {
        let superseded_rows = if count { count_superseded(&part.path)? } else { None };
        out.push(PartSummary { first_seq: part.first, last_seq: part.last, superseded_rows });
    }
    Ok(out)
}

fn count_superseded(path: &Path) -> Result<Option<usize>, ResultsError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ProjectionMask;
    let file = fs::File::open(path).map_err(ResultsError::io(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(ResultsError::parquet(path))?;
    let Some(index) = builder.schema().fields().iter().position(|f| f.name() == SUPERSEDED) else {
        return Ok(None);
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
    let mut count = 0;
    for batch in builder.with_projection(mask).build().map_err(ResultsError::parquet(path))? {
        let batch = batch.map_err(ResultsError::arrow(path))?;
        let marks = column::<BooleanArray>(&batch, SUPERSEDED, &DataType::Boolean, true, path)?;
        count += marks.true_count();
    }
    Ok(Some(count))
}
