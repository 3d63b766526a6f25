//! `trials.parquet`: one row per trial, rewritten whole (atomically) whenever trial states
//! change. Owns the fixed columns, the `final_<metric>` columns, and reading the table back; the
//! typed `params_<name>` columns are inferred in `params_columns`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde_json::{Map, Value};

use super::atomic::Replacement;
use super::params_columns::{ParamColumn, ParamKinds};
use super::parquet_io::{column, opt, read_batches, timestamp_type, write_batch, writer_properties, UTC};
use super::{ResultsError, TRIALS_FILE};
use parquet::arrow::ArrowWriter;

/// Prefix of the per-metric final value columns.
const FINAL_PREFIX: &str = "final_";
/// The column that orders rows of one trial ([`TrialRow::version`]).
const VERSION: &str = "version";
/// The column of [`TrialRow::rung`].
const RUNG: &str = "rung";
/// The column of [`TrialRow::epochs_budget`].
const EPOCHS_BUDGET: &str = "epochs_budget";
/// The columns of a trial's PBT lineage.
const PARENT_TRIAL_ID: &str = "parent_trial_id";
const COPIED_EPOCH: &str = "copied_epoch";
const GENERATION: &str = "generation";

/// One trial as users see it in `trials.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRow {
    pub sweep: String,
    pub trial_id: String,
    pub workload: String,
    pub status: String,
    pub attempts: i32,
    pub agent: Option<String>,
    /// Microseconds since the Unix epoch, UTC.
    pub started_at_us: Option<i64>,
    /// Microseconds since the Unix epoch, UTC.
    pub finished_at_us: Option<i64>,
    pub duration_s: Option<f64>,
    /// The resolved configuration of the trial.
    pub params: Map<String, Value>,
    /// Value of each metric at the last epoch.
    pub finals: BTreeMap<String, f64>,
    /// Why the last attempt that failed did (its exit and the end of its stderr), as the
    /// coordinator recorded it; written escaped and cut to [`MAX_LAST_ERROR`] (see
    /// [`last_error_cell`]).
    pub last_error: Option<String>,
    /// Exit code of the trial's last attempt; None while it runs, or when it was killed by a
    /// signal, lost, or never started.
    pub exit_code: Option<i32>,
    /// How recent this row is: the sweep's trial version when the trial last changed. Of two rows
    /// of one trial (in `trials.parquet` and `trial-changes/`) the higher version is current. 0 in
    /// tables written before the column existed.
    pub version: i64,
    /// The epoch of the highest rung of its sweep's schedule it reached (`[schedule]`); None
    /// without a schedule or before its first rung.
    pub rung: Option<i32>,
    /// Under a promoting schedule, the epoch its next (or current) attempt stops after: the rung
    /// it waits at while `paused`. None without one, or once it went on past the last rung.
    pub epochs_budget: Option<i32>,
    /// A trial PBT made: the trial whose checkpoint it started from, and the epoch of that
    /// checkpoint. None for the sweep's own trials.
    pub parent_trial_id: Option<String>,
    pub copied_epoch: Option<i32>,
    /// How many PBT copies lie behind the trial: 0 for the sweep's own trials, the parent's plus
    /// one for a copy.
    pub generation: i32,
}

/// Bytes of `last_error` kept in `trials.parquet`: the end of a failure's stderr, where the
/// exception is, fits; a trial that printed megabytes before dying cannot bloat the table.
pub const MAX_LAST_ERROR: usize = 4 * 1024;

/// The `last_error` cell as written: control and bidirectional characters escaped
/// (`sweep_spec::text`, line breaks kept), then cut to its last [`MAX_LAST_ERROR`] bytes.
pub fn last_error_cell(text: &str) -> String {
    let mut cell = sweep_spec::text::escape_keeping_lines(text).into_owned();
    sweep_spec::text::keep_tail(&mut cell, MAX_LAST_ERROR);
    cell
}

