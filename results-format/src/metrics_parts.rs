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

use super::atomic::{ensure_dir, is_temp_name, refuse_link};
use super::parquet_io::{column, read_batches, timestamp_type, write_batch, UTC};
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
    Ok(list_parts(&dir)?.iter().map(|p| p.last_seq).max())
}

/// All rows of all finished parts, in file-name order (which is sequence order). Temporary files
/// of a write in progress are skipped, so this is safe to call while the sweep runs.
pub fn read_metrics(sweep_dir: &Path) -> Result<Vec<MetricRow>, ResultsError> {
    let mut rows = Vec::new();
    for part in list_parts(&sweep_dir.join(METRICS_DIR))? {
        for batch in read_batches(&part.path)? {
            append_rows(&batch, &part.path, &mut rows)?;
        }
    }
    Ok(rows)
}

fn append_rows(batch: &RecordBatch, path: &Path, out: &mut Vec<MetricRow>) -> Result<(), ResultsError> {
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
    out.extend((0..batch.num_rows()).map(|i| MetricRow {
        sweep: sweep.value(i).to_owned(),
        trial_id: trial_id.value(i).to_owned(),
        attempt: attempt.value(i),
        epoch: epoch.value(i),
        step: step.value(i),
        metric: metric.value(i).to_owned(),
        value: value.value(i),
        recorded_at_us: recorded_at.value(i),
        superseded: superseded.is_some_and(|s| s.value(i)),
    }));
    Ok(())
}

/// Zero-padded so that for all realistic sequence numbers (< 10^16) name order is sequence order,
/// which is what `ls` and DuckDB's glob show users.
fn part_name(first_seq: i64, last_seq: i64) -> String {
    format!("part-{first_seq:016}-{last_seq:016}.parquet")
}

