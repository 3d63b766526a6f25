//! NumPy `.npy` arrays (format versions 1-3, https://numpy.org/neps/nep-0001-npy-format.html): a
//! minimal reader and writer of the C-ordered integer arrays image sets are stored as, and the
//! `npy` data set layout `{x_train, y_train, x_test, y_test}.npy` (x u8 [N,H,W,C] or [N,H,W]).

use super::raw::RawSet;
use super::DataError;
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// What the header dict of an array says.
#[derive(Debug, PartialEq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Reads the four arrays under `dir`; labels must lie in 0..classes (default: largest label + 1).
pub(crate) fn load(dir: &Path, classes: Option<i64>) -> Result<(RawSet, RawSet), DataError> {
    let mut train = read_split(dir, "train")?;
    let mut test = read_split(dir, "test")?;
    let classes = match classes {
        Some(c) => {
            for (set, split) in [(&train, "train"), (&test, "test")] {
                if let Some(i) = set.labels.iter().position(|&l| l >= c) {
                    return Err(DataError::invalid(
                        &dir.join(format!("y_{split}.npy")),
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

fn read_split(dir: &Path, split: &str) -> Result<RawSet, DataError> {
    let x_file = dir.join(format!("x_{split}.npy"));
    let y_file = dir.join(format!("y_{split}.npy"));
    let (shape, hwc) = read_u8(&x_file)?;
    let (n, height, width, channels) = match shape[..] {
        [n, h, w] => (n, h, w, 1),
        [n, h, w, c] => (n, h, w, c),
        _ => {
            return Err(DataError::invalid(
                &x_file,
                format!("expected images of shape [N, H, W, C] or [N, H, W], got {shape:?}"),
            ))
        }
    };
    let (y_shape, labels) = read_ints(&y_file)?;
    if y_shape != [n] {
        return Err(DataError::invalid(
            &y_file,
            format!("expected labels of shape [{n}] (one per image of x_{split}.npy), got {y_shape:?}"),
        ));
    }
    if let Some(i) = labels.iter().position(|&l| l < 0) {
        return Err(DataError::invalid(
            &y_file,
            format!("label {} at index {i} is negative: expected class indices >= 0", labels[i]),
        ));
    }
    // HWC (numpy's image order) to the CHW planes every other part of the crate uses.
    let plane = height * width;
    let mut pixels = vec![0u8; hwc.len()];
    for (dst, src) in
        pixels.chunks_exact_mut((plane * channels).max(1)).zip(hwc.chunks_exact((plane * channels).max(1)))
    {
        for p in 0..plane {
            for c in 0..channels {
                dst[c * plane + p] = src[p * channels + c];
            }
        }
    }
    Ok(RawSet { pixels, labels, channels, height, width, classes: 0 })
}

/// Writes a set as `x_<split>.npy` (u8 [N,H,W,C]) and `y_<split>.npy` (int64 [N]).
pub(crate) fn write_split(dir: &Path, split: &str, set: &RawSet) -> Result<(), DataError> {
    let (plane, channels) = (set.height * set.width, set.channels);
    let mut hwc = vec![0u8; set.pixels.len()];
    for (dst, src) in
        hwc.chunks_exact_mut(set.image_bytes().max(1)).zip(set.pixels.chunks_exact(set.image_bytes().max(1)))
    {
        for p in 0..plane {
            for c in 0..channels {
                dst[p * channels + c] = src[c * plane + p];
            }
        }
    }
    let shape = [set.len(), set.height, set.width, channels];
    write_array(&dir.join(format!("x_{split}.npy")), "|u1", &shape, &hwc)?;
    let labels: Vec<u8> = set.labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    write_array(&dir.join(format!("y_{split}.npy")), "<i8", &[set.len()], &labels)
}

/// Writes one C-ordered array in format version 1 (version 2 when the header outgrows 64 KiB),
/// its header padded so the data starts on a 64-byte boundary, as numpy does.
pub(crate) fn write_array(file: &Path, descr: &str, shape: &[usize], data: &[u8]) -> Result<(), DataError> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    let v1 = header.len() + 11 < 65536;
    let prefix = if v1 { 10 } else { 12 };
    let total = (prefix + header.len() + 1).div_ceil(64) * 64;
    header.push_str(&" ".repeat(total - prefix - header.len() - 1));
    header.push('\n');
    let mut bytes = Vec::with_capacity(total + data.len());
    bytes.extend_from_slice(MAGIC);
    if v1 {
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        bytes.extend_from_slice(&[2, 0]);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    super::cifar::write(file, &bytes)
}

/// A u8 array: its shape and C-ordered elements.
fn read_u8(file: &Path) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let (header, data) = read_array(file)?;
    if !matches!(header.descr.as_str(), "|u1" | "<u1" | ">u1" | "=u1") {
        return Err(DataError::invalid(
            file,
            format!("expected uint8 pixels (descr '|u1'), got descr '{}'", header.descr),
        ));
    }
    check_len(file, &header, 1, data.len())?;
    Ok((header.shape, data))
}

/// An integer array of any width and byte order, widened to i64.
fn read_ints(file: &Path) -> Result<(Vec<usize>, Vec<i64>), DataError> {
    let (header, data) = read_array(file)?;
    let d = header.descr.as_bytes();
    let (order, kind, width) = match d {
        [o @ (b'<' | b'>' | b'|' | b'='), k @ (b'i' | b'u'), w] => (*o, *k, (*w as char).to_digit(10)),
        _ => (b'?', b'?', None),
    };
    let width = match width {
        Some(w @ (1 | 2 | 4 | 8)) => w as usize,
        _ => {
            return Err(DataError::invalid(
                file,
                format!("expected integer labels (descr such as '<i8', '<i4' or '|u1'), got descr '{}'", header.descr),
            ))
        }
    };
    check_len(file, &header, width, data.len())?;
    let big = order == b'>';
    let mut values = Vec::with_capacity(data.len() / width);
    for (i, chunk) in data.chunks_exact(width).enumerate() {
        let mut buf = [0u8; 8];
        if big {
            buf[8 - width..].copy_from_slice(chunk);
            buf.reverse();
        } else {
            buf[..width].copy_from_slice(chunk);
        }
        let unsigned = u64::from_le_bytes(buf);
        let value = if kind == b'i' {
            // Sign-extend from `width` bytes.
            let shift = 64 - 8 * width as u32;
            ((unsigned << shift) as i64) >> shift
        } else {
            i64::try_from(unsigned)
                .map_err(|_| DataError::invalid(file, format!("label at index {i} does not fit in int64")))?
        };
        values.push(value);
    }
    Ok((header.shape, values))
}

fn check_len(file: &Path, header: &Header, item: usize, found: usize) -> Result<(), DataError> {
    let expected = header.shape.iter().product::<usize>() * item;
    if expected != found {
        return Err(DataError::invalid(
            file,
            format!("expected {expected} data bytes for shape {:?} of '{}', found {found}", header.shape, header.descr),
        ));
    }
    Ok(())
}

/// The header and the data bytes of an array file.
fn read_array(file: &Path) -> Result<(Header, Vec<u8>), DataError> {
    let mut bytes = std::fs::read(file).map_err(|e| DataError::io(file, "read the array", e))?;
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(DataError::invalid(file, "not a .npy file: expected it to start with \\x93NUMPY"));
    }
    let (header_start, header_len) = match bytes[6] {
        1 => (10, u16::from_le_bytes([bytes[8], bytes[9]]) as usize),
        2 | 3 if bytes.len() >= 12 => (12, u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize),
        v => return Err(DataError::invalid(file, format!("expected .npy format version 1, 2 or 3, got {v}"))),
    };
    let data_start = header_start + header_len;
    if bytes.len() < data_start {
        return Err(DataError::invalid(file, "truncated .npy header"));
    }
    let text = std::str::from_utf8(&bytes[header_start..data_start])
        .map_err(|_| DataError::invalid(file, "the .npy header is not text"))?;
    let header = parse_header(text).map_err(|m| DataError::invalid(file, format!("bad .npy header: {m}")))?;
    if header.fortran_order {
        return Err(DataError::invalid(
            file,
            "expected a C-ordered array (fortran_order False); save it with np.ascontiguousarray",
        ));
    }
    bytes.drain(..data_start);
    Ok((header, bytes))
}

/// Parses the Python dict literal of a header, e.g.
/// `{'descr': '|u1', 'fortran_order': False, 'shape': (10, 32, 32, 3), }`.
fn parse_header(text: &str) -> Result<Header, String> {
    let mut p = Parser { s: text.as_bytes(), i: 0 };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.expect(b'{')?;
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        match key.as_str() {
            "descr" => descr = Some(p.string()?),
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            other => return Err(format!("unexpected key '{other}'")),
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    Ok(Header {
        descr: descr.ok_or("missing 'descr'")?,
        fortran_order: fortran.ok_or("missing 'fortran_order'")?,
        shape: shape.ok_or("missing 'shape'")?,
    })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at character {}", c as char, self.i))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at character {}", self.i)),
        };
        let start = self.i + 1;
        let len = self.s[start..].iter().position(|&c| c == quote).ok_or("unterminated string")?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        for (word, value) in [("True", true), ("False", false)] {
            if self.s[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                return Ok(value);
            }
        }
        Err(format!("expected True or False at character {}", self.i))
    }

    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                return Ok(dims);
            }
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            dims.push(digits.parse().map_err(|_| format!("expected a dimension at character {start}"))?);
            self.eat(b'L'); // Python 2 longs
            self.ws();
            if !self.eat(b',') {
                self.ws();
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load as load_set, write_synthetic, SynthOptions};
    use serde_json::Map;

    #[test]
    fn header_parses_numpy_spellings() {
        let h = parse_header("{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }      \n").unwrap();
        assert_eq!(h, Header { descr: "<i8".into(), fortran_order: false, shape: vec![5] });
        let h = parse_header("{\"shape\": (2, 3, 4), \"fortran_order\": True, \"descr\": \"|u1\"}").unwrap();
        assert_eq!(h.shape, vec![2, 3, 4]);
        assert!(h.fortran_order);
        assert_eq!(
            parse_header("{'descr': '|u1', 'fortran_order': False, 'shape': (), }").unwrap().shape,
            Vec::<usize>::new()
        );
        assert!(parse_header("{'descr': '|u1', 'shape': (2,)}").unwrap_err().contains("fortran_order"));
    }

    #[test]
    fn round_trip_through_the_npy_layout() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SynthOptions { train: 12, test: 5, classes: 4, image_size: 8, seed: 11, ..SynthOptions::default() };
        write_synthetic("npy", dir.path(), &opts).unwrap();
        let bytes = std::fs::read(dir.path().join("x_train.npy")).unwrap();
        // Data starts on a 64-byte boundary with a newline-terminated header, as numpy writes it.
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        assert_eq!(bytes[9 + header_len], b'\n');
        assert_eq!(bytes.len(), 10 + header_len + 12 * 8 * 8 * 3);
        let (train, test) = crate::data::synthetic::generate(&opts, 3);
        let s = load_set("npy", dir.path(), &Map::new()).unwrap();
        assert_eq!(s.train.images.size(), vec![12, 3, 8, 8]);
        assert_eq!(s.train.classes, 4);
        // A handful of pixels, checked against the generated CHW bytes.
        for (i, c, y, x) in [(0, 0, 0, 0), (3, 1, 2, 7), (11, 2, 7, 3), (5, 0, 4, 4)] {
            let expected = train.pixels[i * 192 + c * 64 + y * 8 + x] as i64;
            assert_eq!(s.train.images.int64_value(&[i as i64, c as i64, y as i64, x as i64]), expected);
        }
        assert_eq!(Vec::<u8>::try_from(&s.test.images.flatten(0, -1)).unwrap(), test.pixels);
        assert_eq!(Vec::<i64>::try_from(&s.test.labels).unwrap(), test.labels);
        assert_eq!(Vec::<i64>::try_from(&s.train.labels).unwrap(), train.labels);
    }

    fn write_set(dir: &Path, x_shape: &[usize], y_descr: &str, y: &[u8]) {
        let n: usize = x_shape.iter().product();
        let pixels: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        for split in ["train", "test"] {
            write_array(&dir.join(format!("x_{split}.npy")), "|u1", x_shape, &pixels).unwrap();
            let count = y.len() / y_descr[2..].parse::<usize>().unwrap();
            write_array(&dir.join(format!("y_{split}.npy")), y_descr, &[count], y).unwrap();
        }
    }

    #[test]
    fn grayscale_and_narrow_labels_are_read() {
        let dir = tempfile::tempdir().unwrap();
        // Two 2x3 grayscale images; labels big-endian int32 and then uint8.
        write_set(dir.path(), &[2, 2, 3], ">i4", &[0, 0, 0, 2, 0, 0, 0, 5]);
        let s = load_set("npy", dir.path(), &Map::new()).unwrap();
        assert_eq!(s.train.images.size(), vec![2, 1, 2, 3]);
        assert_eq!(Vec::<i64>::try_from(&s.train.labels).unwrap(), vec![2, 5]);
        assert_eq!(s.train.classes, 6);
        assert_eq!(s.train.images.int64_value(&[1, 0, 1, 2]), 11);
        write_set(dir.path(), &[2, 2, 3], "|u1", &[3, 1]);
        let s = load_set("npy", dir.path(), &Map::new()).unwrap();
        assert_eq!(Vec::<i64>::try_from(&s.test.labels).unwrap(), vec![3, 1]);
        write_set(dir.path(), &[2, 2, 3], "<i2", &[0xff, 0xff, 1, 0]);
        let err = load_set("npy", dir.path(), &Map::new()).unwrap_err().to_string();
        assert!(err.contains("y_train.npy") && err.contains("negative"), "{err}");
    }

    #[test]
    fn wrong_arrays_are_named_with_what_was_expected() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), &[2, 2, 3], "<i8", &[0; 16]);
        // Float pixels.
        write_array(&dir.path().join("x_test.npy"), "<f4", &[2, 2, 3], &[0; 48]).unwrap();
        let err = load_set("npy", dir.path(), &Map::new()).unwrap_err().to_string();
        assert!(err.contains("x_test.npy") && err.contains("expected uint8"), "{err}");
        // Label count that does not match the images.
        write_set(dir.path(), &[3, 2, 3], "<i8", &[0; 16]);
        let err = load_set("npy", dir.path(), &Map::new()).unwrap_err().to_string();
        assert!(err.contains("y_train.npy") && err.contains("expected labels of shape [3]"), "{err}");
        // Fortran order and a short data section.
        write_set(dir.path(), &[2, 2, 3], "<i8", &[0; 16]);
        let file = dir.path().join("x_train.npy");
        let text = std::fs::read(&file).unwrap();
        let at = text.windows(5).position(|w| w == b"False").unwrap();
        let mut flipped = text.clone();
        flipped[at..at + 5].copy_from_slice(b"True ");
        std::fs::write(&file, &flipped).unwrap();
        let err = load_set("npy", dir.path(), &Map::new()).unwrap_err().to_string();
        assert!(err.contains("x_train.npy") && err.contains("fortran_order"), "{err}");
        std::fs::write(&file, &text[..text.len() - 1]).unwrap();
        let err = load_set("npy", dir.path(), &Map::new()).unwrap_err().to_string();
        assert!(err.contains("x_train.npy") && err.contains("expected 12 data bytes"), "{err}");
        // Labels at or above an explicit class count.
        write_set(dir.path(), &[2, 2, 3], "|u1", &[1, 4]);
        let mut options = Map::new();
        options.insert("classes".into(), 4.into());
        let err = load_set("npy", dir.path(), &options).unwrap_err().to_string();
        assert!(err.contains("y_train.npy") && err.contains("index 1"), "{err}");
    }
}
