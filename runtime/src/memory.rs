//! Size checks before large allocations, so that a model or graph too large for the machine is
//! a [`RuntimeError::TooLarge`] naming what needs how much memory, never an out-of-memory abort.
//!
//! The limit is the memory available when the first check is made (`MemAvailable` of
//! `/proc/meminfo`, which counts free memory and reclaimable caches; the physical memory,
//! `MemTotal`, was too generous: a value that fit in it but not in the free memory got the process
//! killed by the kernel). Where neither can be read, only sizes that overflow the address space
//! are refused, and allocation failures stay possible. Checks are made on the sizes a request implies (rows x elements x 8 bytes for
//! f64 tensors) before anything is allocated.

use crate::error::{Result, RuntimeError};
use std::sync::OnceLock;

/// The memory available to this process in bytes, measured once, when it can be read (Linux).
pub fn available_memory() -> Option<u64> {
    static MEM: OnceLock<Option<u64>> = OnceLock::new();
    *MEM.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = text.lines().find(|l| l.starts_with(name))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()?.checked_mul(1024)
        };
        field("MemAvailable:").or_else(|| field("MemTotal:"))
    })
}

/// The bytes of `rows` rows of `per_row` f64 values (exact: never overflows).
pub fn f64_bytes(rows: usize, per_row: usize) -> u128 {
    rows as u128 * per_row as u128 * 8
}

/// Refuses `bytes` for `what` when it exceeds the machine's memory (or the address space).
pub fn check(what: impl FnOnce() -> String, bytes: u128) -> Result<()> {
    check_with_limit(what, bytes, available_memory())
}

/// [`check`] against an explicit limit (`None`: the address space only).
pub fn check_with_limit(
    what: impl FnOnce() -> String,
    bytes: u128,
    limit: Option<u64>,
) -> Result<()> {
    let addressable = isize::MAX as u128;
    let limit_bytes = limit.map_or(addressable, |l| u128::from(l).min(addressable));
    if bytes > limit_bytes {
        return Err(RuntimeError::TooLarge { what: what(), bytes, limit });
    }
    Ok(())
}

/// `bytes` in the largest binary unit that keeps it at least 1 (`3.0 GiB`, `512 B`).
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_in_binary_units() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
        assert_eq!(human(f64_bytes(1 << 31, 1 << 31)), "32.0 EiB");
    }

    #[test]
    fn limits_are_enforced_and_named() {
        let gib = 1u64 << 30;
        assert!(check_with_limit(|| "x".into(), u128::from(gib), Some(gib)).is_ok());
        match check_with_limit(|| "weight `W`".into(), f64_bytes(3, 1 << 31), Some(gib)) {
            Err(e @ RuntimeError::TooLarge { .. }) => {
                let m = e.to_string();
                assert!(m.contains("weight `W` needs 48.0 GiB"), "{m}");
                assert!(m.contains("1.0 GiB"), "{m}");
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // Without a known limit, only what no address space holds is refused.
        assert!(check_with_limit(|| "x".into(), 1 << 40, None).is_ok());
        assert!(check_with_limit(|| "x".into(), f64_bytes(usize::MAX, 2), None).is_err());
    }
}
