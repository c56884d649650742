//! CUDA C++ to PTX with NVRTC, and the error excerpt: the numbered source lines around the
//! first line NVRTC's log names.
//!
//! Options: `--gpu-architecture=compute_XX` for `sm_XX` (PTX for the virtual architecture, which
//! the driver compiles for the device when the module loads), `--std=c++17`, `-default-device`
//! (as `scripts/nvrtc-compile.py`).

/// The program name NVRTC prints in its log (`pigeon.cu(12): error: ...`).
pub const PROGRAM_NAME: &str = "pigeon.cu";

/// The virtual architecture of `arch` (`sm_90` -> `compute_90`, `sm_90a` -> `compute_90a`), or
/// `None` for a name that is not `sm_` followed by digits and an optional letter.
pub fn virtual_arch(arch: &str) -> Option<String> {
    let rest = arch.strip_prefix("sm_")?;
    let digits = rest.trim_end_matches(|c: char| c.is_ascii_lowercase());
    let ok = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && rest.len() - digits.len() <= 1;
    ok.then(|| format!("compute_{rest}"))
}

/// The NVRTC options for `arch` (already checked by [`virtual_arch`]).
pub fn options(virtual_arch: &str) -> Vec<String> {
    vec![
        format!("--gpu-architecture={virtual_arch}"),
        "--std=c++17".into(),
        "-default-device".into(),
    ]
}

/// The line number of the first error in an NVRTC log (`name(LINE): error: ...`).
pub fn first_error_line(log: &str) -> Option<usize> {
    log.lines().filter(|l| l.contains(": error")).find_map(|l| {
        let open = l.find('(')?;
        let close = open + l[open..].find(')')?;
        l[open + 1..close].trim().parse().ok()
    })
}

/// Lines `line - 3 ..= line + 2` of `source`, numbered, the error line marked with `>`; empty
/// when the line is not in the source.
pub fn excerpt(source: &str, line: usize) -> String {
    let lines: Vec<&str> = source.lines().collect();
    if line == 0 || line > lines.len() {
        return String::new();
    }
    let lo = line.saturating_sub(3).max(1);
    let hi = (line + 2).min(lines.len());
    let width = hi.to_string().len();
    let mut out = String::new();
    for n in lo..=hi {
        let mark = if n == line { '>' } else { ' ' };
        out.push_str(&format!("{mark} {n:>width$} | {}\n", lines[n - 1]));
    }
    out
}

#[cfg(feature = "cuda")]
pub use compile::{compile_ptx, nvrtc_version};

#[cfg(feature = "cuda")]
mod compile {
    use super::{excerpt, first_error_line, options, virtual_arch, PROGRAM_NAME};
    use crate::cuda::libs;
    use crate::error::{Result, RuntimeError};
    use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions};

    /// NVRTC's version, when it loads.
    pub fn nvrtc_version() -> Result<(i32, i32)> {
        libs::check_nvrtc()?;
        let (mut major, mut minor) = (0, 0);
        // SAFETY: NVRTC is loaded (checked above); `nvrtcVersion` writes two ints through the
        // pointers, which point at live locals.
        let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
        r.result().map_err(|e| RuntimeError::Cuda(format!("nvrtcVersion: {e:?}")))?;
        Ok((major, minor))
    }

    /// Compiles CUDA C++ `source` to PTX for `arch` (`sm_80`, `sm_90`) with NVRTC (no GPU or
    /// driver needed). A compilation error is [`RuntimeError::Nvrtc`] with the log and the
    /// numbered source around the first error.
    pub fn compile_ptx(source: &str, arch: &str) -> Result<String> {
        let varch = virtual_arch(arch).ok_or_else(|| {
            RuntimeError::Unsupported(format!(
                "GPU architecture `{arch}` (expected `sm_` and digits, like sm_80 or sm_90)"
            ))
        })?;
        if source.contains('\0') {
            return Err(RuntimeError::Internal("CUDA source contains a NUL byte".into()));
        }
        libs::check_nvrtc()?;
        let opts = CompileOptions {
            options: options(&varch),
            name: Some(PROGRAM_NAME.into()),
            ..CompileOptions::default()
        };
        match compile_ptx_with_opts(source, opts) {
            Ok(ptx) => Ok(ptx.to_src()),
            Err(CompileError::CompileError { log, .. }) => {
                let log = log.to_string_lossy().trim_end().to_string();
                let excerpt =
                    first_error_line(&log).map(|l| excerpt(source, l)).unwrap_or_default();
                Err(RuntimeError::Nvrtc { log, excerpt })
            }
            Err(e) => Err(RuntimeError::Cuda(format!("NVRTC: {e:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures_map_to_virtual_ones() {
        assert_eq!(virtual_arch("sm_90").as_deref(), Some("compute_90"));
        assert_eq!(virtual_arch("sm_90a").as_deref(), Some("compute_90a"));
        assert_eq!(virtual_arch("sm_").as_deref(), None);
        assert_eq!(virtual_arch("compute_90").as_deref(), None);
        assert_eq!(virtual_arch("sm_9x0").as_deref(), None);
    }

    #[test]
    fn error_lines_and_excerpts() {
        let log =
            "pigeon.cu(4): warning: unused\npigeon.cu(5): error: identifier \"y\" is undefined";
        assert_eq!(first_error_line(log), Some(5));
        assert_eq!(first_error_line("no lines here"), None);
        let src = "a\nb\nc\nd\ne\nf\ng\nh";
        assert_eq!(excerpt(src, 5), "  2 | b\n  3 | c\n  4 | d\n> 5 | e\n  6 | f\n  7 | g\n");
        assert_eq!(excerpt(src, 1), "> 1 | a\n  2 | b\n  3 | c\n");
        assert_eq!(excerpt(src, 9), "");
    }
}
