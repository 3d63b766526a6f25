//! The one place that turns Arrow record batches into Parquet files and back: zstd writer
//! settings shared by every results file, and typed, checked column access for the readers so a
//! file with a drifted schema fails with a message instead of a panic.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, RecordBatchReader};
use arrow_schema::{DataType, Schema, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::atomic::write_atomically;
use super::ResultsError;

/// zstd level 3 is zstd's own default: results are written on every flush while a sweep runs, so
/// a fast level matters more than the last few percent of size.
const ZSTD_LEVEL: i32 = 3;

/// Timezone of every timestamp column. Stored as "UTC" so DuckDB reads `TIMESTAMP WITH TIME ZONE`
/// and pandas `datetime64[us, UTC]` without any option.
pub(crate) const UTC: &str = "UTC";

/// The Arrow type of `recorded_at`, `started_at` and `finished_at`.
pub(crate) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(UTC)))
}

/// Writes `batch` as a single zstd-compressed Parquet file at `path`, atomically. Columns whose
/// names start with `plain_prefix` are written as [`writer_properties`] says.
pub(crate) fn write_batch(path: &Path, batch: &RecordBatch, plain_prefix: Option<&str>) -> Result<(), ResultsError> {
    let props = writer_properties(path, &batch.schema(), plain_prefix)?;
    write_atomically(path, |file| {
        let mut writer =
            ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(ResultsError::parquet(path))?;
        writer.write(batch).map_err(ResultsError::parquet(path))?;
        // `into_inner` writes the footer and flushes the buffer, handing back the file to fsync.
        writer.into_inner().map_err(ResultsError::parquet(path))
    })
}

/// The writer settings of every results file: zstd, except that columns whose names start with
/// `plain_prefix` are written without a dictionary and uncompressed: each column of a writer holds
/// its own dictionary and zstd context while the file is written, and a table with a column per
/// metric name (trials.parquet's `final_*`) has thousands of columns, where that costs hundreds of
/// megabytes per write for a few kilobytes saved.
pub(crate) fn writer_properties(
    path: &Path,
    schema: &Schema,
    plain_prefix: Option<&str>,
) -> Result<WriterProperties, ResultsError> {
    let level = ZstdLevel::try_new(ZSTD_LEVEL).map_err(ResultsError::parquet(path))?;
    let mut props = WriterProperties::builder().set_compression(Compression::ZSTD(level));
    if let Some(prefix) = plain_prefix {
        for field in schema.fields().iter().filter(|f| f.name().starts_with(prefix)) {
            let column = ColumnPath::from(field.name().as_str());
            props = props
                .set_column_dictionary_enabled(column.clone(), false)
                .set_column_compression(column, Compression::UNCOMPRESSED);
        }
    }
    Ok(props.build())
}

/// Reads every record batch of the Parquet file at `path`. A file without rows yields one empty
/// batch carrying the schema, so that readers still check the columns of empty files.
pub(crate) fn read_batches(path: &Path) -> Result<Vec<RecordBatch>, ResultsError> {
    let file = File::open(path).map_err(ResultsError::io(path))?;
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build()).map_err(ResultsError::parquet(path))?;
    let schema = reader.schema();
    let batches = reader.map(|batch| batch.map_err(ResultsError::arrow(path))).collect::<Result<Vec<_>, _>>()?;
    if batches.is_empty() {
        return Ok(vec![RecordBatch::new_empty(schema)]);
    }
    Ok(batches)
}

/// The column `name` of `batch` as array type `A`, checked to have exactly `expected` type.
/// Pass `required = true` for columns the contract declares non-null.
pub(crate) fn column<'a, A: Array + 'static>(
    batch: &'a RecordBatch,
    name: &str,
    expected: &DataType,
    required: bool,
    path: &Path,
) -> Result<&'a A, ResultsError> {
    let array =
        batch.column_by_name(name).ok_or_else(|| ResultsError::schema(path, format!("missing column `{name}`")))?;
    if array.data_type() != expected {
        return Err(ResultsError::schema(
            path,
            format!("column `{name}` has type {}, expected {expected}", array.data_type()),
        ));
    }
    if required && array.null_count() > 0 {
        return Err(ResultsError::schema(path, format!("column `{name}` has nulls, expected none")));
    }
    array
        .as_any()
        .downcast_ref::<A>()
        .ok_or_else(|| ResultsError::schema(path, format!("column `{name}` is not a {expected} array")))
}

/// Reads a nullable cell as an `Option`, calling `get` only for non-null cells.
pub(crate) fn opt<A: Array, T>(array: &A, row: usize, get: impl FnOnce(&A, usize) -> T) -> Option<T> {
    (!array.is_null(row)).then(|| get(array, row))
}
