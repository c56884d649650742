//! pigeon's optimiser: passes over the inter-operator IR, the fusion grouping, and the lowering
//! to kernel plans (the intra-operator IR), with layout and schedule choice.
//!
//! The pipeline is one explicit list, [`PIPELINE`] in `pipeline.rs`; each pass lives in its own file with a
//! before/after example in its doc. Every optimisation can be switched off on its own through
//! [`Options`], so an ablation is one flag. `pigeon dump --stage opt|plan --after PASS` shows any
//! point of the pipeline.

pub mod autodiff;
pub mod cleanup;
pub mod error;
pub mod fuse;
pub mod lower_plan;
pub mod materialize_compact;
pub mod pipeline;
mod reorder;
pub mod reorder_linear;
pub mod schedule;

pub use error::PassError;
pub use pipeline::{compile, Compiled, PIPELINE};

/// Which optimisations run. `Options::default()` turns everything on; [`Options::none`] is
/// `-O0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Linear-operator reordering with egg (`--no-reorder`).
    pub reorder: bool,
    /// Compact materialization (`--no-compact`).
    pub compact: bool,
    /// Kernel fusion (`--no-fuse`).
    pub fuse: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { reorder: true, compact: true, fuse: true }
    }
}

impl Options {
    /// Every optimisation off (`-O0`).
    pub fn none() -> Self {
        Options { reorder: false, compact: false, fuse: false }
    }
}

/// A pass of the pipeline, for `--after` and for documentation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PassInfo {
    /// Kebab-case name, as given to `--after`.
    pub name: &'static str,
    /// What it does, in one line.
    pub summary: &'static str,
}
