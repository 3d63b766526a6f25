//! The Extreme Classification Repository's BoW text format, read and written: a header
//! `N_points N_features N_labels`, then one point per line, `l1,l2,... f:v f:v ...`, 0-based indices.
//! A point may have no labels (the line then starts with a feature or a space) and no features.

use crate::sparse::Csr;
use std::fmt;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Points with their features (rows of `x`) and label sets (rows of `y`, values 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub x: Csr,
    pub y: Csr,
}

impl Dataset {
    pub fn points(&self) -> usize {
        self.x.rows()
    }
    pub fn features(&self) -> usize {
        self.x.n_cols
    }
    pub fn labels(&self) -> usize {
        self.y.n_cols
    }
}

/// A file that is not in the format, located by 1-based line and column.
#[derive(Debug, thiserror::Error)]
pub struct FormatError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: line {}, column {}: {}", self.path.display(), self.line, self.column, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Format(#[from] FormatError),
}

/// Reads an XC BoW file. Each row's features are sorted by index, duplicates summed.
pub fn read(path: &Path) -> Result<Dataset, ReadError> {
    let io = |source| ReadError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = String::new();
    let err =
        |line: usize, column: usize, message: String| FormatError { path: path.to_path_buf(), line, column, message };

    reader.read_line(&mut line).map_err(io)?;
    let header: Vec<&str> = line.split_whitespace().collect();
    let parsed: Vec<Option<usize>> = header.iter().map(|t| t.parse().ok()).collect();
    let (n_points, n_features, n_labels) = match parsed.as_slice() {
        [Some(a), Some(b), Some(c)] => (*a, *b, *c),
        _ => {
            return Err(err(
                1,
                1,
                format!("expected the header `N_points N_features N_labels`, got {:?}", line.trim_end()),
            )
            .into())
        }
    };
    let mut x = Csr::empty(n_features);
    let mut y = Csr::empty(n_labels);
    let mut feats: Vec<(u32, f32)> = Vec::new();
    let mut labels: Vec<u32> = Vec::new();
    for point in 0..n_points {
        let line_no = point + 2;
        line.clear();
        if reader.read_line(&mut line).map_err(io)? == 0 {
            return Err(
                err(line_no, 1, format!("the header promises {n_points} points, the file ends after {point}")).into()
            );
        }
        parse_line(line.trim_end_matches(['\n', '\r']), n_features, n_labels, &mut labels, &mut feats)
            .map_err(|(column, message)| err(line_no, column, message))?;
        feats.sort_unstable_by_key(|&(j, _)| j);
        let mut idx: Vec<u32> = Vec::with_capacity(feats.len());
        let mut val: Vec<f32> = Vec::with_capacity(feats.len());
        for &(j, v) in &feats {
            if idx.last() == Some(&j) {
                *val.last_mut().unwrap() += v;
            } else {
                idx.push(j);
                val.push(v);
            }
        }
        x.push_row(&idx, &val);
        labels.sort_unstable();
        labels.dedup();
        y.push_row(&labels, &vec![1.0; labels.len()]);
    }
    line.clear();
    while reader.read_line(&mut line).map_err(io)? > 0 {
        if !line.trim().is_empty() {
            return Err(
                err(n_points + 2, 1, format!("the header promises {n_points} points, but more lines follow")).into()
            );
        }
        line.clear();
    }
    Ok(Dataset { x, y })
}

/// Parses one point; on failure returns the 1-based column and what was expected there.
fn parse_line(
    line: &str,
    n_features: usize,
    n_labels: usize,
    labels: &mut Vec<u32>,
    feats: &mut Vec<(u32, f32)>,
) -> Result<(), (usize, String)> {
    labels.clear();
    feats.clear();
    let mut tokens = tokens(line).peekable();
    if let Some(&(start, first)) = tokens.peek() {
        if start == 0 && !first.contains(':') {
            tokens.next();
            let mut col = 0;
            for part in first.split(',') {
                let l: usize = part.parse().map_err(|_| (col + 1, format!("expected a label index, got {part:?}")))?;
                if l >= n_labels {
                    return Err((col + 1, format!("label {l} is out of range: the header declares {n_labels} labels")));
                }
                labels.push(l as u32);
                col += part.len() + 1;
            }
        }
    }
    for (start, token) in tokens {
        let Some((f, v)) = token.split_once(':') else {
            return Err((start + 1, format!("expected `feature:value`, got {token:?}")));
        };
        let j: usize = f.parse().map_err(|_| (start + 1, format!("expected a feature index, got {f:?}")))?;
        if j >= n_features {
            return Err((start + 1, format!("feature {j} is out of range: the header declares {n_features} features")));
        }
        let value: f32 = v.parse().map_err(|_| (start + f.len() + 2, format!("expected a number, got {v:?}")))?;
        if !value.is_finite() {
            return Err((start + f.len() + 2, format!("expected a finite number, got {v:?}")));
        }
        feats.push((j as u32, value));
    }
    Ok(())
}