/// The columns every trials table has, in order, before the `params_*` and `final_*` columns.
fn fixed_fields() -> Vec<Field> {
    vec![
        Field::new("sweep", DataType::Utf8, false),
        Field::new("trial_id", DataType::Utf8, false),
        Field::new("workload", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("attempts", DataType::Int32, false),
        Field::new("agent", DataType::Utf8, true),
        Field::new("started_at", timestamp_type(), true),
        Field::new("finished_at", timestamp_type(), true),
        Field::new("duration_s", DataType::Float64, true),
        Field::new("params", DataType::Utf8, false),
        Field::new("last_error", DataType::Utf8, true),
        Field::new("exit_code", DataType::Int32, true),
        Field::new(VERSION, DataType::Int64, false),
        Field::new(RUNG, DataType::Int32, true),
        Field::new(EPOCHS_BUDGET, DataType::Int32, true),
        Field::new(PARENT_TRIAL_ID, DataType::Utf8, true),
        Field::new(COPIED_EPOCH, DataType::Int32, true),
        Field::new(GENERATION, DataType::Int32, false),
    ]
}

/// Writes `<sweep_dir>/trials.parquet`, replacing any previous version atomically, and returns its
/// path. The `params_*` and `final_*` columns are derived from these rows alone, so the schema can
/// grow (or shrink) between rewrites; queries across sweeps should use `union_by_name`.
pub fn write_trials_table(sweep_dir: &Path, rows: &[TrialRow]) -> Result<PathBuf, ResultsError> {
    let path = sweep_dir.join(TRIALS_FILE);
    write_trials_file(&path, rows)?;
    Ok(path)
}

/// Writes `rows` with the columns of `trials.parquet` to `path`, replacing it atomically.
pub(crate) fn write_trials_file(path: &Path, rows: &[TrialRow]) -> Result<(), ResultsError> {
    let shape = TrialsTableShape::of_rows(rows);
    let (params, finals) = shape.columns();
    let schema = schema(&params, &finals);
    let batch = batch(rows, &params, &finals, schema, path)?;
    write_batch(path, &batch, Some(FINAL_PREFIX))
}

/// The columns of a trials table beyond the fixed ones: a `params_<name>` per parameter, typed
/// across every trial, and a `final_<metric>` per metric. Gathered from the rows themselves, or,
/// for a table written page by page, before any row is ([`TrialsTableWriter`]).
#[derive(Debug, Default, Clone)]
pub struct TrialsTableShape {
    params: ParamKinds,
    finals: BTreeSet<String>,
}

impl TrialsTableShape {
    fn of_rows(rows: &[TrialRow]) -> TrialsTableShape {
        let mut shape = TrialsTableShape::default();
        for row in rows {
            for (name, value) in &row.params {
                shape.param(name, value);
            }
            for metric in row.finals.keys() {
                shape.final_metric(metric);
            }
        }
        shape
    }

    /// Some trial has parameter `name` with this value; only its JSON type matters.
    pub fn param(&mut self, name: &str, value: &Value) {
        self.params.add(name, value);
    }

    /// Some trial has a final value of `metric`.
    pub fn final_metric(&mut self, metric: &str) {
        if !self.finals.contains(metric) {
            self.finals.insert(metric.to_owned());
        }
    }

    fn columns(&self) -> (Vec<ParamColumn>, Vec<String>) {
        (self.params.columns(), self.finals.iter().cloned().collect())
    }
}

/// Writes `trials.parquet` a page of rows at a time, each page a row group, so that a
/// million-trial sweep's rows need never be in memory at once. The file replaces the previous one
/// atomically at [`TrialsTableWriter::finish`]; dropped before that, it leaves the old one.
pub struct TrialsTableWriter {
    path: PathBuf,
    replacement: Replacement,
    writer: ArrowWriter<std::fs::File>,
    params: Vec<ParamColumn>,
    finals: Vec<String>,
    schema: SchemaRef,
}

impl TrialsTableWriter {
    /// Starts `<sweep_dir>/trials.parquet` with the columns of `shape`: rows must carry no
    /// parameter or final metric outside it (such a cell is written as null).
    pub fn create(sweep_dir: &Path, shape: &TrialsTableShape) -> Result<TrialsTableWriter, ResultsError> {
        let path = sweep_dir.join(TRIALS_FILE);
        let (params, finals) = shape.columns();
        let schema = schema(&params, &finals);
        let props = writer_properties(&path, &schema, Some(FINAL_PREFIX))?;
        let (replacement, file) = Replacement::begin(&path)?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(ResultsError::parquet(&path))?;
        Ok(TrialsTableWriter { path, replacement, writer, params, finals, schema })
    }

    /// Writes one page of rows as a row group.
    pub fn write(&mut self, rows: &[TrialRow]) -> Result<(), ResultsError> {
        let batch = batch(rows, &self.params, &self.finals, self.schema.clone(), &self.path)?;
        self.writer.write(&batch).map_err(ResultsError::parquet(&self.path))?;
        self.writer.flush().map_err(ResultsError::parquet(&self.path))
    }

    /// Completes the file and puts it in place of the previous table; returns its path.
    pub fn finish(self) -> Result<PathBuf, ResultsError> {
        let file = self.writer.into_inner().map_err(ResultsError::parquet(&self.path))?;
        self.replacement.commit(file)?;
        Ok(self.path)
    }
}

fn schema(params: &[ParamColumn], finals: &[String]) -> SchemaRef {
    let mut fields = fixed_fields();
    fields.extend(params.iter().map(|c| c.field()));
    fields.extend(finals.iter().map(|m| Field::new(format!("{FINAL_PREFIX}{m}"), DataType::Float64, true)));
    Arc::new(Schema::new(fields))
}

fn batch(
    rows: &[TrialRow],
    params: &[ParamColumn],
    finals: &[String],
    schema: SchemaRef,
    path: &Path,
) -> Result<RecordBatch, ResultsError> {
    let timestamps = |get: fn(&TrialRow) -> Option<i64>| -> ArrayRef {
        Arc::new(rows.iter().map(get).collect::<TimestampMicrosecondArray>().with_timezone(UTC))
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.sweep))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.trial_id))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.workload))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.status))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.attempts))),
        Arc::new(rows.iter().map(|r| r.agent.as_deref()).collect::<StringArray>()),
        timestamps(|r| r.started_at_us),
        timestamps(|r| r.finished_at_us),
        Arc::new(rows.iter().map(|r| r.duration_s).collect::<Float64Array>()),
        // A JSON object's text cannot fail to serialize: keys are strings and serde_json numbers
        // are always finite.
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| Value::Object(r.params.clone()).to_string()))),
        Arc::new(rows.iter().map(|r| r.last_error.as_deref().map(last_error_cell)).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| r.exit_code).collect::<Int32Array>()),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.version))),
        Arc::new(rows.iter().map(|r| r.rung).collect::<Int32Array>()),
        Arc::new(rows.iter().map(|r| r.epochs_budget).collect::<Int32Array>()),
        Arc::new(rows.iter().map(|r| r.parent_trial_id.as_deref()).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| r.copied_epoch).collect::<Int32Array>()),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.generation))),
    ];
    columns.extend(params.iter().map(|c| c.build(rows.iter().map(|r| &r.params))));
    columns.extend(
        finals
            .iter()
            .map(|m| -> ArrayRef { Arc::new(rows.iter().map(|r| r.finals.get(m).copied()).collect::<Float64Array>()) }),
    );
    RecordBatch::try_new(schema, columns).map_err(ResultsError::arrow(path))
}

