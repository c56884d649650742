//! The traversal template on the CPU: a body of statements compiled once per kernel
//! ([`compile`]: registers laid out, shapes checked, row indices resolved), then evaluated over
//! groups of rows in parallel (`body.rs`):
//!
//! - `Rows(space)`: chunks of consecutive rows; except a row traversal over edges whose only
//!   adds go into the compact rows of one endpoint (`add_into_compact.e`, the transpose of a
//!   compact-row read): it runs grouped by compact row over the compact table's row-to-edge
//!   CSR, each task owning its compact rows, for the same reason as the next item;
//! - `EdgeParallel`: on a GPU one thread per edge with atomic adds into destinations; on the
//!   CPU, atomics (a compare-and-swap loop per element) cost more than the arithmetic (measured:
//!   413 ms vs 40 ms for R-GCN's scatter on FB15k-237 with inverses, 2 cores), so the CPU runs
//!   the same body grouped by destination over the in-CSR: each task owns its destination
//!   rows, and `AddIntoDst` becomes a plain add. The result is the same sum;
//! - `NodeParallel`: one group per run of consecutive destination nodes holding about a task's
//!   worth of incoming edges (in CSR order, so a run's edges are one slice of the CSR), with
//!   per-edge registers in a per-task scratch, softmax and aggregation as reductions over each
//!   node's edges, node statements once per node, no atomics.

use super::body::{Body, Group, Reg, SOp, Span, StoreKind};
use super::index::{broadcast_offsets, resolve};
use super::{Env, Views};
use crate::error::{Result, RuntimeError};
use pigeon_ir::plan::{Level, RowSpace, Schedule, StmtOp, StoreMode, Traversal};
use pigeon_ir::{shape, EntityId, Shape};
use rayon::prelude::*;

/// Bytes of per-row register scratch one task of a `Rows` traversal aims at: the task's rows
/// times the body's register width stay in a core's L2 (measured on HGT's backward over ACM,
/// whose row kernels hold 1,200 floats of registers per row: 128 rows per task, 600 KB of
/// scratch, took 24% longer than 32).
const TASK_SCRATCH_BYTES: usize = 64 * 1024;
/// The most and fewest rows per task of a `Rows` traversal.
const ROWS_PER_TASK: (usize, usize) = (128, 8);

fn internal(m: String) -> RuntimeError {
    RuntimeError::Internal(m)
}

/// Runs one traversal kernel.
pub(super) fn run<T: super::float::Float>(
    env: &Env,
    t: &Traversal,
    views: &Views<T>,
) -> Result<()> {
    let body = compile(env, t, views)?;
    match (t.schedule, owner(t)) {
        (_, Owner::Compact(ep)) => {
            let table = env.compact(ep)?;
            grouped(&body, &table.row_offsets, &table.row_edges);
        }
        (Schedule::Rows(space), _) => rows(&body, env.count(space)?),
        (Schedule::EdgeParallel | Schedule::NodeParallel, _) => {
            let csr = env.csr()?;
            grouped(&body, &csr.offsets, &csr.edges);
        }
    }
    Ok(())
}

/// Who owns the rows an edge traversal adds into, so that its tasks can add without atomics:
/// grouped by destination (node- and edge-parallel traversals, over the in-CSR), or, for a row
/// traversal over edges whose only adds go into the compact rows of one endpoint, grouped by
/// compact row (over the compact table's row-to-edge CSR).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Owner {
    /// Rows in plain order; adds are atomic.
    Nobody,
    /// Each task owns the destinations of its edges.
    Dst,
    /// Each task owns the compact rows of its edges.
    Compact(pigeon_ir::Endpoint),
}