/// Whitespace-separated tokens with their 0-based byte offsets.
fn tokens(line: &str) -> impl Iterator<Item = (usize, &str)> {
    let bytes = line.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if at == bytes.len() {
            return None;
        }
        let start = at;
        while at < bytes.len() && !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        Some((start, &line[start..at]))
    })
}

/// Writes `data` in the XC BoW format. Values print in Rust's shortest round-trip form, so
/// `read(write(d)) == d`.
pub fn write(path: &Path, data: &Dataset) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "{} {} {}", data.points(), data.features(), data.labels())?;
    for i in 0..data.points() {
        let labels = data.y.row_indices(i);
        for (k, l) in labels.iter().enumerate() {
            if k > 0 {
                out.write_all(b",")?;
            }
            write!(out, "{l}")?;
        }
        let (idx, val) = data.x.row(i);
        for (j, v) in idx.iter().zip(val) {
            write!(out, " {j}:{v}")?;
        }
        out.write_all(b"\n")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> Result<Dataset, ReadError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.txt");
        std::fs::write(&path, text).unwrap();
        read(&path)
    }

    fn format_error(text: &str) -> (usize, usize, String) {
        match read_text(text) {
            Err(ReadError::Format(e)) => (e.line, e.column, e.message),
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn reads_points_including_unlabelled_ones() {
        let d = read_text("4 5 3\n0,2 1:0.5 3:1.5\n 4:2\n1 0:1\n2\n").unwrap();
        assert_eq!((d.points(), d.features(), d.labels()), (4, 5, 3));
        assert_eq!(d.y.row_indices(0), &[0, 2]);
        assert_eq!(d.x.row(0), (&[1u32, 3][..], &[0.5f32, 1.5][..]));
        assert!(d.y.row_indices(1).is_empty());
        assert_eq!(d.x.row(1), (&[4u32][..], &[2.0f32][..]));
        assert_eq!(d.y.row_indices(2), &[1]);
        assert_eq!(d.y.row_indices(3), &[2]);
        assert_eq!(d.x.row(3).0.len(), 0);
        // A line that opens with a feature has no labels either.
        let d = read_text("1 5 3\n2:1 0:3\n").unwrap();
        assert!(d.y.row_indices(0).is_empty());
        assert_eq!(d.x.row(0), (&[0u32, 2][..], &[3.0f32, 1.0][..]));
    }

    #[test]
    fn errors_name_line_and_column() {
        assert_eq!(format_error("2 5 3\n0 1:0.5\n1 2:x\n"), (3, 5, "expected a number, got \"x\"".into()));
        let (line, col, msg) = format_error("1 5 3\n0,7 1:1\n");
        assert_eq!((line, col), (2, 3));
        assert!(msg.contains("label 7 is out of range"), "{msg}");
        let (line, col, msg) = format_error("1 5 3\n0 1:1 9:1\n");
        assert_eq!((line, col), (2, 7));
        assert!(msg.contains("feature 9"), "{msg}");
        assert_eq!(format_error("1 5 3\n0 11\n").1, 3);
        assert_eq!(format_error("2 5 3\n0 1:1\n").0, 3);
        assert_eq!(format_error("5 3\n").0, 1);
        assert_eq!(format_error("1 5 3\n0 1:1\n1 1:1\n").0, 3);
    }

    #[test]
    fn write_then_read_round_trips() {
        let mut x = Csr::empty(6);
        x.push_row(&[0, 5], &[0.125, 0.3333]);
        x.push_row(&[2], &[1e-7]);
        x.push_row(&[], &[]);
        let mut y = Csr::empty(4);
        y.push_row(&[1, 3], &[1.0, 1.0]);
        y.push_row(&[], &[]);
        y.push_row(&[0], &[1.0]);
        let d = Dataset { x, y };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.txt");
        write(&path, &d).unwrap();
        assert_eq!(read(&path).unwrap(), d);
    }
}
