//! Schedule and buffer choice on a kernel plan, from the graph's sizes: node- or edge-parallel
//! traversals ([`choose_schedules`]) and buffer reuse by lifetime ([`assign_slots`]).
//!
//! Implements the schedule side of PIGEON / Hector's "GEMM and traversal templates" (arXiv
//! 2301.06284): the traversal template is instantiated node-parallel (one task per destination
//! over its incoming-edge CSR, register accumulation, no atomics) or edge-parallel (one task
//! per edge, atomic adds into the destination), and intermediate buffers share memory when
//! their lifetimes do not overlap.
//!
//! # Schedule rule
//!
//! A node-parallel traversal can become edge-parallel when it has no softmax, its only
//! reductions are `aggregate sum` over all incoming edges (and no `group_size` or `max_grad`,
//! which need the destination's edges together), and its node level does nothing but
//! store those sums: each store becomes an edge-level `store ... add_into_dst`. It is made
//! edge-parallel when the in-degrees are skewed: `max_in_degree >= SKEW_EDGE_PARALLEL * mean
//! in-degree` (mean = edges / nodes). Node-parallel tasks take as long as their node's
//! in-degree, so a hub of degree `max` keeps one worker busy while the others idle; beyond that
//! ratio the atomics of the edge-parallel form cost less. Softmax, mean and max always stay
//! node-parallel.
//!
//! # Example
//!
//! ```text
//! k5 = traversal node_parallel {          k5 = traversal edge_parallel {
//!     r0 = edge load b8 this                  r0 = edge load b8 this
//!     r1 = node aggregate sum r0      =>      r1 = edge store b9 r0 add_into_dst
//!     r2 = node store b9 r1 write         }
//! }
//! ```
//!
//! # Slots
//!
//! [`assign_slots`] gives every temp buffer a slot. A temp lives from the kernel that writes it
//! to the last kernel that reads it; temps whose lifetimes do not overlap may share a slot,
//! whose size is that of its largest temp on this graph. Temps are placed in order of their
//! first write, each into the free slot that fits it best (the smallest one large enough, else
//! the largest one, which grows), or a new slot.

use pigeon_ir::inter::{AggGroup, AggOp, DType, Endpoint, Shape};
use pigeon_ir::plan::{
    BufferId, BufferKind, Epilogue, Kernel, Level, Plan, RegId, RowSpace, Schedule, Stmt, StmtOp,
    StoreMode, Traversal,
};
use pigeon_ir::{EntityId, GraphStats};

/// The in-degree skew (`max / mean`) from which sum-only traversals run edge-parallel.
pub const SKEW_EDGE_PARALLEL: f64 = 16.0;

/// Chooses node- or edge-parallel schedules for the plan's traversals on a graph with `stats`
/// (see the module doc for the rule).
pub fn choose_schedules(plan: &mut Plan, stats: &GraphStats) {
    let mean = if stats.nodes == 0 { 0.0 } else { stats.edges as f64 / stats.nodes as f64 };
    let skewed = mean > 0.0 && stats.max_in_degree as f64 >= SKEW_EDGE_PARALLEL * mean;
    if !skewed {
        return;
    }
    for id in plan.kernels.keys().collect::<Vec<_>>() {
        if let Kernel::Traversal(t) = &plan.kernels[id] {
            if let Some(edge) = to_edge_parallel(t) {
                plan.kernels[id] = Kernel::Traversal(edge);
            }
        }
    }
}