fn owner(t: &Traversal) -> Owner {
    match t.schedule {
        Schedule::NodeParallel | Schedule::EdgeParallel => Owner::Dst,
        Schedule::Rows(RowSpace::Edges) => {
            let mut adds = t.body.iter().filter_map(|s| match s.op {
                StmtOp::Store { mode, .. } if mode.accumulates() => Some(mode),
                _ => None,
            });
            match adds.next() {
                Some(StoreMode::AddIntoCompact(ep))
                    if adds.all(|m| m == StoreMode::AddIntoCompact(ep)) =>
                {
                    Owner::Compact(ep)
                }
                _ => Owner::Nobody,
            }
        }
        Schedule::Rows(_) => Owner::Nobody,
    }
}

/// Evaluates `body` over the edges of a CSR (`offsets`, `edges`) in runs of consecutive groups
/// (destination nodes or compact rows), in parallel; each task owns its groups.
fn grouped<T: super::float::Float>(body: &Body<T>, offsets: &[usize], edges: &[u32]) {
    let batches =
        node_batches(offsets, per_task::<T>(body.edge_width), per_task::<T>(body.node_width));
    batches.par_iter().for_each_init(Group::default, |g, &(a, b)| {
        let offsets = &offsets[a..=b];
        let edges = &edges[offsets[0]..offsets[b - a]];
        body.run(g, Span::Nodes { first: a, offsets, edges });
    });
}

/// Rows per task for registers of `width` values per row.
fn per_task<T>(width: usize) -> usize {
    let row_bytes = width.max(1) * std::mem::size_of::<T>();
    (TASK_SCRATCH_BYTES / row_bytes).clamp(ROWS_PER_TASK.1, ROWS_PER_TASK.0)
}

/// Runs of consecutive nodes `(first, end)` holding about `edges` incoming edges (a node with
/// more is a run of its own) and at most `nodes` nodes, from the in-CSR `offsets`.
fn node_batches(offsets: &[usize], edges: usize, nodes: usize) -> Vec<(usize, usize)> {
    let n = offsets.len().saturating_sub(1);
    let mut out = Vec::with_capacity(n / nodes.max(1) + 1);
    let mut a = 0;
    while a < n {
        let mut b = a + 1;
        while b < n && b - a < nodes && offsets[b + 1] - offsets[a] <= edges {
            b += 1;
        }
        out.push((a, b));
        a = b;
    }
    out
}

/// Evaluates `body` over rows `0..n` in parallel chunks.
fn rows<T: super::float::Float>(body: &Body<T>, n: usize) {
    let per_task = per_task::<T>(body.edge_width);
    let tasks = n.div_ceil(per_task);
    (0..tasks).into_par_iter().for_each_init(Group::default, |g, c| {
        let lo = c * per_task;
        body.run(g, Span::Rows { lo, n: per_task.min(n - lo) });
    });
}

