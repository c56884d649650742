//! Atomic file writing: write to a temporary file in the same directory, fsync, rename.
//!
//! A reader of `path` sees either the old file or the complete new one, never a partial write;
//! when writing fails, the temporary file is removed and `path` is untouched.

use crate::error::{Result, RuntimeError};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Checks, before any work is done, that `path` can be written by [`write_atomic`]: it is not
/// a directory, and its parent directory exists. (Permissions are only known by trying.)
pub fn check_writable(path: &Path) -> Result<()> {
    let fail = |m: &str| {
        Err(RuntimeError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, m),
        })
    };
    if path.as_os_str().is_empty() {
        return fail("empty file name");
    }
    if path.is_dir() {
        return fail("is a directory; name a file to write");
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return fail(&format!("the directory {} does not exist", dir.display()));
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (temporary sibling file, fsync, rename over `path`).
///
/// An existing `path` that is not a regular file (`/dev/stdout`, a FIFO) is written in place:
/// renaming over it would replace the device or pipe. Errors name `path`, not the temporary.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io_err = |source| RuntimeError::Io { path: path.to_path_buf(), source };
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => return check_writable(path),
        Ok(m) if !m.is_file() => {
            let mut file = fs::OpenOptions::new().write(true).open(path).map_err(io_err)?;
            return file.write_all(bytes).and_then(|()| file.flush()).map_err(io_err);
        }
        _ => {}
    }
    let tmp = temp_path(path);
    let result = (|| -> Result<()> {
        let mut file = fs::File::create(&tmp).map_err(io_err)?;
        file.write_all(bytes).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        drop(file);
        fs::rename(&tmp, path).map_err(io_err)?;
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
        match write_atomic(&bad, b"x") {
            Err(RuntimeError::Io { path, .. }) => assert_eq!(path, bad),
            other => panic!("expected an Io error naming {}, got {other:?}", bad.display()),
        }
        assert!(!bad.exists());
        assert!(check_writable(&bad).is_err());
        assert!(check_writable(&path).is_ok());
        // A directory is neither replaced nor written into.
        let msg = write_atomic(&dir, b"x").map_err(|e| e.to_string());
        assert!(matches!(&msg, Err(m) if m.contains("is a directory")), "{msg:?}");
        assert!(dir.is_dir());
        let _ = fs::remove_dir_all(&dir);
    }

    /// Writing to a FIFO (like `/dev/stdout` or a device) writes into it instead of renaming a
    /// file over it (which replaced `/dev/full` by a regular file when run as root).
    #[cfg(unix)]
    #[test]
    fn pipes_are_written_in_place() {
        let dir = std::env::temp_dir().join(format!("pigeon-io-fifo-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let fifo = dir.join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("skipped: `mkfifo` is not available");
            return;
        }
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap_or_default())
        };
        let written = write_atomic(&fifo, b"through the pipe");
        let still_fifo = fs::metadata(&fifo).map(|m| !m.is_file()).unwrap_or(false);
        assert!(still_fifo, "the FIFO was replaced by a file");
        assert!(written.is_ok(), "{written:?}");
        assert_eq!(reader.join().ok(), Some(b"through the pipe".to_vec()));
        let _ = fs::remove_dir_all(&dir);
    }
}
