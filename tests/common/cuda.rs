//! Shared by the CUDA tests: whether a check is required (CI and the GPU script set
//! `PIGEON_REQUIRE_NVRTC` / `PIGEON_REQUIRE_GPU`), NVRTC and the GPU or why they are skipped,
//! and ptxas's resource report.

use pigeon::codegen::{self, GemmMath};
use pigeon::runtime::cuda::{self, CudaBackend};

/// Whether environment variable `var` is `1`.
pub fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// NVRTC's version, or `None` after printing why the NVRTC checks are skipped.
pub fn nvrtc() -> Option<(i32, i32)> {
    match cuda::nvrtc_version() {
        Ok(v) => Some(v),
        Err(e) if required("PIGEON_REQUIRE_NVRTC") => panic!("NVRTC is required: {e}"),
        Err(e) => {
            eprintln!("skipped: NVRTC not available: {e}");
            None
        }
    }
}

/// The GPU back end with GEMM arithmetic `math`, or `None` after printing why the GPU checks
/// are skipped.
pub fn gpu(math: GemmMath) -> Option<CudaBackend> {
    match CudaBackend::new(0, codegen::Options { gemm_math: math }) {
        Ok(b) => Some(b),
        Err(e) if required("PIGEON_REQUIRE_GPU") => panic!("a GPU is required: {e}"),
        Err(e) => {
            eprintln!("skipped: no GPU: {e}");
            None
        }
    }
}

/// ptxas's resource report for `ptx` when `$PIGEON_PTXAS` names ptxas, else `None`.
pub fn ptxas_report(ptx: &str, arch: &str) -> Option<String> {
    let ptxas = std::env::var("PIGEON_PTXAS").ok()?;
    let dir = std::env::temp_dir().join(format!("pigeon-ptxas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    // Tests run on several threads of one process: one file per call, or two tests write the
    // same file at once and ptxas reads a mix of both.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = dir.join(format!("k-{arch}-{call}.ptx"));
    std::fs::write(&file, ptx).ok()?;
    let out = std::process::Command::new(ptxas)
        .args([&format!("-arch={arch}"), "-v", "-o", "/dev/null"])
        .arg(&file)
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "ptxas failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stderr).into_owned())
}
