//! Register analysis of a traversal body: each statement's level, shape and width, checked
//! exactly as the CPU back end's `compile` checks them (`runtime/src/cpu/traversal.rs`), so a
//! body the CPU rejects is rejected here with [`CodegenError::Internal`]; and the lane layout
//! of a register in a group of `G` lanes.
//!
//! Layout: a register of width 1 is *replicated* (every lane of the group holds it); a wider
//! one is *distributed*: element `e` lives in lane `e % G`, slot `e / G`.

use crate::error::{internal, unsupported, CodegenError, Result};
use crate::index::row_expr;
use crate::params::Params;
use crate::spec::GraphArray;
use pigeon_ir::plan::{
    Level, Plan, RegId, RowIndex, RowSpace, Schedule, Stmt, StmtOp, StoreMode, Traversal,
};
use pigeon_ir::{shape, AggGroup, EntityId, Shape};

/// One register (one statement) of a body.
#[derive(Clone, Debug)]
pub(crate) struct Reg {
    /// Edge (row) or node level.
    pub level: Level,
    /// Per-row shape (`[]` for stores).
    pub shape: Shape,
    /// Number of elements (0 for stores).
    pub width: usize,
    /// Whether the statement is a store (defines no value).
    pub is_store: bool,
}

impl Reg {
    /// Whether every lane holds the (single) value.
    pub fn replicated(&self) -> bool {
        self.width == 1
    }
}

/// How a store writes (mirrors the CPU back end's `StoreKind`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum StoreKind {
    /// Overwrite the statement's row.
    Write,
    /// Overwrite the group's node row.
    WriteNode,
    /// Add into the group's node row (the group owns it).
    AddNode,
    /// Atomically add into the row this graph array gives the edge: its destination node,
    /// its source node (in every schedule: sources race) or its compact row.
    AddAtomic(GraphArray),
}

/// The row space edge-level statements iterate over.
pub(crate) fn edge_space(s: Schedule) -> RowSpace {
    match s {
        Schedule::Rows(space) => space,
        Schedule::NodeParallel | Schedule::EdgeParallel => RowSpace::Edges,
    }
}

/// The row space of a statement's rows.
pub(crate) fn stmt_space(s: Schedule, level: Level) -> RowSpace {
    match level {
        Level::Edge => edge_space(s),
        Level::Node => RowSpace::Nodes,
    }
}

/// Checks every statement of `t` and returns its registers.
pub(crate) fn analyze(plan: &Plan, t: &Traversal) -> Result<Vec<Reg>> {
    let mut regs: Vec<Reg> = Vec::with_capacity(t.body.len());
    for (i, stmt) in t.body.iter().enumerate() {
        let reg =
            check_stmt(plan, t.schedule, &regs, stmt).map_err(|e| relabel(e, &format!("r{i}")))?;
        regs.push(reg);
    }
    Ok(regs)
}

fn relabel(e: CodegenError, at: &str) -> CodegenError {
    match e {
        CodegenError::Internal(m) => CodegenError::Internal(format!("{at}: {m}")),
        CodegenError::Unsupported(m) => CodegenError::Unsupported(format!("{at}: {m}")),
    }
}

/// An operand of a statement at `level`: defined earlier, not a store, readable there.
pub(crate) fn operand(regs: &[Reg], r: RegId, level: Level, wants: Option<Level>) -> Result<&Reg> {
    let reg =
        regs.get(r.index()).ok_or_else(|| internal(format!("uses {r} before its definition")))?;
    if reg.is_store {
        return Err(internal(format!("uses {r}, which is a store")));
    }
    let ok = match wants {
        Some(l) => reg.level == l,
        None => level == Level::Edge || reg.level == Level::Node,
    };
    if !ok {
        return Err(internal(format!("cannot read the {:?}-level {r} here", reg.level)));
    }
    Ok(reg)
}

fn buffer_shape(plan: &Plan, b: pigeon_ir::plan::BufferId) -> Result<(&Shape, RowSpace)> {
    let buf = plan.buffers.get(b).ok_or_else(|| internal(format!("no buffer {b}")))?;
    Ok((&buf.shape, buf.rows))
}

