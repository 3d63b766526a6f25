//! The MNIST IDX format (http://yann.lecun.com/exdb/mnist/): four files, images and labels of the
//! train and test splits, each a big-endian header (a magic number, then one u32 per dimension)
//! followed by the bytes. Reader (raw or gzipped, as the files are distributed) and writer.
//!
//! The header is outside data: the reader bounds what it declares and checks it against the file
//! before reading any data, so a forged header cannot make it allocate more than the file holds.

use super::raw::RawSet;
use super::DataError;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Side of MNIST's digits, the default `image_size` of synthetic sets; the reader takes whatever
/// side the header declares.
pub(crate) const SIDE: usize = 28;

/// The file names of one split, as LeCun distributes them (each may also end in `.gz`).
struct SplitFiles {
    images: &'static str,
    labels: &'static str,
}

const TRAIN: SplitFiles = SplitFiles { images: "train-images-idx3-ubyte", labels: "train-labels-idx1-ubyte" };
const TEST: SplitFiles = SplitFiles { images: "t10k-images-idx3-ubyte", labels: "t10k-labels-idx1-ubyte" };

/// IDX type code of unsigned bytes, the only element type MNIST uses.
const UBYTE: u8 = 0x08;
/// Most data bytes one file may declare (16 GiB, 350 times the MNIST train images): a header
/// beyond it is corrupt or forged, whatever the file's length.
const MAX_DATA_BYTES: u64 = 1 << 34;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// What an IDX file of the data set holds.
#[derive(Debug, Clone, Copy)]
enum Content {
    /// u8 [N, rows, columns]: magic 0x00000803.
    Images,
    /// u8 [N]: magic 0x00000801.
    Labels,
}

impl Content {
    fn dims(self) -> usize {
        match self {
            Content::Images => 3,
            Content::Labels => 1,
        }
    }

    fn magic(self) -> u32 {
        u32::from_be_bytes([0, 0, UBYTE, self.dims() as u8])
    }

    fn name(self) -> &'static str {
        match self {
            Content::Images => "images",
            Content::Labels => "labels",
        }
    }
}

/// Reads both splits under `path`; labels must lie in 0..classes (default: largest label + 1).
pub(crate) fn load(path: &Path, classes: Option<i64>) -> Result<(RawSet, RawSet), DataError> {
    let dir = locate(path);
    let (mut train, train_labels) = read_split(&dir, &TRAIN)?;
    let (mut test, test_labels) = read_split(&dir, &TEST)?;
    let classes = match classes {
        Some(c) => {
            for (set, file) in [(&train, &train_labels), (&test, &test_labels)] {
                if let Some(i) = set.labels.iter().position(|&l| l >= c) {
                    return Err(DataError::invalid(
                        file,
                        format!("label {} at index {i} is not below data.classes = {c}", set.labels[i]),
                    ));
                }
            }
            c
        }
        None => train.labels.iter().chain(&test.labels).max().map_or(1, |&m| m + 1),
    };
    train.classes = classes;
    test.classes = classes;
    Ok((train, test))
}

/// Writes a grey set as the four raw (uncompressed) IDX files under `dir`.
pub(crate) fn write(dir: &Path, train: &RawSet, test: &RawSet) -> Result<(), DataError> {
    check_writable(dir, train)?;
    check_writable(dir, test)?;
    super::cifar::create_dir(dir)?;
    for (set, files) in [(train, &TRAIN), (test, &TEST)] {
        let labels: Vec<u8> = set.labels.iter().map(|&l| l as u8).collect();
        let image_dims = [set.len(), set.height, set.width];
        super::cifar::write(&dir.join(files.images), &encode(Content::Images, &image_dims, &set.pixels))?;
        super::cifar::write(&dir.join(files.labels), &encode(Content::Labels, &[set.len()], &labels))?;
    }
    Ok(())
}

