//! The traversal template (to be written).

use crate::error::{unsupported, Result};
use crate::spec::KernelLaunch;
use crate::writer::Writer;
use pigeon_ir::plan::{KernelId, Plan, Traversal};

/// Writes the kernel for `t` and returns how to launch it.
pub(crate) fn emit(
    _w: &mut Writer,
    _plan: &Plan,
    _id: KernelId,
    _t: &Traversal,
    _name: &str,
) -> Result<KernelLaunch> {
    Err(unsupported("traversal kernels (not written yet)"))
}