/// The highest [`TrialRow::version`] in the sweep's `trials.parquet` (only that column is read):
/// how far the table is up to date. None when there is no table; 0 for a table written before
/// the column existed.
pub fn trials_table_version(sweep_dir: &Path) -> Result<Option<i64>, ResultsError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ProjectionMask;
    let path = sweep_dir.join(TRIALS_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ResultsError::io(&path)(e)),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(ResultsError::parquet(&path))?;
    let Some(index) = builder.schema().fields().iter().position(|f| f.name() == VERSION) else {
        return Ok(Some(0));
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
    let mut highest = 0;
    for batch in builder.with_projection(mask).build().map_err(ResultsError::parquet(&path))? {
        let batch = batch.map_err(ResultsError::arrow(&path))?;
        let versions = column::<Int64Array>(&batch, VERSION, &DataType::Int64, true, &path)?;
        highest = versions.iter().flatten().fold(highest, i64::max);
    }
    Ok(Some(highest))
}

/// Reads a trials table back into rows: the inverse of [`write_trials_table`]. Parameters come
/// from the lossless `params` JSON column (the typed `params_*` columns are ignored), finals from
/// the `final_*` columns, where null means the trial has no such metric.
pub fn read_trials_table(path: &Path) -> Result<Vec<TrialRow>, ResultsError> {
    let mut rows = Vec::new();
    for batch in read_batches(path)? {
        append_rows(&batch, path, &mut rows)?;
    }
    Ok(rows)
}

