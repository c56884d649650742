//! How each edge statement of a node-parallel body is evaluated, so that the edges of a node
//! are processed `G` at a time instead of one after the other (`batch.rs`):
//!
//! - [`Mode::Invariant`]: the same value for every edge of the node (constants, loads of the
//!   destination's row, of a single-row buffer, or of the destination type's slice, and
//!   arithmetic on those): computed once per node, before the first loop;
//! - [`Mode::Lane`]: a scalar that depends on the edge, computed from scalars only (loads of
//!   one element, scalar arithmetic, a scalar softmax value, a scalar edge store): lane `l` of
//!   the group computes it for edge `l` of a batch;
//! - [`Mode::Seq`]: everything else (wide values, cross-lane dot products, values computed from
//!   them, destination adds): the whole group computes it for each edge of the batch in turn,
//!   reading lane values through shuffles;
//! - [`Mode::Node`]: a node statement.
//!
//! Example (RGAT, `pigeon dump examples/rgat.rgnn --stage plan`): the score `r0..r3` and the
//! softmax value `r4` are lane statements; `r5` (a 64-wide row) and `r6 = r4 * r5` are
//! sequential. In HGT, `r0 = edge load b6 dst` and `r5 = edge load b15 this` are invariant,
//! `r3` (a per-relation scalar) is a lane statement, and the dot product `r2` and everything
//! computed from it is sequential.

use super::passes::operands;
use super::regs::Reg;
use pigeon_ir::plan::{Level, Plan, RowIndex, RowSpace, StmtOp, StoreMode, Traversal};
use pigeon_ir::{AggGroup, Endpoint, EntityId, Select};

/// How a statement of a node-parallel body is evaluated.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A node statement.
    Node,
    /// Independent of the edge: once per node, before the edge loops.
    Invariant,
    /// A scalar of the edge, computed by each lane for its own edge of a batch.
    Lane,
    /// Computed by the whole group for each edge of a batch in turn.
    Seq,
}

/// The mode of every statement of node-parallel body `t` (operands are already checked).
pub(crate) fn modes(plan: &Plan, t: &Traversal, regs: &[Reg]) -> Vec<Mode> {
    let mut modes: Vec<Mode> = Vec::with_capacity(t.body.len());
    for (i, stmt) in t.body.iter().enumerate() {
        let mode = if regs[i].level == Level::Node {
            Mode::Node
        } else if invariant(plan, &stmt.op, &modes) {
            Mode::Invariant
        } else if lane(&stmt.op, &regs[i], regs, &modes) {
            Mode::Lane
        } else {
            Mode::Seq
        };
        modes.push(mode);
    }
    modes
}

/// Whether an edge statement's value is the same for every edge of the destination.
fn invariant(plan: &Plan, op: &StmtOp, modes: &[Mode]) -> bool {
    let one_row = |b| plan.buffers.get(b).is_some_and(|b| b.rows == RowSpace::One);
    let all = |rs: Vec<pigeon_ir::plan::RegId>| {
        rs.iter().all(|r| modes.get(r.index()) == Some(&Mode::Invariant))
    };
    match op {
        StmtOp::Const(_) => true,
        StmtOp::Load { buf, index } => {
            one_row(*buf)
                || matches!(
                    index,
                    RowIndex::Node(Endpoint::Dst) | RowIndex::Select(Select::DstType)
                )
        }
        StmtOp::Unary { .. }
        | StmtOp::Binary { .. }
        | StmtOp::View { .. }
        | StmtOp::Dot { .. }
        | StmtOp::UnaryGrad { .. }
        | StmtOp::SumTo { .. }
        | StmtOp::Transpose { .. }
        | StmtOp::Narrow { .. } => all(operands(op)),
        StmtOp::GroupSize { group } => *group == AggGroup::All,
        StmtOp::Concat { xs } => all(xs.clone()),
        StmtOp::MatVec { x, w, select, .. } => {
            all(vec![*x]) && (one_row(*w) || *select == Select::DstType)
        }
        _ => false,
    }
}

/// Whether an edge statement is a scalar computed lane-locally from scalars that are not
/// sequential (a store only when it overwrites the edge's own row). Every operation of
/// width-1 operands with a width-1 output is lane-local: a dot product of two scalars is a
/// product, a matrix-vector product of a scalar a multiplication, a softmax value `exp(x - m)
/// / d` once its statistics are merged.
fn lane(op: &StmtOp, reg: &Reg, regs: &[Reg], modes: &[Mode]) -> bool {
    let scalar_operands = operands(op).iter().all(|r| {
        let i = r.index();
        regs.get(i).is_some_and(|g| g.width == 1) && modes.get(i).is_some_and(|m| *m != Mode::Seq)
    });
    let scalar_self = match op {
        StmtOp::Store { mode, .. } => *mode == StoreMode::Write,
        StmtOp::Aggregate { .. } => false,
        _ => reg.width == 1,
    };
    scalar_operands && scalar_self
}