/// One IDX file: magic, dimensions as big-endian u32, data. `check_writable` has bounded the
/// dimensions.
fn encode(content: Content, dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    bytes.extend_from_slice(&content.magic().to_be_bytes());
    for &d in dims {
        bytes.extend_from_slice(&(d as u32).to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

fn check_writable(dir: &Path, set: &RawSet) -> Result<(), DataError> {
    if set.channels != 1 {
        return Err(DataError::invalid(
            dir,
            format!("MNIST IDX files hold grey images, got {} channels", set.channels),
        ));
    }
    if [set.len(), set.height, set.width].iter().any(|&d| u32::try_from(d).is_err()) {
        return Err(DataError::invalid(dir, "IDX dimensions are u32: the set is too large"));
    }
    if set.classes > 256 || set.labels.iter().any(|&l| !(0..set.classes).contains(&l)) {
        return Err(DataError::invalid(dir, "MNIST labels are single bytes below the class count"));
    }
    Ok(())
}

/// One split: its images with their labels, and the labels file (for messages about labels). Each
/// file is checked against its own header first, then the two against each other.
fn read_split(dir: &Path, files: &SplitFiles) -> Result<(RawSet, PathBuf), DataError> {
    let images = IdxFile::open(&find(dir, files.images)?, Content::Images)?;
    let (n, height, width) = (images.dims[0], images.dims[1], images.dims[2]);
    if n == 0 || height == 0 || width == 0 {
        return Err(DataError::invalid(
            &images.file,
            format!("the header declares {n} images of {height}x{width} pixels: expected at least one non-empty image"),
        ));
    }
    let images_file = images.file.clone();
    let pixels = images.read_data()?;
    let labels = IdxFile::open(&find(dir, files.labels)?, Content::Labels)?;
    if labels.dims[0] != n {
        return Err(DataError::invalid(
            &labels.file,
            format!(
                "the header declares {} labels but {} holds {n} images: expected one label per image",
                labels.dims[0],
                images_file.display()
            ),
        ));
    }
    let labels_file = labels.file.clone();
    let labels = labels.read_data()?.into_iter().map(i64::from).collect();
    Ok((RawSet { pixels, labels, channels: 1, height, width, classes: 0 }, labels_file))
}

/// An IDX file whose header has been read and checked, positioned at its data.
struct IdxFile {
    file: PathBuf,
    dims: Vec<usize>,
    /// Data bytes the header declares: at most `MAX_DATA_BYTES`, and for an uncompressed file
    /// exactly what follows the header on disk.
    data_bytes: u64,
    gzipped: bool,
    reader: Box<dyn Read>,
}

impl IdxFile {
    fn open(file: &Path, content: Content) -> Result<IdxFile, DataError> {
        let f = File::open(file).map_err(|e| DataError::io(file, "open the IDX file", e))?;
        let on_disk = f.metadata().map_err(|e| DataError::io(file, "read the length of", e))?.len();
        let mut buffered = BufReader::new(f);
        // Compressed or not by content, not by name: an IDX file starts with two zero bytes.
        let gzipped = buffered.fill_buf().map_err(|e| DataError::io(file, "read", e))?.starts_with(&GZIP_MAGIC);
        let mut reader: Box<dyn Read> =
            if gzipped { Box::new(MultiGzDecoder::new(buffered)) } else { Box::new(buffered) };

        let expected = content.magic();
        let mut magic = [0u8; 4];
        read_header(&mut reader, &mut magic, file)?;
        let got = u32::from_be_bytes(magic);
        if magic[..2] != [0, 0] {
            return Err(DataError::invalid(
                file,
                format!(
                    "not an IDX file: expected the magic number 0x{expected:08x} (u8 {}), got 0x{got:08x}",
                    content.name()
                ),
            ));
        }
        if magic[2] != UBYTE {
            return Err(DataError::invalid(
                file,
                format!(
                    "expected unsigned byte data (IDX type code 0x08, magic 0x{expected:08x}), got type code \
                     0x{:02x} ({})",
                    magic[2],
                    type_name(magic[2])
                ),
            ));
        }
        if magic[3] as usize != content.dims() {
            return Err(DataError::invalid(
                file,
                format!(
                    "expected {} with {} dimension(s) (magic 0x{expected:08x}), got {} dimension(s) (magic \
                     0x{got:08x}); are the images and labels files swapped?",
                    content.name(),
                    content.dims(),
                    magic[3]
                ),
            ));
        }

        let mut sizes = vec![0u8; 4 * content.dims()];
        read_header(&mut reader, &mut sizes, file)?;
        let dims: Vec<u64> =
            sizes.chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64).collect();
        let data_bytes = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).filter(|&b| b <= MAX_DATA_BYTES);
        let data_bytes = data_bytes.ok_or_else(|| {
            DataError::invalid(
                file,
                format!(
                    "the header declares {} of shape {dims:?}: more data than the 16 GiB (2^34 bytes) this \
                     reader accepts; the header is corrupt",
                    content.name()
                ),
            )
        })?;
        let header_bytes = 4 + sizes.len() as u64;
        if !gzipped && on_disk != header_bytes + data_bytes {
            return Err(wrong_length(
                file,
                &dims,
                header_bytes,
                data_bytes,
                on_disk.saturating_sub(header_bytes),
                false,
            ));
        }
        // Within MAX_DATA_BYTES, every dimension and the data length fit in a 64-bit usize.
        let to_usize =
            |v: u64| usize::try_from(v).map_err(|_| DataError::invalid(file, "the file is too large for this machine"));
        let dims = dims.into_iter().map(to_usize).collect::<Result<Vec<_>, _>>()?;
        to_usize(data_bytes)?;
        Ok(IdxFile { file: file.to_path_buf(), dims, data_bytes, gzipped, reader })
    }

    /// The data bytes. An uncompressed file's length has been checked, so its buffer is sized up
    /// front; a compressed one's grows with what actually decompresses, up to one byte more than
    /// the header declares (to tell a longer stream).
    fn read_data(mut self) -> Result<Vec<u8>, DataError> {
        let mut data = Vec::new();
        if !self.gzipped {
            data.reserve_exact(self.data_bytes as usize);
        }
        let action = if self.gzipped { "decompress" } else { "read" };
        (&mut self.reader)
            .take(self.data_bytes + 1)
            .read_to_end(&mut data)
            .map_err(|e| DataError::io(&self.file, action, e))?;
        if data.len() as u64 != self.data_bytes {
            let dims: Vec<u64> = self.dims.iter().map(|&d| d as u64).collect();
            let header_bytes = 4 + 4 * dims.len() as u64;
            return Err(wrong_length(
                &self.file,
                &dims,
                header_bytes,
                self.data_bytes,
                data.len() as u64,
                self.gzipped,
            ));
        }
        Ok(data)
    }
}

/// Reads header bytes; a file that ends inside the header is truncated.
fn read_header(reader: &mut dyn Read, buf: &mut [u8], file: &Path) -> Result<(), DataError> {
    reader.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            DataError::invalid(file, "truncated IDX header: the file ends before its magic number and dimensions")
        }
        _ => DataError::io(file, "read the IDX header of", e),
    })
}