/// A finished part file and the sequence range its name declares.
struct Part {
    first_seq: i64,
    last_seq: i64,
    path: PathBuf,
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
        out.push(PartSummary { first_seq: part.first_seq, last_seq: part.last_seq, superseded_rows });
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

/// Finished parts of `dir`, sorted by sequence range (numerically, so order stays right even past
/// the 16-digit padding). A missing folder means nothing was written yet. Files that are not
/// `part-*.parquet` are ignored, but a `part-*.parquet` whose name does not parse is an error:
/// guessing its range could silently skip or repeat rows on resume.
fn list_parts(dir: &Path) -> Result<Vec<Part>, ResultsError> {
    let mut parts = Vec::new();
    for name in file_names(dir)? {
        if is_temp_name(&name) || !(name.starts_with("part-") && name.ends_with(".parquet")) {
            continue;
        }
        let path = dir.join(&name);
        let (first_seq, last_seq) =
            parse_part_name(&name).ok_or_else(|| ResultsError::PartName { path: path.clone() })?;
        parts.push(Part { first_seq, last_seq, path });
    }
    parts.sort_by_key(|p| (p.first_seq, p.last_seq));
    Ok(parts)
}

fn parse_part_name(name: &str) -> Option<(i64, i64)> {
    let range = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (first, last) = range.split_once('-')?;
    let parse = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (first, last) = (parse(first)?, parse(last)?);
    (first <= last).then_some((first, last))
}

fn remove_stale_temporaries(dir: &Path) -> Result<(), ResultsError> {
    for name in file_names(dir)? {
        if is_temp_name(&name) {
            let path = dir.join(&name);
            fs::remove_file(&path).map_err(ResultsError::io(&path))?;
        }
    }
    Ok(())
}

/// Names of the regular files in `dir`; empty if `dir` does not exist yet.
fn file_names(dir: &Path) -> Result<Vec<String>, ResultsError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ResultsError::io(dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(ResultsError::io(dir))?;
        let is_file = entry.file_type().map_err(ResultsError::io(&entry.path()))?.is_file();
        // Non-UTF-8 names cannot be ours; skipping them is safer than failing the whole sweep.
        if let (true, Ok(name)) = (is_file, entry.file_name().into_string()) {
            names.push(name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Compression;
    use std::fs::File;

    fn row(trial: &str, epoch: i32, metric: &str, value: f64) -> MetricRow {
        MetricRow {
            sweep: "dd".into(),
            trial_id: trial.into(),
            attempt: 1,
            epoch,
            step: i64::from(epoch) * 390,
            metric: metric.into(),
            value,
            recorded_at_us: 1_700_000_000_000_000 + i64::from(epoch),
            superseded: false,
        }
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names = file_names(dir).unwrap();
        names.sort();
        names
    }

    #[test]
    fn schema_names_types_and_nullability_are_the_contract() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_metrics_part(tmp.path(), 0, 0, &[row("t0", 0, "train_loss", 2.3)]).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        let schema = builder.schema();
        let got: Vec<(String, DataType, bool)> =
            schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable())).collect();
        let ts = DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into()));
        let want = vec![
            ("sweep".to_string(), DataType::Utf8, false),
            ("trial_id".into(), DataType::Utf8, false),
            ("attempt".into(), DataType::Int32, false),
            ("epoch".into(), DataType::Int32, false),
            ("step".into(), DataType::Int64, false),
            ("metric".into(), DataType::Utf8, false),
            ("value".into(), DataType::Float64, false),
            ("recorded_at".into(), ts, false),
            ("superseded".into(), DataType::Boolean, false),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn every_column_chunk_is_zstd_compressed() {
        let tmp = tempfile::tempdir().unwrap();
        let rows: Vec<_> = (0..100).map(|e| row("t0", e, "test_acc", 0.5)).collect();
        let path = write_metrics_part(tmp.path(), 0, 99, &rows).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        let meta = builder.metadata();
        assert!(meta.num_row_groups() > 0);
        for rg in meta.row_groups() {
            assert_eq!(rg.columns().len(), 9);
            for col in rg.columns() {
                assert!(
                    matches!(col.compression(), Compression::ZSTD(_)),
                    "{} is {:?}",
                    col.column_path(),
                    col.compression()
                );
            }
        }
    }

    #[test]
    fn parts_round_trip_in_sequence_order() {
        let tmp = tempfile::tempdir().unwrap();
        let a = vec![row("t0", 0, "train_loss", 2.3), row("t0", 0, "test_acc", 0.1)];
        let b = vec![row("t1", 0, "train_loss", 2.2)];
        let c = vec![row("t0", 1, "train_loss", 1.9), row("t1", 1, "train_loss", 1.8)];
        // Written out of order on purpose: reading must follow the sequence numbers.
        write_metrics_part(tmp.path(), 3, 4, &c).unwrap();
        let first = write_metrics_part(tmp.path(), 0, 1, &a).unwrap();
        write_metrics_part(tmp.path(), 2, 2, &b).unwrap();
        assert_eq!(first, tmp.path().join("metrics/part-0000000000000000-0000000000000001.parquet"));
        let all: Vec<_> = a.into_iter().chain(b).chain(c).collect();
        assert_eq!(read_metrics(tmp.path()).unwrap(), all);
    }

    /// Rewriting a part's exact range replaces it: rows a retry re-reported become marked, and the
    /// summaries say how many rows of each part are marked.
    #[test]
    fn rewriting_a_part_marks_superseded_rows() {
        let tmp = tempfile::tempdir().unwrap();
        let first = vec![row("t0", 0, "loss", 2.0), row("t0", 1, "loss", 1.0), row("t1", 0, "loss", 3.0)];
        write_metrics_part(tmp.path(), 1, 3, &first).unwrap();
        let mut retry = row("t0", 1, "loss", 0.5);
        retry.attempt = 2;
        write_metrics_part(tmp.path(), 4, 4, &[retry.clone()]).unwrap();
        let mut marked = first.clone();
        marked[1].superseded = true;
        write_metrics_part(tmp.path(), 1, 3, &marked).unwrap();
        assert_eq!(read_metrics(tmp.path()).unwrap(), [marked, vec![retry]].concat());
        let summaries = metric_parts(tmp.path(), true).unwrap();
        let counts: Vec<_> = summaries.iter().map(|p| (p.first_seq, p.last_seq, p.superseded_rows)).collect();
        assert_eq!(counts, vec![(1, 3, Some(1)), (4, 4, Some(0))]);
        assert_eq!(names_in(&tmp.path().join(METRICS_DIR)).len(), 2, "replaced, not added");
    }

    /// Parts written before the `superseded` column existed still read, as unmarked rows.
    #[test]
    fn parts_without_the_superseded_column_read_as_unmarked() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_metrics_part(tmp.path(), 0, 1, &[row("t0", 0, "m", 1.0), row("t0", 1, "m", 2.0)]).unwrap();
        let batch = read_batches(&path).unwrap().remove(0);
        let old = batch.project(&(0..8).collect::<Vec<_>>()).unwrap();
        write_batch(&path, &old, None).unwrap();
        assert!(read_metrics(tmp.path()).unwrap().iter().all(|r| !r.superseded));
        assert_eq!(metric_parts(tmp.path(), true).unwrap()[0].superseded_rows, None);
    }

    #[test]
    fn missing_folder_means_nothing_written() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(last_written_seq(tmp.path()).unwrap(), None);
        assert_eq!(read_metrics(tmp.path()).unwrap(), vec![]);
    }

    #[test]
    fn last_written_seq_after_several_parts_ignores_and_removes_temporaries() {
        let tmp = tempfile::tempdir().unwrap();
        write_metrics_part(tmp.path(), 0, 9, &[row("t0", 0, "m", 1.0)]).unwrap();
        write_metrics_part(tmp.path(), 10, 41, &[row("t0", 1, "m", 1.0)]).unwrap();
        write_metrics_part(tmp.path(), 42, 42, &[row("t0", 2, "m", 1.0)]).unwrap();
        let dir = tmp.path().join(METRICS_DIR);
        // A crash mid-write leaves a temporary whose name claims a higher range than any part.
        fs::write(dir.join(format!(".{}.0123456789abcdef.tmp", part_name(43, 99))), b"torn").unwrap();
        fs::write(dir.join(".part-0000000000000100-0000000000000200.parquet.1.tmp"), b"x").unwrap();
        assert_eq!(read_metrics(tmp.path()).unwrap().len(), 3);
        assert_eq!(last_written_seq(tmp.path()).unwrap(), Some(42));
        assert_eq!(names_in(&dir), vec![part_name(0, 9), part_name(10, 41), part_name(42, 42)]);
    }

    #[test]
    fn a_write_leaves_no_temporary_behind() {
        let tmp = tempfile::tempdir().unwrap();
        write_metrics_part(tmp.path(), 5, 6, &[row("t0", 0, "m", 1.0)]).unwrap();
        assert_eq!(names_in(&tmp.path().join(METRICS_DIR)), vec![part_name(5, 6)]);
    }

    #[test]
    fn empty_part_is_valid_and_advances_the_resume_point() {
        let tmp = tempfile::tempdir().unwrap();
        write_metrics_part(tmp.path(), 0, 3, &[]).unwrap();
        assert_eq!(last_written_seq(tmp.path()).unwrap(), Some(3));
        assert_eq!(read_metrics(tmp.path()).unwrap(), vec![]);
    }

    #[test]
    fn invalid_ranges_are_rejected_before_touching_disk() {
        let tmp = tempfile::tempdir().unwrap();
        for (first, last) in [(5, 4), (-1, 3)] {
            let err = write_metrics_part(tmp.path(), first, last, &[]).unwrap_err();
            assert!(matches!(err, ResultsError::SeqRange { .. }), "{err}");
        }
        assert!(!tmp.path().join(METRICS_DIR).exists());
    }

    #[test]
    fn unparseable_part_name_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        write_metrics_part(tmp.path(), 0, 0, &[row("t0", 0, "m", 1.0)]).unwrap();
        let dir = tmp.path().join(METRICS_DIR);
        fs::write(dir.join("notes.txt"), b"ignored").unwrap();
        fs::write(dir.join("part-copy.parquet"), b"x").unwrap();
        let err = last_written_seq(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("part-copy.parquet"), "{err}");
    }

    #[test]
    fn part_names_parse_strictly() {
        assert_eq!(parse_part_name(&part_name(12, 345)), Some((12, 345)));
        assert_eq!(parse_part_name("part-12-345.parquet"), Some((12, 345)));
        assert_eq!(parse_part_name("part-+1-2.parquet"), None);
        assert_eq!(parse_part_name("part-3-2.parquet"), None);
        assert_eq!(parse_part_name("part-1.parquet"), None);
        assert_eq!(parse_part_name("part-1-2.parquet.tmp"), None);
    }

    #[test]
    fn a_linked_sweep_or_metrics_folder_is_refused_and_its_target_untouched() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let stranger = elsewhere.join(".someone.else.tmp");
        fs::write(&stranger, b"theirs").unwrap();

        let linked_sweep = tmp.path().join("linked-sweep");
        symlink(&elsewhere, &linked_sweep).unwrap();
        let err = write_metrics_part(&linked_sweep, 0, 0, &[row("t0", 0, "m", 1.0)]).unwrap_err();
        assert!(err.to_string().contains(&linked_sweep.display().to_string()), "{err}");
        assert!(last_written_seq(&linked_sweep).is_err());

        let sweep = tmp.path().join("sweep");
        fs::create_dir(&sweep).unwrap();
        symlink(&elsewhere, sweep.join(METRICS_DIR)).unwrap();
        let err = write_metrics_part(&sweep, 0, 0, &[row("t0", 0, "m", 1.0)]).unwrap_err();
        assert!(err.to_string().contains(&sweep.join(METRICS_DIR).display().to_string()), "{err}");
        let err = last_written_seq(&sweep).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");

        assert_eq!(names_in(&elsewhere), vec![".someone.else.tmp"]);
        assert_eq!(fs::read(&stranger).unwrap(), b"theirs");
    }
}
