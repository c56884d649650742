//! pigeon's passes over the inter-operator IR and the lowering to kernel plans.
//!
//! The pipeline is empty for now: the optimising passes (reordering, compact materialization,
//! fusion, autodiff) arrive with the optimizing-middle issue. See `DESIGN.md`.

use pigeon_ir::Module;

/// The names of the passes in pipeline order (none yet).
pub const PIPELINE: &[&str] = &[];

/// Runs the pipeline over `module` (currently the identity).
pub fn optimize(module: Module) -> Module {
    module
}