/// Whether `index` resolves for a `space` row reading a `rows` buffer (the expression itself is
/// built at emission, with the kernel's parameters).
fn check_index(index: RowIndex, space: RowSpace, rows: RowSpace) -> Result<()> {
    let plan = Plan::default();
    let mut scratch = Params::new(&plan, []);
    row_expr(&mut scratch, index, space, rows, "i").map(|_| ())
}

fn check_stmt(plan: &Plan, sched: Schedule, regs: &[Reg], stmt: &Stmt) -> Result<Reg> {
    let node_parallel = sched == Schedule::NodeParallel;
    let level = stmt.level;
    if level == Level::Node && !node_parallel {
        return Err(internal("node-level statement outside a node-parallel traversal"));
    }
    let space = stmt_space(sched, level);
    let op = |r: RegId| operand(regs, r, level, None);
    let shape = match &stmt.op {
        StmtOp::Load { buf, index } => {
            let (shape, rows) = buffer_shape(plan, *buf)?;
            check_index(*index, space, rows)?;
            shape.clone()
        }
        StmtOp::Const(_) => Shape::scalar(),
        StmtOp::Unary { x, .. } => op(*x)?.shape.clone(),
        StmtOp::Binary { a, b, .. } => {
            let (a, b) = (op(*a)?, op(*b)?);
            shape::broadcast(&a.shape, &b.shape)
                .ok_or_else(|| internal(format!("{} and {} do not broadcast", a.shape, b.shape)))?
        }
        StmtOp::Dot { a, b } => {
            let (a, b) = (op(*a)?, op(*b)?);
            shape::dot(&a.shape, &b.shape)
                .ok_or_else(|| internal(format!("cannot dot {} with {}", a.shape, b.shape)))?
        }
        StmtOp::View { x, shape } => {
            let x = op(*x)?;
            if x.shape.numel() != shape.numel() {
                return Err(internal(format!("cannot view {} as {shape}", x.shape)));
            }
            shape.clone()
        }
        StmtOp::Concat { xs } => {
            let parts = xs.iter().map(|x| op(*x)).collect::<Result<Vec<_>>>()?;
            let shapes: Vec<&Shape> = parts.iter().map(|p| &p.shape).collect();
            shape::concat(&shapes).ok_or_else(|| internal("operands do not concatenate"))?
        }
        StmtOp::MatVec { x, w, select, form } => {
            let x = op(*x)?;
            let (wshape, rows) = buffer_shape(plan, *w)?;
            let (out, f) = shape::linear(&x.shape, wshape)
                .ok_or_else(|| internal(format!("cannot multiply {} by {wshape}", x.shape)))?;
            if f != *form {
                return Err(internal(format!("{} x {wshape} is {f:?}, not {form:?}", x.shape)));
            }
            check_index(RowIndex::Select(*select), space, rows)?;
            out
        }
        StmtOp::Softmax { x } => {
            if !node_parallel || level != Level::Edge {
                return Err(internal("softmax outside the edge level of a node traversal"));
            }
            operand(regs, *x, level, Some(Level::Edge))?.shape.clone()
        }
        StmtOp::Aggregate { x, .. } => {
            if !node_parallel || level != Level::Node {
                return Err(internal("aggregation outside the node level of a node traversal"));
            }
            operand(regs, *x, level, Some(Level::Edge))?.shape.clone()
        }
        StmtOp::Store { buf, x, mode } => {
            let x = op(*x)?;
            let (shape, rows) = buffer_shape(plan, *buf)?;
            if shape.numel() != x.shape.numel() {
                return Err(internal(format!("stores {} into rows of {shape}", x.shape)));
            }
            store_kind(*mode, level, sched, rows)?;
            return Ok(Reg { level, shape: Shape::scalar(), width: 0, is_store: true });
        }
        StmtOp::UnaryGrad { x, dy, .. } => {
            let (x, dy) = (op(*x)?, op(*dy)?);
            if x.shape != dy.shape {
                return Err(internal(format!("operand {} and adjoint {}", x.shape, dy.shape)));
            }
            x.shape.clone()
        }
        StmtOp::SumTo { x } => {
            let x = op(*x)?;
            if shape::broadcast(&stmt.shape, &x.shape).as_ref() != Some(&x.shape) {
                return Err(internal(format!("cannot sum {} to {}", x.shape, stmt.shape)));
            }
            stmt.shape.clone()
        }
        StmtOp::Transpose { x } => {
            let x = op(*x)?;
            let [lead @ .., k, n] = x.shape.dims() else {
                return Err(internal(format!("cannot transpose a {} row", x.shape)));
            };
            Shape(lead.iter().copied().chain([*n, *k]).collect())
        }
        StmtOp::Narrow { x, start, len } => {
            let x = op(*x)?;
            match x.shape.dims() {
                [lead @ .., last] if *len > 0 && start + len <= *last => {
                    Shape(lead.iter().copied().chain([*len]).collect())
                }
                _ => {
                    return Err(internal(format!(
                        "cannot take {len} from {start} of a {} row",
                        x.shape
                    )))
                }
            }
        }
        StmtOp::GroupSize { .. } => {
            if !node_parallel || level != Level::Edge {
                return Err(internal("group_size outside the edge level of a node traversal"));
            }
            Shape::scalar()
        }
        StmtOp::MaxGrad { group, x, dy } => {
            if !node_parallel || level != Level::Edge {
                return Err(internal("max_grad outside the edge level of a node traversal"));
            }
            let x = operand(regs, *x, level, Some(Level::Edge))?;
            let dy = operand(regs, *dy, level, Some(Level::Edge))?;
            if x.shape != dy.shape {
                return Err(internal(format!("operand {} and adjoint {}", x.shape, dy.shape)));
            }
            if *group == AggGroup::PerRelation {
                return Err(unsupported(
                    "`max_grad per_relation` (the derivative of a per-relation max aggregation) \
                     on CUDA yet: it needs each relation's maximum before the relation's edges \
                     are revisited; it runs on the CPU back end",
                ));
            }
            x.shape.clone()
        }
    };
    if shape != stmt.shape {
        return Err(internal(format!("computes {shape}, but is declared {}", stmt.shape)));
    }
    if shape.numel() == 0 {
        return Err(unsupported(format!("registers without elements ({shape})")));
    }
    Ok(Reg { level, width: shape.numel(), shape, is_store: false })
}