/// The edge-parallel form of a node-parallel traversal whose node level only stores sums over
/// all incoming edges, or `None`.
pub fn to_edge_parallel(t: &Traversal) -> Option<Traversal> {
    if t.schedule != Schedule::NodeParallel {
        return None;
    }
    let mut map: Vec<Option<RegId>> = vec![None; t.body.len()];
    let mut body: Vec<Stmt> = Vec::new();
    for (i, s) in t.body.iter().enumerate() {
        let remap = |r: RegId| map.get(r.index()).copied().flatten();
        let stmt = match (&s.level, &s.op) {
            (Level::Edge, StmtOp::Softmax { .. })
            | (Level::Edge, StmtOp::GroupSize { .. })
            | (Level::Edge, StmtOp::MaxGrad { .. }) => return None,
            (Level::Edge, op) => Stmt { op: remap_op(op, &remap)?, ..s.clone() },
            (Level::Node, StmtOp::Aggregate { op: AggOp::Sum, group: AggGroup::All, x }) => {
                // The sum of edge register x: later stores add x itself.
                map[i] = remap(*x);
                continue;
            }
            (Level::Node, StmtOp::Store { buf, x, mode: StoreMode::Write }) => {
                let is_sum = matches!(t.body.get(x.index())?.op, StmtOp::Aggregate { .. });
                if !is_sum {
                    return None;
                }
                let x = remap(*x)?;
                Stmt {
                    level: Level::Edge,
                    op: StmtOp::Store { buf: *buf, x, mode: StoreMode::AddIntoDst },
                    shape: Shape::scalar(),
                }
            }
            (Level::Node, _) => return None,
        };
        body.push(stmt);
        map[i] = Some(RegId::new(body.len() - 1));
    }
    Some(Traversal { schedule: Schedule::EdgeParallel, body })
}

/// `op` with its registers renamed, or `None` when one has no new name.
fn remap_op(op: &StmtOp, f: &dyn Fn(RegId) -> Option<RegId>) -> Option<StmtOp> {
    Some(match op {
        StmtOp::Load { .. } | StmtOp::Const(_) => op.clone(),
        StmtOp::Unary { op, x } => StmtOp::Unary { op: *op, x: f(*x)? },
        StmtOp::Binary { op, a, b } => StmtOp::Binary { op: *op, a: f(*a)?, b: f(*b)? },
        StmtOp::Dot { a, b } => StmtOp::Dot { a: f(*a)?, b: f(*b)? },
        StmtOp::View { x, shape } => StmtOp::View { x: f(*x)?, shape: shape.clone() },
        StmtOp::Concat { xs } => {
            StmtOp::Concat { xs: xs.iter().map(|&x| f(x)).collect::<Option<_>>()? }
        }
        StmtOp::MatVec { x, w, select, form } => {
            StmtOp::MatVec { x: f(*x)?, w: *w, select: *select, form: form.clone() }
        }
        StmtOp::Softmax { x } => StmtOp::Softmax { x: f(*x)? },
        StmtOp::Aggregate { op, group, x } => {
            StmtOp::Aggregate { op: *op, group: *group, x: f(*x)? }
        }
        StmtOp::Store { buf, x, mode } => StmtOp::Store { buf: *buf, x: f(*x)?, mode: *mode },
        StmtOp::UnaryGrad { op, x, dy } => StmtOp::UnaryGrad { op: *op, x: f(*x)?, dy: f(*dy)? },
        StmtOp::SumTo { x } => StmtOp::SumTo { x: f(*x)? },
        StmtOp::Transpose { x } => StmtOp::Transpose { x: f(*x)? },
        StmtOp::Narrow { x, start, len } => StmtOp::Narrow { x: f(*x)?, start: *start, len: *len },
        StmtOp::GroupSize { group } => StmtOp::GroupSize { group: *group },
        StmtOp::MaxGrad { group, x, dy } => {
            StmtOp::MaxGrad { group: *group, x: f(*x)?, dy: f(*dy)? }
        }
    })
}

/// What buffer reuse saved.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SlotReport {
    /// Number of temp buffers.
    pub temps: usize,
    /// Number of slots they share.
    pub slots: usize,
    /// Bytes the temps would take without reuse.
    pub temp_bytes: usize,
    /// Bytes of the slots.
    pub slot_bytes: usize,
}

impl SlotReport {
    /// Bytes saved by reuse.
    pub fn saved(&self) -> usize {
        self.temp_bytes.saturating_sub(self.slot_bytes)
    }
}

impl std::fmt::Display for SlotReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} temp buffers in {} slots: {} bytes instead of {} ({} saved)",
            self.temps,
            self.slots,
            self.slot_bytes,
            self.temp_bytes,
            self.saved()
        )
    }
}

