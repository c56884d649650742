//! A small `.npy` reader (NumPy's array file format, versions 1 to 3): little- or big-endian
//! integers, floats and booleans, and fixed-width byte strings (`|S3`), in C order (or Fortran
//! order for 1-D arrays, where the two agree).

use std::path::Path;

use super::{parse_error, read_bytes};
use crate::error::Result;

/// The values of an array, widened to one type per kind.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    /// Floats (`f2` is not supported; `f4`, `f8` are).
    Float(Vec<f64>),
    /// Signed and unsigned integers and booleans.
    Int(Vec<i64>),
    /// Fixed-width byte strings (`S<n>`): `width` bytes per element.
    Bytes {
        /// Bytes per element.
        width: usize,
        /// All elements, concatenated.
        data: Vec<u8>,
    },
}

/// An array read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// Its shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// Its values, in C order.
    pub data: NpyData,
}

impl NpyArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            NpyData::Float(v) => v.len(),
            NpyData::Int(v) => v.len(),
            NpyData::Bytes { width, data } => data.len().checked_div(*width).unwrap_or(0),
        }
    }
    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The values as integers; floats must be integral (HeCo stores labels as `f8`).
    pub fn to_ints(&self) -> Option<Vec<i64>> {
        match &self.data {
            NpyData::Int(v) => Some(v.clone()),
            NpyData::Float(v) => v
                .iter()
                .map(|&x| (x.fract() == 0.0 && x.abs() < 9.0e15).then_some(x as i64))
                .collect(),
            NpyData::Bytes { .. } => None,
        }
    }
    /// The values as `f32` (`None` for byte strings).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        match &self.data {
            NpyData::Int(v) => Some(v.iter().map(|&x| x as f32).collect()),
            NpyData::Float(v) => Some(v.iter().map(|&x| x as f32).collect()),
            NpyData::Bytes { .. } => None,
        }
    }
}

/// Reads the `.npy` file at `path`.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    parse_npy(path, &read_bytes(path)?)
}

/// Parses `.npy` bytes; `path` names the file (or `archive.npz/member.npy`) in errors.
pub fn parse_npy(path: &Path, bytes: &[u8]) -> Result<NpyArray> {
    let bad = |m: String| parse_error(path, 0, format!("not a readable .npy array: {m}"));
    if bytes.get(..6) != Some(b"\x93NUMPY".as_slice()) {
        return Err(bad("missing the \\x93NUMPY magic".into()));
    }
    let (len, start): (Option<usize>, usize) = match bytes.get(6) {
        Some(1) => (bytes.get(8..10).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]]))), 10),
        Some(2 | 3) => {
            (bytes.get(8..12).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize), 12)
        }
        v => return Err(bad(format!("unknown format version {v:?}"))),
    };
    let header = len
        .and_then(|l| bytes.get(start..start.checked_add(l)?))
        .ok_or_else(|| bad("truncated header".into()))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text".into()))?;
    let body = &bytes[start + header.len()..];
    let descr =
        dict_str(header, "descr").ok_or_else(|| bad(format!("no `descr` in header `{header}`")))?;
    let fortran = header.contains("'fortran_order': True");
    let shape = dict_shape(header)
        .ok_or_else(|| bad(format!("no readable `shape` in header `{header}`")))?;
    if fortran && shape.len() > 1 {
        return Err(
            bad("Fortran-order arrays of more than one dimension are not supported".into()),
        );
    }
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("shape overflows".into()))?;
    let data = decode(descr, count, body).map_err(bad)?;
    Ok(NpyArray { shape, data })
}

/// The quoted string value of `key` in a header dict.
fn dict_str<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let rest = &header[header.find(&format!("'{key}'"))? + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let quote = rest.chars().next().filter(|&c| c == '\'' || c == '"')?;
    let rest = &rest[1..];
    Some(&rest[..rest.find(quote)?])
}

/// The `shape` tuple of a header dict.
fn dict_shape(header: &str) -> Option<Vec<usize>> {
    let rest = &header[header.find("'shape'")? + 7..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('(')?;
    let inner = &rest[..rest.find(')')?];
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().ok())
        .collect()
}

