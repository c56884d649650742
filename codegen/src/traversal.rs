//! The traversal template: row, edge-parallel and node-parallel traversals, their fused bodies
//! generated statement by statement.
//!
//! A group of `G` consecutive lanes (a power of two up to 32, the narrowest that covers the
//! widest register) handles one iteration row: a row of `Rows(space)`, an edge of an
//! edge-parallel traversal, a destination node of a node-parallel one. Registers of one
//! element are replicated in every lane; wider ones are distributed, element `e` in lane
//! `e % G`, slot `e / G` (`regs.rs`). Element-wise statements are lane-local; broadcasts, dot
//! products, concatenation and matrix-vector products read other lanes through shuffles or a
//! per-group shared-memory scratch (`cross.rs`). Replicated values are stored by lane 0.
//!
//! Node-parallel bodies are split into loops over the destination's incoming edges
//! (`passes.rs`), with softmax and aggregation as lane-local running reductions
//! (`reduce.rs`) and no atomics; edge-parallel destination adds are `atomicAdd`s. Each loop
//! takes the node's edges `G` at a time (`batch.rs`): scalar statements and reductions run
//! lane-parallel (lane `l` on edge `l` of the batch, merged across the group after the loop),
//! wide statements run per edge with the batch's rows fetched several edges ahead, and
//! edge-invariant statements run once per node (`modes.rs`).
//! `emit.rs` writes the row-local statements, `grad.rs` the derivative statements of backward
//! bodies, `kernel.rs` the kernel around them.

mod batch;
mod cross;
mod emit;
mod grad;
mod kernel;
mod modes;
mod passes;
mod reduce;
mod regs;
mod text;

use crate::error::Result;
use crate::spec::KernelLaunch;
use crate::writer::Writer;
use pigeon_ir::plan::{KernelId, Plan, Traversal};

/// Writes the kernel for `t` and returns how to launch it.
pub(crate) fn emit(
    w: &mut Writer,
    plan: &Plan,
    id: KernelId,
    t: &Traversal,
    name: &str,
) -> Result<KernelLaunch> {
    kernel::emit(w, plan, id, t, name)
}

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod tests;