fn append_rows(batch: &RecordBatch, path: &Path, out: &mut Vec<TrialRow>) -> Result<(), ResultsError> {
    let ts = timestamp_type();
    let sweep = column::<StringArray>(batch, "sweep", &DataType::Utf8, true, path)?;
    let trial_id = column::<StringArray>(batch, "trial_id", &DataType::Utf8, true, path)?;
    let workload = column::<StringArray>(batch, "workload", &DataType::Utf8, true, path)?;
    let status = column::<StringArray>(batch, "status", &DataType::Utf8, true, path)?;
    let attempts = column::<Int32Array>(batch, "attempts", &DataType::Int32, true, path)?;
    let agent = column::<StringArray>(batch, "agent", &DataType::Utf8, false, path)?;
    let started_at = column::<TimestampMicrosecondArray>(batch, "started_at", &ts, false, path)?;
    let finished_at = column::<TimestampMicrosecondArray>(batch, "finished_at", &ts, false, path)?;
    let duration_s = column::<Float64Array>(batch, "duration_s", &DataType::Float64, false, path)?;
    let params = column::<StringArray>(batch, "params", &DataType::Utf8, true, path)?;
    // Absent from tables written before these columns existed.
    let last_error = optional_column::<StringArray>(batch, "last_error", &DataType::Utf8, path)?;
    let exit_code = optional_column::<Int32Array>(batch, "exit_code", &DataType::Int32, path)?;
    let version = optional_column::<Int64Array>(batch, VERSION, &DataType::Int64, path)?;
    let rung = optional_column::<Int32Array>(batch, RUNG, &DataType::Int32, path)?;
    let epochs_budget = optional_column::<Int32Array>(batch, EPOCHS_BUDGET, &DataType::Int32, path)?;
    let parent_trial_id = optional_column::<StringArray>(batch, PARENT_TRIAL_ID, &DataType::Utf8, path)?;
    let copied_epoch = optional_column::<Int32Array>(batch, COPIED_EPOCH, &DataType::Int32, path)?;
    let generation = optional_column::<Int32Array>(batch, GENERATION, &DataType::Int32, path)?;

    let schema = batch.schema();
    let mut finals: Vec<(&str, &Float64Array)> = Vec::new();
    for field in schema.fields() {
        if let Some(metric) = field.name().strip_prefix(FINAL_PREFIX) {
            finals.push((metric, column(batch, field.name(), &DataType::Float64, false, path)?));
        }
    }

    for i in 0..batch.num_rows() {
        let trial = trial_id.value(i);
        out.push(TrialRow {
            sweep: sweep.value(i).to_owned(),
            trial_id: trial.to_owned(),
            workload: workload.value(i).to_owned(),
            status: status.value(i).to_owned(),
            attempts: attempts.value(i),
            agent: opt(agent, i, |a, i| a.value(i).to_owned()),
            started_at_us: opt(started_at, i, |a, i| a.value(i)),
            finished_at_us: opt(finished_at, i, |a, i| a.value(i)),
            duration_s: opt(duration_s, i, |a, i| a.value(i)),
            params: parse_params(params.value(i), trial, path)?,
            finals: finals
                .iter()
                .filter(|(_, values)| !values.is_null(i))
                .map(|(metric, values)| ((*metric).to_owned(), values.value(i)))
                .collect(),
            last_error: last_error.and_then(|a| opt(a, i, |a, i| a.value(i).to_owned())),
            exit_code: exit_code.and_then(|a| opt(a, i, |a, i| a.value(i))),
            version: version.map_or(0, |a| a.value(i)),
            rung: rung.and_then(|a| opt(a, i, |a, i| a.value(i))),
            epochs_budget: epochs_budget.and_then(|a| opt(a, i, |a, i| a.value(i))),
            parent_trial_id: parent_trial_id.and_then(|a| opt(a, i, |a, i| a.value(i).to_owned())),
            copied_epoch: copied_epoch.and_then(|a| opt(a, i, |a, i| a.value(i))),
            generation: generation.map_or(0, |a| a.value(i)),
        });
    }
    Ok(())
}