/// Decodes `count` elements of type `descr` from `body`.
fn decode(descr: &str, count: usize, body: &[u8]) -> std::result::Result<NpyData, String> {
    let (order, kind) = match descr.as_bytes().first() {
        Some(b'<' | b'>' | b'|' | b'=') => (descr.as_bytes()[0], &descr[1..]),
        _ => (b'=', descr),
    };
    let big = order == b'>';
    let (code, width) = kind.split_at(kind.chars().next().map_or(0, char::len_utf8));
    let width: usize = width.parse().map_err(|_| format!("dtype `{descr}` is not supported"))?;
    let need = count.checked_mul(width).ok_or("size overflows")?;
    if body.len() < need {
        return Err(format!("{} data bytes, {need} expected for {count} x `{descr}`", body.len()));
    }
    let body = &body[..need];
    let word = |chunk: &[u8]| -> u64 {
        let mut v = 0u64;
        for i in 0..chunk.len() {
            let b = if big { chunk[i] } else { chunk[chunk.len() - 1 - i] };
            v = (v << 8) | u64::from(b);
        }
        v
    };
    let words = || body.chunks_exact(width.max(1)).map(word);
    Ok(match (code, width) {
        ("f", 4) => NpyData::Float(words().map(|w| f64::from(f32::from_bits(w as u32))).collect()),
        ("f", 8) => NpyData::Float(words().map(f64::from_bits).collect()),
        ("i", 1 | 2 | 4 | 8) => {
            let shift = 64 - 8 * width as u32;
            NpyData::Int(words().map(|w| ((w << shift) as i64) >> shift).collect())
        }
        ("u" | "b", 1 | 2 | 4) => NpyData::Int(words().map(|w| w as i64).collect()),
        ("u", 8) => NpyData::Int(
            words()
                .map(|w| i64::try_from(w).map_err(|_| format!("value {w} too large")))
                .collect::<std::result::Result<_, _>>()?,
        ),
        ("S", w) => NpyData::Bytes { width: w, data: body.to_vec() },
        _ => return Err(format!("dtype `{descr}` is not supported")),
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_npy, NpyData};
    use std::path::Path;

    /// A version-1 `.npy` file with `header` (padded as NumPy does) and `body`.
    fn npy(header: &str, body: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        let pad = (64 - (10 + h.len() + 1) % 64) % 64;
        h.push_str(&" ".repeat(pad));
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn dtypes() {
        let p = Path::new("x.npy");
        let mut body = Vec::new();
        for v in [1i64, -2, 300] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        let a =
            parse_npy(p, &npy("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", &body))
                .unwrap();
        assert_eq!((a.shape.clone(), a.data.clone()), (vec![3], NpyData::Int(vec![1, -2, 300])));
        let body: Vec<u8> = [-1i32, 7].iter().flat_map(|v| v.to_be_bytes()).collect();
        let a =
            parse_npy(p, &npy("{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }", &body))
                .unwrap();
        assert_eq!(a.data, NpyData::Int(vec![-1, 7]));
        let body: Vec<u8> = [0.5f64, 2.0, 3.0, -1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = parse_npy(
            p,
            &npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", &body),
        )
        .unwrap();
        assert_eq!(a.shape, vec![2, 2]);
        assert_eq!(a.to_f32(), Some(vec![0.5, 2.0, 3.0, -1.0]));
        assert_eq!(a.to_ints(), None);
        let a =
            parse_npy(p, &npy("{'descr': '|S3', 'fortran_order': False, 'shape': (), }", b"csr"))
                .unwrap();
        assert_eq!(a.data, NpyData::Bytes { width: 3, data: b"csr".to_vec() });
    }

    #[test]
    fn errors() {
        let p = Path::new("x.npy");
        let short = npy("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", &[0; 8]);
        let msg = parse_npy(p, &short).unwrap_err().to_string();
        assert!(msg.contains("x.npy") && msg.contains("8 data bytes, 24 expected"), "{msg}");
        let msg = parse_npy(p, b"\x93NUMPY\x01\x00\xff\xff{").unwrap_err().to_string();
        assert!(msg.contains("truncated header"), "{msg}");
        let msg = parse_npy(
            p,
            &npy("{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }", &[0; 16]),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("not supported"), "{msg}");
        assert!(parse_npy(p, b"PK").is_err());
    }
}
