//! Dataset loaders: one module per on-disk format, each producing a [`HeteroGraph`], plus the
//! synthetic generator and the small readers they share (`.npy`, zip, JSON-like metadata).
//!
//! Every loader validates what it reads: column counts, numbers, ids in range, names it refers
//! to. A malformed file gives [`RuntimeError::Parse`] naming the file and the 1-based line (0
//! when the problem is not tied to a line, as in a binary file); no input makes a loader panic.
//!
//! [`HeteroGraph`]: crate::graph::HeteroGraph

pub mod heco;
pub mod hgb;
mod json;
pub mod npy;
pub mod rdf;
pub mod synthetic;
pub mod triples;
pub mod zip;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::str::FromStr;

use crate::error::{Result, RuntimeError};

pub use heco::load_heco;
pub use hgb::load_hgb;
pub use rdf::load_rdf;
pub use synthetic::{generate, SyntheticParams};
pub use triples::load_triples;

/// A [`RuntimeError::Parse`] for `path` at `line`.
pub(crate) fn parse_error(path: &Path, line: usize, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Parse { path: path.to_path_buf(), line, message: message.into() }
}

/// A [`RuntimeError::Io`] for `path`.
pub(crate) fn io_error(path: &Path, source: std::io::Error) -> RuntimeError {
    RuntimeError::Io { path: path.to_path_buf(), source }
}

/// Opens `path` for buffered reading.
pub(crate) fn open(path: &Path) -> Result<BufReader<File>> {
    File::open(path).map(BufReader::new).map_err(|e| io_error(path, e))
}

/// Reads all of `path`.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io_error(path, e))
}

/// Calls `f(line_number, line)` for every line of `reader` (1-based numbers, the line without
/// its `\n` or `\r\n`). A read error (a truncated gzip stream, say) or a line that is not UTF-8
/// becomes a parse error at the line being read.
pub(crate) fn for_each_line(
    path: &Path,
    mut reader: impl BufRead,
    mut f: impl FnMut(usize, &str) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        line += 1;
        let n = reader.read_until(b'\n', &mut buf).map_err(|e| {
            parse_error(
                path,
                line,
                format!("cannot read the file here (truncated or corrupt?): {e}"),
            )
        })?;
        if n == 0 {
            return Ok(());
        }
        let mut bytes = buf.as_slice();
        if let Some(rest) = bytes.strip_suffix(b"\n") {
            bytes = rest;
        }
        if let Some(rest) = bytes.strip_suffix(b"\r") {
            bytes = rest;
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| parse_error(path, line, format!("not valid UTF-8: {e}")))?;
        f(line, text)?;
    }
}

/// Splits a line at tabs into exactly `n` fields, or says how many it has.
pub(crate) fn fields<'a>(
    path: &Path,
    line: usize,
    text: &'a str,
    n: usize,
    what: &str,
) -> Result<Vec<&'a str>> {
    let cols: Vec<&str> = text.split('\t').collect();
    if cols.len() != n {
        return Err(parse_error(
            path,
            line,
            format!("expected {n} tab-separated columns ({what}), found {}", cols.len()),
        ));
    }
    Ok(cols)
}

/// Parses `field` (trimmed) as a number, naming `what` in the error.
pub(crate) fn number<T: FromStr>(path: &Path, line: usize, field: &str, what: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    field.trim().parse().map_err(|e| parse_error(path, line, format!("bad {what} `{field}`: {e}")))
}

/// Dense `u32` ids for strings, in order of first appearance.
#[derive(Default)]
pub(crate) struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    /// The id of `name`, adding it if new; `None` when more than `u32::MAX` names were seen.
    pub(crate) fn intern(&mut self, name: &str) -> Option<u32> {
        if let Some(&id) = self.ids.get(name) {
            return Some(id);
        }
        let id = u32::try_from(self.names.len()).ok()?;
        self.ids.insert(name.to_owned(), id);
        self.names.push(name.to_owned());
        Some(id)
    }
    /// The id of `name`, if seen.
    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }
    /// Number of names.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
    /// The names, by id.
    pub(crate) fn into_names(self) -> Vec<String> {
        self.names
    }
}