/// Rows of a row space on a graph.
pub fn space_rows(space: RowSpace, stats: &GraphStats) -> usize {
    match space {
        RowSpace::Nodes => stats.nodes,
        RowSpace::Edges => stats.edges,
        RowSpace::Compact(Endpoint::Src) => stats.compact_src_rows,
        RowSpace::Compact(Endpoint::Dst) => stats.compact_dst_rows,
        RowSpace::Relations => stats.relations,
        RowSpace::NodeTypes => stats.node_types,
        RowSpace::One => 1,
    }
}

/// Bytes of buffer `b` on a graph.
pub fn buffer_bytes(plan: &Plan, b: BufferId, stats: &GraphStats) -> usize {
    let buf = &plan.buffers[b];
    let elem = match buf.dtype {
        DType::F32 => 4,
        DType::F64 => 8,
    };
    space_rows(buf.rows, stats) * buf.shape.numel() * elem
}

/// The buffers kernel `k` reads and writes.
pub fn kernel_uses(k: &Kernel) -> (Vec<BufferId>, Vec<BufferId>) {
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    match k {
        Kernel::Gemm(g) => {
            reads.extend([g.a, g.b]);
            for e in &g.epilogue {
                if let Epilogue::Scale { buf, .. } | Epilogue::Add { buf, .. } = e {
                    reads.push(*buf);
                }
            }
            writes.push(g.c);
        }
        Kernel::WeightGrad(g) => {
            reads.extend(g.a.map(|a| a.0));
            reads.push(g.b.0);
            writes.push(g.c);
        }
        Kernel::Traversal(t) => {
            for s in &t.body {
                match &s.op {
                    StmtOp::Load { buf, .. } => reads.push(*buf),
                    StmtOp::MatVec { w, .. } => reads.push(*w),
                    StmtOp::Store { buf, .. } => writes.push(*buf),
                    _ => {}
                }
            }
        }
    }
    (reads, writes)
}

/// Assigns reuse slots to the plan's temp buffers for a graph with `stats` (see the module
/// doc) and reports the bytes saved.
pub fn assign_slots(plan: &mut Plan, stats: &GraphStats) -> SlotReport {
    let n = plan.buffers.len();
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    for (i, k) in plan.kernels.values().enumerate() {
        let (reads, writes) = kernel_uses(k);
        for b in writes {
            first[b.index()] = first[b.index()].min(i);
            last[b.index()] = last[b.index()].max(i);
        }
        for b in reads {
            last[b.index()] = last[b.index()].max(i);
        }
    }
    let mut temps: Vec<BufferId> = plan
        .buffers
        .iter()
        .filter(|(b, buf)| buf.kind == BufferKind::Temp && first[b.index()] != usize::MAX)
        .map(|(b, _)| b)
        .collect();
    temps.sort_by_key(|b| (first[b.index()], *b));
    // (capacity in bytes, last kernel using it)
    let mut slots: Vec<(usize, usize)> = Vec::new();
    let mut report = SlotReport { temps: temps.len(), ..SlotReport::default() };
    for b in temps {
        let bytes = buffer_bytes(plan, b, stats);
        report.temp_bytes += bytes;
        let free = |s: &(usize, usize)| s.1 < first[b.index()];
        let fit = (0..slots.len())
            .filter(|&s| free(&slots[s]) && slots[s].0 >= bytes)
            .min_by_key(|&s| slots[s].0);
        let grow = (0..slots.len()).filter(|&s| free(&slots[s])).max_by_key(|&s| slots[s].0);
        let s = match fit.or(grow) {
            Some(s) => s,
            None => {
                slots.push((0, 0));
                slots.len() - 1
            }
        };
        slots[s] = (slots[s].0.max(bytes), last[b.index()]);
        plan.buffers[b].slot = Some(s as u32);
    }
    report.slots = slots.len();
    report.slot_bytes = slots.iter().map(|s| s.0).sum();
    report
}