/// Compiles a traversal body: registers, shapes, row indices, store targets.
pub(super) fn compile<'a, T: super::float::Float>(
    env: &Env<'a>,
    t: &Traversal,
    views: &Views<T>,
) -> Result<Body<'a, T>> {
    // Edge-parallel kernels run grouped by destination on the CPU (module doc), so their
    // destination adds are task-owned like node-parallel ones; so are compact adds of a row
    // traversal grouped by compact row.
    let node_parallel = t.schedule == Schedule::NodeParallel;
    let owner = owner(t);
    let edge_space = match t.schedule {
        Schedule::Rows(space) => space,
        Schedule::NodeParallel | Schedule::EdgeParallel => RowSpace::Edges,
    };
    let mut regs: Vec<Reg> = Vec::with_capacity(t.body.len());
    let mut ops = Vec::with_capacity(t.body.len());
    let (mut edge_width, mut node_width) = (0, 0);
    for (i, stmt) in t.body.iter().enumerate() {
        let here = |m: String| internal(format!("r{i}: {m}"));
        if stmt.level == Level::Node && !node_parallel {
            return Err(here("node-level statement outside a node-parallel traversal".into()));
        }
        let space = match stmt.level {
            Level::Edge => edge_space,
            Level::Node => RowSpace::Nodes,
        };
        // An operand: defined earlier, not a store, readable at this level.
        let operand = |r: pigeon_ir::plan::RegId, wants: Option<Level>| -> Result<&Reg> {
            let reg = regs
                .get(r.index())
                .ok_or_else(|| here(format!("uses {r} before its definition")))?;
            if reg.is_store {
                return Err(here(format!("uses {r}, which is a store")));
            }
            let ok = match wants {
                Some(l) => reg.level == l,
                None => stmt.level == Level::Edge || reg.level == Level::Node,
            };
            if !ok {
                return Err(here(format!("cannot read the {:?}-level {r} here", reg.level)));
            }
            Ok(reg)
        };
        let (op, shape) = match &stmt.op {
            StmtOp::Load { buf, index } => {
                let b = env.buffer(*buf)?;
                let map = resolve(env, *index, space, b.rows).map_err(|e| match e {
                    RuntimeError::Internal(m) => here(m),
                    e => e,
                })?;
                (SOp::Load { view: views.get(*buf), map }, b.shape.clone())
            }
            StmtOp::Const(c) => (SOp::Const(T::from_f64(*c)), Shape::scalar()),
            StmtOp::Unary { op, x } => {
                let x = operand(*x, None)?;
                (SOp::Unary(*op, x.id), x.shape.clone())
            }
            StmtOp::Binary { op, a, b } => {
                let (a, b) = (operand(*a, None)?, operand(*b, None)?);
                let out = shape::broadcast(&a.shape, &b.shape)
                    .ok_or_else(|| here(format!("{} and {} do not broadcast", a.shape, b.shape)))?;
                let (ia, ib) =
                    (broadcast_offsets(&a.shape, &out), broadcast_offsets(&b.shape, &out));
                (SOp::Binary { op: *op, a: a.id, b: b.id, ia, ib }, out)
            }
            StmtOp::Dot { a, b } => {
                let (a, b) = (operand(*a, None)?, operand(*b, None)?);
                let out = shape::dot(&a.shape, &b.shape)
                    .ok_or_else(|| here(format!("cannot dot {} with {}", a.shape, b.shape)))?;
                let k = a.shape.dims()[a.shape.rank() - 1];
                let lead = |s: &Shape| Shape(s.dims()[..s.rank() - 1].to_vec());
                let ia = broadcast_offsets(&lead(&a.shape), &out);
                let ib = broadcast_offsets(&lead(&b.shape), &out);
                (SOp::Dot { a: a.id, b: b.id, k, ia, ib }, out)
            }
            StmtOp::View { x, shape } => {
                let x = operand(*x, None)?;
                if x.shape.numel() != shape.numel() {
                    return Err(here(format!("cannot view {} as {shape}", x.shape)));
                }
                (SOp::Copy(x.id), shape.clone())
            }
            StmtOp::Concat { xs } => {
                let parts = xs.iter().map(|x| operand(*x, None)).collect::<Result<Vec<_>>>()?;
                let shapes: Vec<&Shape> = parts.iter().map(|p| &p.shape).collect();
                let out = shape::concat(&shapes)
                    .ok_or_else(|| here("operands do not concatenate".into()))?;
                let lead = out.dims()[..out.rank() - 1].iter().product();
                let xs = parts.iter().map(|p| (p.id, p.shape.dims()[p.shape.rank() - 1])).collect();
                (SOp::Concat { xs, lead }, out)
            }
            StmtOp::MatVec { x, w, select, form } => {
                let x = operand(*x, None)?;
                let wb = env.buffer(*w)?;
                let (out, f) = shape::linear(&x.shape, &wb.shape)
                    .ok_or_else(|| here(format!("cannot multiply {} by {}", x.shape, wb.shape)))?;
                if f != *form {
                    return Err(here(format!("{} x {} is {f:?}, not {form:?}", x.shape, wb.shape)));
                }
                let map = resolve(env, pigeon_ir::plan::RowIndex::Select(*select), space, wb.rows)?;
                (SOp::MatVec { x: x.id, w: views.get(*w), map, form: f }, out)
            }
            StmtOp::Softmax { x } => {
                if !node_parallel || stmt.level != Level::Edge {
                    return Err(here("softmax outside the edge level of a node traversal".into()));
                }
                let x = operand(*x, Some(Level::Edge))?;
                (SOp::Softmax(x.id), x.shape.clone())
            }
            StmtOp::Aggregate { op, group, x } => {
                if !node_parallel || stmt.level != Level::Node {
                    return Err(here(
                        "aggregation outside the node level of a node traversal (lower an \
                         edge-parallel sum to Store AddIntoDst)"
                            .into(),
                    ));
                }
                let x = operand(*x, Some(Level::Edge))?;
                (SOp::Aggregate { op: *op, group: *group, x: x.id }, x.shape.clone())
            }
            StmtOp::UnaryGrad { op, x, dy } => {
                let (x, dy) = (operand(*x, None)?, operand(*dy, None)?);
                if x.shape != dy.shape {
                    return Err(here(format!("operand {} and adjoint {}", x.shape, dy.shape)));
                }
                (SOp::UnaryGrad { op: *op, x: x.id, dy: dy.id }, x.shape.clone())
            }
            StmtOp::SumTo { x } => {
                let x = operand(*x, None)?;
                if shape::broadcast(&stmt.shape, &x.shape).as_ref() != Some(&x.shape) {
                    return Err(here(format!("cannot sum {} to {}", x.shape, stmt.shape)));
                }
                let to = broadcast_offsets(&stmt.shape, &x.shape);
                (SOp::SumTo { x: x.id, to }, stmt.shape.clone())
            }
            StmtOp::Transpose { x } => {
                let x = operand(*x, None)?;
                let (out, from) = transpose(&x.shape)
                    .ok_or_else(|| here(format!("cannot transpose a {} row", x.shape)))?;
                (SOp::Permute { x: x.id, from }, out)
            }
            StmtOp::Narrow { x, start, len } => {
                let x = operand(*x, None)?;
                let (out, from) = narrow(&x.shape, *start, *len).ok_or_else(|| {
                    here(format!("cannot take {len} from {start} of a {} row", x.shape))
                })?;
                (SOp::Permute { x: x.id, from }, out)
            }
            StmtOp::GroupSize { group } => {
                if !node_parallel || stmt.level != Level::Edge {
                    return Err(here(
                        "group_size outside the edge level of a node traversal".into(),
                    ));
                }
                (SOp::GroupSize(*group), Shape::scalar())
            }
            StmtOp::MaxGrad { group, x, dy } => {
                if !node_parallel || stmt.level != Level::Edge {
                    return Err(here("max_grad outside the edge level of a node traversal".into()));
                }
                let (x, dy) = (operand(*x, Some(Level::Edge))?, operand(*dy, Some(Level::Edge))?);
                if x.shape != dy.shape {
                    return Err(here(format!("operand {} and adjoint {}", x.shape, dy.shape)));
                }
                (SOp::MaxGrad { group: *group, x: x.id, dy: dy.id }, x.shape.clone())
            }
            StmtOp::Store { buf, x, mode } => {
                let x = operand(*x, None)?;
                let b = env.buffer(*buf)?;
                if b.shape.numel() != x.shape.numel() {
                    return Err(here(format!("stores {} into rows of {}", x.shape, b.shape)));
                }
                let kind =
                    store_kind(env, *mode, stmt.level, owner, space, b.rows)?.ok_or_else(|| {
                        here(format!("cannot {mode:?} a {space:?} row into a {:?} buffer", b.rows))
                    })?;
                (SOp::Store { view: views.get(*buf), x: x.id, kind }, Shape::scalar())
            }
        };
        let is_store = matches!(op, SOp::Store { .. });
        if !is_store && shape != stmt.shape {
            return Err(here(format!("computes {shape}, but is declared {}", stmt.shape)));
        }
        let width = if is_store { 0 } else { shape.numel() };
        let slot = match stmt.level {
            Level::Edge => &mut edge_width,
            Level::Node => &mut node_width,
        };
        regs.push(Reg { id: i, level: stmt.level, off: *slot, width, shape, is_store });
        *slot += width;
        ops.push(op);
    }
    let graph = env.graph;
    let rows = matches!(t.schedule, Schedule::Rows(_));
    let body = Body {
        regs,
        ops,
        edge_width,
        node_width,
        rel: &graph.rel,
        direct: Vec::new(),
        source: Vec::new(),
        fused: Vec::new(),
    };
    Ok(body.with_direct_loads().with_fusion(rows))
}

