//! The CUDA back end: `pigeon_codegen`'s CUDA C++ compiled with NVRTC (cached in memory and on
//! disk), launched through cudarc's driver API, which is loaded at run time, so building needs
//! no CUDA toolkit and a machine without a GPU still builds, tests and runs the CPU back end.
//!
//! - [`probe`] finds a GPU without panicking ([`RuntimeError::NoDevice`] with the reason);
//! - [`compile_ptx`] and [`nvrtc_version`] need only NVRTC (no GPU, no driver);
//! - [`estimate_memory`] is the device memory a plan needs on a graph, itemised; executions check
//!   it against the free memory before allocating ([`RuntimeError::DeviceMemory`]);
//! - [`CudaBackend`] implements [`crate::backend::Backend`].
//!
//! Without the `cuda` feature the same items exist; those that need the GPU or NVRTC return
//! [`RuntimeError::NoDevice`], so callers need no `cfg`.
//!
//! [`RuntimeError::NoDevice`]: crate::RuntimeError::NoDevice
//! [`RuntimeError::DeviceMemory`]: crate::RuntimeError::DeviceMemory

// Without the `cuda` feature only the estimate and the tests use these.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
mod cache;
#[cfg(feature = "cuda")]
mod device;
#[cfg(feature = "cuda")]
mod exec;
// Without the `cuda` feature only the estimate and the tests use these.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
mod host;
#[cfg(feature = "cuda")]
mod libs;
// Without the `cuda` feature only the estimate and the tests use these.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
mod nvrtc;
#[cfg(not(feature = "cuda"))]
mod stub;
// Without the `cuda` feature only the estimate and the tests use these.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
mod values;

use crate::error::Result;
use crate::graph::HeteroGraph;
use pigeon_codegen::CudaProgram;
use pigeon_ir::plan::Plan;

pub use host::MemoryEstimate;

#[cfg(feature = "cuda")]
pub use device::probe;
#[cfg(feature = "cuda")]
pub use exec::CudaBackend;
#[cfg(feature = "cuda")]
pub use nvrtc::{compile_ptx, nvrtc_version};
#[cfg(not(feature = "cuda"))]
pub use stub::{compile_ptx, nvrtc_version, probe, CudaBackend};

/// What [`probe`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device's ordinal.
    pub ordinal: usize,
    /// Its name (`NVIDIA H100 80GB HBM3`).
    pub name: String,
    /// Its architecture for NVRTC (`sm_90`).
    pub arch: String,
    /// Its memory.
    pub total_bytes: usize,
    /// Its free memory when probed.
    pub free_bytes: usize,
}

/// The device memory `plan` needs on `graph` (buffers, temps by slot, weights, inputs,
/// outputs, graph arrays, GEMM tile tables), itemised; generates the plan's CUDA with default
/// options to learn which graph arrays and tiles the kernels use. Needs no GPU.
pub fn estimate_memory(plan: &Plan, graph: &HeteroGraph) -> Result<MemoryEstimate> {
    let program = pigeon_codegen::generate(plan, &pigeon_codegen::Options::default())?;
    estimate_program_memory(plan, graph, &program)
}

/// [`estimate_memory`] for a program already generated from `plan`.
pub fn estimate_program_memory(
    plan: &Plan,
    graph: &HeteroGraph,
    program: &CudaProgram,
) -> Result<MemoryEstimate> {
    Ok(host::prepare(plan, graph, program)?.estimate())
}

/// The directory of the on-disk PTX cache (`$PIGEON_CACHE_DIR`, else `$XDG_CACHE_HOME/pigeon`,
/// else `$HOME/.cache/pigeon`), when one can be named.
pub fn cache_dir() -> Option<std::path::PathBuf> {
    cache::cache_dir()
}

/// FNV-1a 64 of `parts` separated by zero bytes: the PTX cache's key function (stable across
/// Rust releases and machines).
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    cache::fnv1a(parts)
}