/// The file holds `found` bytes after its header where the header declares `declared`. `found`
/// is at most `declared + 1` for a compressed file (the reader stops there).
fn wrong_length(file: &Path, dims: &[u64], header: u64, declared: u64, found: u64, gzipped: bool) -> DataError {
    let what = if gzipped { "the decompressed file" } else { "the file" };
    let message = if found < declared {
        format!(
            "truncated: the header declares shape {dims:?}, {declared} data bytes after its {header} bytes, \
             {what} has {found}"
        )
    } else {
        format!("{what} goes on after the {declared} data bytes its header declares (shape {dims:?})")
    };
    DataError::invalid(file, message)
}

fn type_name(code: u8) -> &'static str {
    match code {
        0x09 => "signed byte",
        0x0b => "short",
        0x0c => "int",
        0x0d => "float",
        0x0e => "double",
        _ => "not an IDX type",
    }
}

/// `dir/name`, or `dir/name.gz` when only that exists.
fn find(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    let raw = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    match (raw.is_file(), gz.is_file()) {
        (true, _) => Ok(raw),
        (false, true) => Ok(gz),
        (false, false) => Err(DataError::invalid(
            dir,
            format!(
                "no {name} (or {name}.gz): expected the four MNIST IDX files {}, {}, {} and {}, raw or gzipped",
                TRAIN.images, TRAIN.labels, TEST.images, TEST.labels
            ),
        )),
    }
}

/// The folder holding the files: `path` itself, or `path/MNIST/raw` (where torchvision downloads
/// them) when only that holds the train images.
fn locate(path: &Path) -> PathBuf {
    let holds = |dir: &Path| find(dir, TRAIN.images).is_ok();
    let torchvision = path.join("MNIST").join("raw");
    if !holds(path) && holds(&torchvision) {
        torchvision
    } else {
        path.to_path_buf()
    }
}

#[cfg(test)]
mod tests;