/// The shape of a transposed row and, per output element, the element it reads.
fn transpose(x: &Shape) -> Option<(Shape, Vec<usize>)> {
    let [lead @ .., k, n] = x.dims() else { return None };
    let (k, n) = (*k, *n);
    let batch: usize = lead.iter().product();
    let from = (0..batch)
        .flat_map(|b| (0..n).flat_map(move |j| (0..k).map(move |i| b * k * n + i * n + j)))
        .collect();
    Some((Shape(lead.iter().copied().chain([n, k]).collect()), from))
}

/// The shape of a row narrowed to `start..start + len` of its last axis and, per output
/// element, the element it reads.
fn narrow(x: &Shape, start: usize, len: usize) -> Option<(Shape, Vec<usize>)> {
    let [lead @ .., last] = x.dims() else { return None };
    let last = *last;
    if len == 0 || start + len > last {
        return None;
    }
    let batch: usize = lead.iter().product();
    let from = (0..batch).flat_map(|b| (start..start + len).map(move |j| b * last + j)).collect();
    Some((Shape(lead.iter().copied().chain([len]).collect()), from))
}

/// How a store writes, given where it runs; `None` when the buffer does not fit.
fn store_kind<'a>(
    env: &Env<'a>,
    mode: StoreMode,
    level: Level,
    owner: Owner,
    space: RowSpace,
    rows: RowSpace,
) -> Result<Option<StoreKind<'a>>> {
    let graph = env.graph;
    Ok(match (mode, level) {
        (StoreMode::Write, Level::Edge) if rows == space => Some(StoreKind::Write),
        (StoreMode::Write, Level::Node) if rows == RowSpace::Nodes => Some(StoreKind::WriteNode),
        (StoreMode::AddIntoDst, Level::Node) if rows == RowSpace::Nodes => Some(StoreKind::AddNode),
        (StoreMode::AddIntoDst, Level::Edge)
            if rows == RowSpace::Nodes && space == RowSpace::Edges =>
        {
            Some(if owner == Owner::Dst {
                StoreKind::AddNode
            } else {
                StoreKind::AddAtomic(&graph.dst)
            })
        }
        (StoreMode::AddIntoSrc, Level::Edge)
            if rows == RowSpace::Nodes && space == RowSpace::Edges =>
        {
            Some(StoreKind::AddAtomic(&graph.src))
        }
        // Compact rows add into their node.
        (StoreMode::AddIntoSrc | StoreMode::AddIntoDst, Level::Edge)
            if rows == RowSpace::Nodes && mode.stores_from(space) =>
        {
            match space {
                RowSpace::Compact(ep) => Some(StoreKind::AddAtomic(&env.compact(ep)?.node)),
                _ => None,
            }
        }
        (StoreMode::AddIntoCompact(ep), Level::Edge)
            if rows == RowSpace::Compact(ep) && space == RowSpace::Edges =>
        {
            Some(if owner == Owner::Compact(ep) {
                StoreKind::AddNode
            } else {
                StoreKind::AddAtomic(&env.compact(ep)?.edge_row)
            })
        }
        _ => None,
    })
}
