//! Finding `libcuda` and `libnvrtc` before cudarc is asked to: cudarc panics when it cannot load
//! a library, so every entry point first tries the names cudarc will try
//! (`cudarc::get_lib_name_candidates`) and returns [`RuntimeError::NoDevice`] when none loads.
//!
//! NVRTC may also be named by path: `$PIGEON_NVRTC` is loaded first and kept loaded, so when its
//! soname is one of cudarc's names (`libnvrtc.so.12` from the `nvidia-cuda-nvrtc-cu12` wheel),
//! the dynamic loader hands cudarc that library. A library found only by path otherwise
//! (`$CUDA_HOME/lib64`, `/usr/local/cuda/lib64`) cannot be loaded by cudarc, and the error says
//! which directory `LD_LIBRARY_PATH` must include.

use crate::error::{Result, RuntimeError};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The first of cudarc's candidate names for `lib` that loads, or the list tried.
fn load_by_name(libs: &[&str]) -> std::result::Result<String, Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for name in libs.iter().flat_map(|l| cudarc::get_lib_name_candidates(l)) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for name in &names {
        // SAFETY: loading a shared library runs its initialisers; the CUDA libraries are
        // designed to be loaded this way (cudarc loads the same names next).
        if unsafe { libloading::Library::new(name) }.is_ok() {
            return Ok(name.clone());
        }
    }
    Err(names)
}

/// Checks that the driver library loads.
pub fn check_driver() -> Result<()> {
    static FOUND: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        load_by_name(&["cuda", "nvcuda"]).map_err(|names| {
            format!(
                "the NVIDIA driver library (libcuda) is not installed or not on the loader's \
                 path (tried {})",
                names.join(", ")
            )
        })
    });
    found.as_ref().map(|_| ()).map_err(|m| RuntimeError::NoDevice(m.clone()))
}

/// Checks that NVRTC loads under one of cudarc's names (see the module doc).
pub fn check_nvrtc() -> Result<()> {
    static FOUND: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let explicit = std::env::var_os("PIGEON_NVRTC").map(PathBuf::from);
        if let Some(path) = &explicit {
            preload(path);
        }
        load_by_name(&["nvrtc"]).map_err(|names| nvrtc_missing(explicit.as_deref(), &names))
    });
    found.as_ref().map(|_| ()).map_err(|m| RuntimeError::NoDevice(m.clone()))
}

/// Loads `path` and keeps it loaded for the life of the process.
fn preload(path: &Path) {
    static KEPT: OnceLock<Option<libloading::Library>> = OnceLock::new();
    // SAFETY: as in `load_by_name`; the library is never unloaded, so no symbol outlives it.
    KEPT.get_or_init(|| unsafe { libloading::Library::new(path) }.ok());
}

/// The message when no name loads: where a library was seen by path, and what to do.
fn nvrtc_missing(explicit: Option<&Path>, names: &[String]) -> String {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(home) = std::env::var_os("CUDA_HOME").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(home).join("lib64"));
    }
    dirs.push(PathBuf::from("/usr/local/cuda/lib64"));
    let seen = dirs.iter().find_map(|d| {
        let entries = std::fs::read_dir(d).ok()?;
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("libnvrtc.so")))
    });
    let mut m = format!("NVRTC (libnvrtc) could not be loaded (tried {})", names.join(", "));
    if let Some(p) = explicit {
        m.push_str(&format!(
            "; $PIGEON_NVRTC={} was tried first, but cudarc loads NVRTC by name and its soname is not one of these",
            p.display()
        ));
    }
    match seen {
        Some(p) => {
            let dir = p.parent().map(|d| d.display().to_string()).unwrap_or_default();
            m.push_str(&format!("; found {}: add {dir} to LD_LIBRARY_PATH", p.display()));
        }
        None => m.push_str(
            "; install the CUDA toolkit or `pip install nvidia-cuda-nvrtc-cu12` and add its \
             lib directory to LD_LIBRARY_PATH",
        ),
    }
    m
}
