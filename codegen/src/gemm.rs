//! The GEMM template (to be written).

use crate::error::{unsupported, Result};
use crate::spec::{KernelLaunch, Options};
use crate::writer::Writer;
use pigeon_ir::plan::{Gemm, KernelId, Plan};

/// The fixed tiled GEMM loops.
pub const GEMM_CUH: &str = "";

/// Writes the kernel for `g` and returns how to launch it.
pub(crate) fn emit(
    _w: &mut Writer,
    _plan: &Plan,
    _id: KernelId,
    _g: &Gemm,
    _name: &str,
    _options: &Options,
) -> Result<KernelLaunch> {
    Err(unsupported("GEMM kernels (not written yet)"))
}
