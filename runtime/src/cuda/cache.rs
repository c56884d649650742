//! The on-disk PTX cache: `ptx/<key>.ptx` under `$PIGEON_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/pigeon`, else `$HOME/.cache/pigeon`. The key is an FNV-1a 64-bit hash of
//! the source, the architecture, the NVRTC version and the compiler options (std's hasher is
//! not stable across Rust releases, so it cannot name files).
//!
//! The cache is best effort: entries are written atomically (`crate::io::write_atomic`); an
//! entry that cannot be read or does not look like PTX is ignored (and recompiled by the
//! caller), and a failed write only costs a later recompilation.

use std::path::PathBuf;

/// FNV-1a, 64 bits, over `parts` separated by a zero byte (so `("ab", "c")` and `("a", "bc")`
/// differ).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // A zero byte: `h ^= 0` changes nothing, so only the multiplication remains.
            h = h.wrapping_mul(PRIME);
        }
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    h
}

/// The cache's root directory, when one can be named from the environment.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("PIGEON_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("pigeon")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("pigeon")))
}

/// The file of cache key `key`.
pub fn ptx_path(key: u64) -> Option<PathBuf> {
    cache_dir().map(|d| d.join("ptx").join(format!("{key:016x}.ptx")))
}

/// Whether `text` looks like a complete PTX module (a version and target directive, and at
/// least one entry point).
pub fn looks_like_ptx(text: &str) -> bool {
    text.contains(".version") && text.contains(".target") && text.contains(".entry")
}

/// The cached PTX of `key`, if present and plausible.
pub fn load(key: u64) -> Option<String> {
    let text = std::fs::read_to_string(ptx_path(key)?).ok()?;
    looks_like_ptx(&text).then_some(text)
}

/// Stores `ptx` under `key`; failures are ignored (see the module doc).
pub fn store(key: u64, ptx: &str) {
    if let Some(path) = ptx_path(key) {
        if let Some(dir) = path.parent() {
            if std::fs::create_dir_all(dir).is_err() {
                return;
            }
        }
        let _ = crate::io::write_atomic(&path, ptx.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_has_the_published_values() {
        // Reference values of FNV-1a 64 (draft-eastlake-fnv): "" and "a".
        assert_eq!(fnv1a(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(&[b"foobar"]), 0x8594_4171_f739_67e8);
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
    }

    #[test]
    fn ptx_plausibility() {
        assert!(looks_like_ptx(".version 8.5\n.target sm_90\n.visible .entry k()\n{}"));
        assert!(!looks_like_ptx(".version 8.5\n.target sm_90\n"));
        assert!(!looks_like_ptx("garbage"));
    }
}