fn optional_column<'a, A: Array + 'static>(
    batch: &'a RecordBatch,
    name: &str,
    expected: &DataType,
    path: &Path,
) -> Result<Option<&'a A>, ResultsError> {
    match batch.column_by_name(name) {
        Some(_) => column(batch, name, expected, false, path).map(Some),
        None => Ok(None),
    }
}

fn parse_params(text: &str, trial_id: &str, path: &Path) -> Result<Map<String, Value>, ResultsError> {
    let error =
        |message: String| ResultsError::ParamsJson { path: path.to_path_buf(), trial_id: trial_id.to_owned(), message };
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(error(format!("expected a json object, found `{other}`"))),
        Err(e) => Err(error(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Compression;
    use serde_json::json;
    use std::fs::File;

    fn trial(id: &str, params: Value, finals: &[(&str, f64)]) -> TrialRow {
        TrialRow {
            sweep: "dd".into(),
            trial_id: id.into(),
            workload: "double_descent".into(),
            status: "succeeded".into(),
            attempts: 1,
            agent: Some("gpu-node-1".into()),
            started_at_us: Some(1_700_000_000_000_000),
            finished_at_us: Some(1_700_000_060_000_000),
            duration_s: Some(60.0),
            params: params.as_object().unwrap().clone(),
            finals: finals.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            last_error: None,
            exit_code: Some(0),
            version: 7,
            rung: None,
            epochs_budget: None,
            parent_trial_id: None,
            copied_epoch: None,
            generation: 0,
        }
    }

    fn sample_rows() -> Vec<TrialRow> {
        let mut pending =
            trial("t1", json!({"width": 2, "lr": 1, "aug": false, "model": "vit", "seed": "a", "extra": [1, 2]}), &[]);
        pending.status = "pending".into();
        pending.attempts = 0;
        pending.agent = None;
        pending.started_at_us = None;
        pending.finished_at_us = None;
        pending.duration_s = None;
        pending.exit_code = None;
        let mut failed = trial("t2", json!({"width": 4}), &[("test_acc", 0.95)]);
        failed.status = "failed".into();
        failed.exit_code = Some(3);
        failed.last_error = Some("exit code 3: Traceback\nValueError: bad lr".into());
        vec![
            trial(
                "t0",
                json!({
                    "width": 1, "lr": 0.5, "aug": true, "model": "resnet", "seed": 3,
                    "optimizer": {"name": "adam", "lr": 1e-4}
                }),
                &[("test_acc", 0.9), ("train_loss", 0.01), ("class_acc/cat", 0.8)],
            ),
            pending,
            failed,
        ]
    }

    fn schema_of(path: &Path) -> Vec<(String, DataType, bool)> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
        builder.schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable())).collect()
    }

    #[test]
    fn a_table_written_in_pages_reads_back_as_one_written_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let rows = vec![
            trial("a", json!({"lr": 1, "model": "resnet"}), &[("loss", 0.5)]),
            trial("b", json!({"lr": 0.5}), &[("loss", 0.25), ("acc", 0.9)]),
            trial("c", json!({"model": "vit", "extra": [1, 2]}), &[]),
        ];
        let whole = tmp.path().join("whole");
        write_trials_table(&whole, &rows).unwrap();
        let paged = tmp.path().join("paged");
        let mut shape = TrialsTableShape::default();
        for r in &rows {
            for (name, value) in &r.params {
                shape.param(name, value);
            }
            for m in r.finals.keys() {
                shape.final_metric(m);
            }
        }
        let mut table = TrialsTableWriter::create(&paged, &shape).unwrap();
        table.write(&rows[..2]).unwrap();
        table.write(&rows[2..]).unwrap();
        table.write(&[]).unwrap();
        let path = table.finish().unwrap();
        let schema_of = |p: &Path| {
            ParquetRecordBatchReaderBuilder::try_new(File::open(p).unwrap()).unwrap().schema().as_ref().clone()
        };
        assert_eq!(schema_of(&path), schema_of(&whole.join(TRIALS_FILE)), "same columns, same types");
        assert_eq!(read_trials_table(&path).unwrap(), read_trials_table(&whole.join(TRIALS_FILE)).unwrap());
        let groups =
            ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap().metadata().num_row_groups();
        assert_eq!(groups, 2, "each page is a row group");
    }

    #[test]
    fn a_paged_table_left_unfinished_leaves_the_old_one_and_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let old = vec![trial("a", json!({"lr": 1}), &[])];
        write_trials_table(&dir, &old).unwrap();
        let mut table = TrialsTableWriter::create(&dir, &TrialsTableShape::default()).unwrap();
        table.write(&[trial("b", json!({}), &[])]).unwrap();
        drop(table);
        assert_eq!(read_trials_table(&dir.join(TRIALS_FILE)).unwrap(), old);
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from(TRIALS_FILE)]);
    }

    #[test]
    fn schema_is_fixed_columns_then_sorted_params_then_sorted_finals() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_trials_table(tmp.path(), &sample_rows()).unwrap();
        assert_eq!(path, tmp.path().join("trials.parquet"));
        let ts = DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into()));
        let col = |n: &str, t: DataType, nullable: bool| (n.to_string(), t, nullable);
        assert_eq!(
            schema_of(&path),
            vec![
                col("sweep", DataType::Utf8, false),
                col("trial_id", DataType::Utf8, false),
                col("workload", DataType::Utf8, false),
                col("status", DataType::Utf8, false),
                col("attempts", DataType::Int32, false),
                col("agent", DataType::Utf8, true),
                col("started_at", ts.clone(), true),
                col("finished_at", ts, true),
                col("duration_s", DataType::Float64, true),
                col("params", DataType::Utf8, false),
                col("last_error", DataType::Utf8, true),
                col("exit_code", DataType::Int32, true),
                col("version", DataType::Int64, false),
                col("rung", DataType::Int32, true),
                col("epochs_budget", DataType::Int32, true),
                col("parent_trial_id", DataType::Utf8, true),
                col("copied_epoch", DataType::Int32, true),
                col("generation", DataType::Int32, false),
                col("params_aug", DataType::Boolean, true),
                col("params_extra", DataType::Utf8, true),
                col("params_lr", DataType::Float64, true),
                col("params_model", DataType::Utf8, true),
                col("params_optimizer", DataType::Utf8, true),
                col("params_seed", DataType::Utf8, true),
                col("params_width", DataType::Int64, true),
                col("final_class_acc/cat", DataType::Float64, true),
                col("final_test_acc", DataType::Float64, true),
                col("final_train_loss", DataType::Float64, true),
            ]
        );
    }

    #[test]
    fn typed_param_cells_hold_the_inferred_values() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_trials_table(tmp.path(), &sample_rows()).unwrap();
        let batch = &read_batches(&path).unwrap()[0];
        let strings = |name: &str| {
            let a = batch.column_by_name(name).unwrap();
            let a = a.as_any().downcast_ref::<StringArray>().unwrap();
            (0..a.len()).map(|i| opt(a, i, |a, i| a.value(i).to_owned())).collect::<Vec<_>>()
        };
        assert_eq!(strings("params_seed"), vec![Some("3".into()), Some("\"a\"".into()), None]);
        assert_eq!(strings("params_model"), vec![Some("resnet".into()), Some("vit".into()), None]);
        let lr = batch.column_by_name("params_lr").unwrap();
        let lr = lr.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!((lr.value(0), lr.value(1), lr.is_null(2)), (0.5, 1.0, true));
    }

    #[test]
    fn round_trip_keeps_params_and_missing_finals() {
        let tmp = tempfile::tempdir().unwrap();
        let rows = sample_rows();
        let path = write_trials_table(tmp.path(), &rows).unwrap();
        let back = read_trials_table(&path).unwrap();
        assert_eq!(back, rows);
        assert!(back[1].finals.is_empty());
        assert_eq!(back[0].params["optimizer"], json!({"name": "adam", "lr": 1e-4}));
        assert_eq!(back[0].params["width"], json!(1));
        assert_eq!(back[0].params["lr"], json!(0.5));
        assert_eq!(back[0].params["aug"], json!(true));
    }

    /// A failure's stderr is evidence, but a cell is read in terminals and notebooks: escape codes
    /// are written out visibly and only the end of a long tail is kept.
    #[test]
    fn last_error_is_escaped_and_bounded_to_its_end() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rows = sample_rows();
        let noise = "x".repeat(3 * MAX_LAST_ERROR);
        rows[0].last_error = Some(format!("exit code 1: {noise}\n\u{1b}[2Jcleared\nRuntimeError: the end\u{202e}"));
        let path = write_trials_table(tmp.path(), &rows).unwrap();
        let back = read_trials_table(&path).unwrap();
        let cell = back[0].last_error.as_deref().unwrap();
        assert!(cell.len() <= MAX_LAST_ERROR, "{}", cell.len());
        assert!(cell.starts_with('…'), "cut at the start: {}", &cell[..16]);
        assert!(cell.ends_with("\\u{1b}[2Jcleared\nRuntimeError: the end\\u{202e}"), "{}", &cell[cell.len() - 60..]);
        assert!(!cell.contains('\u{1b}') && !cell.contains('\u{202e}'));
        assert_eq!(back[2].last_error.as_deref(), Some("exit code 3: Traceback\nValueError: bad lr"));
        assert_eq!((back[0].exit_code, back[1].exit_code, back[2].exit_code), (Some(0), None, Some(3)));
    }

    #[test]
    fn rewrite_replaces_atomically_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let rows = sample_rows();
        write_trials_table(tmp.path(), &rows).unwrap();
        let path = write_trials_table(tmp.path(), &rows[..1]).unwrap();
        assert_eq!(read_trials_table(&path).unwrap(), rows[..1].to_vec());
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec!["trials.parquet"]);
    }

    #[test]
    fn empty_table_has_only_fixed_columns() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_trials_table(tmp.path(), &[]).unwrap();
        assert_eq!(schema_of(&path).len(), fixed_fields().len());
        assert_eq!(read_trials_table(&path).unwrap(), vec![]);
    }

    /// Every column is zstd-compressed but the `final_*` ones, one per metric name: those are plain
    /// and uncompressed, so that a table with thousands of them costs no writer state per column.
    #[test]
    fn columns_are_zstd_compressed_but_the_final_values() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_trials_table(tmp.path(), &sample_rows()).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        let mut finals = 0;
        for rg in builder.metadata().row_groups() {
            for col in rg.columns() {
                let name = col.column_path().string();
                if name.starts_with(FINAL_PREFIX) {
                    finals += 1;
                    assert_eq!(col.compression(), Compression::UNCOMPRESSED, "{name}");
                    assert!(col.dictionary_page_offset().is_none(), "{name} has no dictionary");
                } else {
                    assert!(matches!(col.compression(), Compression::ZSTD(_)), "{name}");
                }
            }
        }
        assert!(finals > 0, "the sample has final values");
    }

    #[test]
    fn missing_column_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        // A metrics part is a valid Parquet file without the trials columns.
        let part = super::super::write_metrics_part(tmp.path(), 0, 0, &[]).unwrap();
        let err = read_trials_table(&part).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("part-0000000000000000-0000000000000000.parquet"), "{text}");
        assert!(text.contains("missing column `workload`"), "{text}");
    }
}