/// How a store of `level` writes a buffer with rows `rows` in a `sched` traversal (the CPU's
/// `store_kind`, except that edge-parallel destination adds are atomic on the GPU).
pub(crate) fn store_kind(
    mode: StoreMode,
    level: Level,
    sched: Schedule,
    rows: RowSpace,
) -> Result<StoreKind> {
    let space = stmt_space(sched, level);
    let kind = match (mode, level) {
        (StoreMode::Write, Level::Edge) if rows == space => Some(StoreKind::Write),
        (StoreMode::Write, Level::Node) if rows == RowSpace::Nodes => Some(StoreKind::WriteNode),
        (StoreMode::AddIntoDst, Level::Node) if rows == RowSpace::Nodes => Some(StoreKind::AddNode),
        (StoreMode::AddIntoDst, Level::Edge)
            if rows == RowSpace::Nodes && space == RowSpace::Edges =>
        {
            Some(if sched == Schedule::NodeParallel {
                StoreKind::AddNode
            } else {
                StoreKind::AddAtomic(GraphArray::Dst)
            })
        }
        (StoreMode::AddIntoSrc, Level::Edge)
            if rows == RowSpace::Nodes && space == RowSpace::Edges =>
        {
            Some(StoreKind::AddAtomic(GraphArray::Src))
        }
        // Compact rows add into their node.
        (StoreMode::AddIntoSrc | StoreMode::AddIntoDst, Level::Edge)
            if rows == RowSpace::Nodes && mode.stores_from(space) =>
        {
            match space {
                RowSpace::Compact(ep) => Some(StoreKind::AddAtomic(GraphArray::CompactNode(ep))),
                _ => None,
            }
        }
        (StoreMode::AddIntoCompact(ep), Level::Edge)
            if rows == RowSpace::Compact(ep) && space == RowSpace::Edges =>
        {
            Some(StoreKind::AddAtomic(GraphArray::CompactEdgeRow(ep)))
        }
        _ => None,
    };
    kind.ok_or_else(|| internal(format!("cannot {mode:?} a {space:?} row into a {rows:?} buffer")))
}
