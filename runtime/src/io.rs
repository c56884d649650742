//! Atomic file writing: write to a temporary file in the same directory, fsync, rename.
//!
//! A reader of `path` sees either the old file or the complete new one, never a partial write;
//! when writing fails, the temporary file is removed and `path` is untouched.

use crate::error::{Result, RuntimeError};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically (temporary sibling file, fsync, rename over `path`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| RuntimeError::Io { path: p, source }
    };
    let tmp = temp_path(path);
    let result = (|| -> Result<()> {
        let mut file = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        file.write_all(bytes).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(io_err(path))?;
        Ok(())
    })();
    if result.is_err() {
        // Best effort: the temporary file may not even exist.
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Make the rename itself durable where the platform allows opening a directory.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// `dir/.name.tmp.PID.N`: hidden, in the same directory (so the rename stays on one file
/// system), unique per process and call.
fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp_name = format!(".{name}.tmp.{}.{n}", std::process::id());
    match path.parent() {
        Some(dir) => dir.join(tmp_name),
        None => PathBuf::from(tmp_name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replaces_and_fails_cleanly() {
        let dir = std::env::temp_dir().join(format!("pigeon-io-test-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let path = dir.join("out.bin");
        assert!(write_atomic(&path, b"first").is_ok());
        assert!(write_atomic(&path, b"second").is_ok());
        assert_eq!(fs::read(&path).ok(), Some(b"second".to_vec()));
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(&dir)
            .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(names.len(), 1);
        // Writing into a missing directory fails with an Io error naming a path.
        let bad = dir.join("missing").join("x.bin");
        assert!(matches!(write_atomic(&bad, b"x"), Err(RuntimeError::Io { .. })));
        assert!(!bad.exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
