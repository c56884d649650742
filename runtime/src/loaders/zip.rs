//! A minimal zip reader for `.npz` files: the central directory (zip64 included), stored and
//! deflate members, CRC-32 checked. No encryption, no multi-disk archives.

use std::io::Read;
use std::path::Path;

use flate2::read::DeflateDecoder;

use super::parse_error;
use crate::error::Result;

const EOCD: u32 = 0x0605_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const ZIP64_EOCD: u32 = 0x0606_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const LOCAL: u32 = 0x0403_4b50;

/// One member of an archive, as the central directory describes it.
#[derive(Clone, Debug)]
struct Entry {
    name: String,
    flags: u16,
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    local_offset: u64,
}

/// A zip archive held in memory.
pub struct ZipArchive<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    entries: Vec<Entry>,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off.checked_add(2)?)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off.checked_add(8)?)?.try_into().ok()?))
}

impl<'a> ZipArchive<'a> {
    /// Reads the central directory of `bytes` (the contents of `path`, named in errors).
    pub fn new(path: &'a Path, bytes: &'a [u8]) -> Result<Self> {
        let bad = |m: &str| parse_error(path, 0, format!("not a readable zip archive: {m}"));
        let eocd = (0..bytes.len().saturating_sub(21))
            .rev()
            .take(65_557)
            .find(|&i| u32_at(bytes, i) == Some(EOCD))
            .ok_or_else(|| bad("no end-of-central-directory record"))?;
        let mut count = u64::from(u16_at(bytes, eocd + 10).ok_or_else(|| bad("short record"))?);
        let mut offset = u64::from(u32_at(bytes, eocd + 16).ok_or_else(|| bad("short record"))?);
        if count == 0xFFFF || offset == 0xFFFF_FFFF {
            let locator = eocd.checked_sub(20).filter(|&l| u32_at(bytes, l) == Some(ZIP64_LOCATOR));
            let rec = locator
                .and_then(|l| u64_at(bytes, l + 8))
                .and_then(|r| usize::try_from(r).ok())
                .filter(|&r| u32_at(bytes, r) == Some(ZIP64_EOCD))
                .ok_or_else(|| bad("missing zip64 end-of-central-directory record"))?;
            count = u64_at(bytes, rec + 32).ok_or_else(|| bad("short zip64 record"))?;
            offset = u64_at(bytes, rec + 48).ok_or_else(|| bad("short zip64 record"))?;
        }
        let mut pos = usize::try_from(offset).map_err(|_| bad("central directory offset"))?;
        let mut entries = Vec::new();
        for _ in 0..count {
            let (entry, next) =
                read_central(bytes, pos).ok_or_else(|| bad("truncated central directory"))?;
            entries.push(entry);
            pos = next;
        }
        Ok(Self { path, bytes, entries })
    }

    /// Names of the members, in directory order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// The decompressed contents of member `name`, or `None` when there is no such member.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(e) = self.entries.iter().find(|e| e.name == name) else {
            return Ok(None);
        };
        let bad = |m: String| parse_error(self.path, 0, format!("zip member `{name}`: {m}"));
        if e.flags & 1 != 0 {
            return Err(bad("encrypted members are not supported".into()));
        }
        let local = usize::try_from(e.local_offset).map_err(|_| bad("bad offset".into()))?;
        if u32_at(self.bytes, local) != Some(LOCAL) {
            return Err(bad("no local header at its offset".into()));
        }
        let data = (|| {
            let start = local
                + 30
                + usize::from(u16_at(self.bytes, local + 26)?)
                + usize::from(u16_at(self.bytes, local + 28)?);
            let end = start.checked_add(usize::try_from(e.compressed).ok()?)?;
            self.bytes.get(start..end)
        })()
        .ok_or_else(|| bad("data runs past the end of the file".into()))?;
        let cap = usize::try_from(e.size.min(1 << 26)).unwrap_or(0);
        let mut out = Vec::with_capacity(cap);
        match e.method {
            0 => out.extend_from_slice(data),
            8 => {
                DeflateDecoder::new(data)
                    .take(e.size.saturating_add(1))
                    .read_to_end(&mut out)
                    .map_err(|err| bad(format!("corrupt deflate data: {err}")))?;
            }
            m => {
                return Err(bad(format!(
                    "compression method {m} is not supported (only stored and deflate)"
                )))
            }
        }
        if out.len() as u64 != e.size {
            return Err(bad(format!("{} bytes decompressed, {} expected", out.len(), e.size)));
        }
        let mut crc = flate2::Crc::new();
        crc.update(&out);
        if crc.sum() != e.crc {
            return Err(bad("CRC-32 mismatch".into()));
        }
        Ok(Some(out))
    }
}

/// One central directory record at `pos`, and the position of the next.
fn read_central(b: &[u8], pos: usize) -> Option<(Entry, usize)> {
    if u32_at(b, pos)? != CENTRAL {
        return None;
    }
    let name_len = usize::from(u16_at(b, pos + 28)?);
    let extra_len = usize::from(u16_at(b, pos + 30)?);
    let comment_len = usize::from(u16_at(b, pos + 32)?);
    let name_bytes = b.get(pos + 46..pos + 46 + name_len)?;
    let extra = b.get(pos + 46 + name_len..pos + 46 + name_len + extra_len)?;
    let mut entry = Entry {
        name: String::from_utf8_lossy(name_bytes).into_owned(),
        flags: u16_at(b, pos + 8)?,
        method: u16_at(b, pos + 10)?,
        crc: u32_at(b, pos + 16)?,
        compressed: u64::from(u32_at(b, pos + 20)?),
        size: u64::from(u32_at(b, pos + 24)?),
        local_offset: u64::from(u32_at(b, pos + 42)?),
    };
    apply_zip64(&mut entry, extra)?;
    Some((entry, pos + 46 + name_len + extra_len + comment_len))
}

/// Replaces the 32-bit fields saturated at `0xFFFF_FFFF` by those of the zip64 extra field.
fn apply_zip64(e: &mut Entry, extra: &[u8]) -> Option<()> {
    let mut i = 0;
    while i + 4 <= extra.len() {
        let id = u16_at(extra, i)?;
        let len = usize::from(u16_at(extra, i + 2)?);
        if id == 1 {
            let mut j = i + 4;
            for field in [&mut e.size, &mut e.compressed, &mut e.local_offset] {
                if *field == 0xFFFF_FFFF {
                    *field = u64_at(extra, j)?;
                    j += 8;
                }
            }
        }
        i += 4 + len;
    }
    Some(())
}
