//! What each kernel reads and writes, the layouts a plan needs, and the access rules that make
//! the parallel kernels race-free (checked before each kernel runs):
//!
//! 1. every buffer a kernel names exists; inputs and weights are never written;
//! 2. a temp or output is read only after an earlier kernel wrote it;
//! 3. two buffers written by one kernel never share a storage (slot);
//! 4. a storage written by a GEMM is not read by it; a storage written by a traversal is read
//!    by it only as the same buffer, through `RowIndex::This`, and not at all when the
//!    traversal accumulates into it (`AddIntoDst`, `AddIntoSrc`).

use super::store::Storage;
use super::Env;
use crate::error::{Result, RuntimeError};
use pigeon_ir::plan::{
    BufferId, BufferKind, Epilogue, Kernel, Layout, Plan, RowIndex, RowSpace, Schedule, StmtOp,
    StoreMode,
};
use pigeon_ir::{EntityId, Select};

/// The writes of one kernel: each buffer, and whether it is accumulated into.
pub(crate) struct KernelAccess {
    pub writes: Vec<(BufferId, bool)>,
}

/// Buffers read, each with its row index (`None` for GEMM operands and matvec weights).
type Reads = Vec<(BufferId, Option<RowIndex>)>;

/// The reads (buffer, how) and writes (buffer, mode) of a kernel.
fn reads_writes(kernel: &Kernel) -> (Reads, Vec<(BufferId, StoreMode)>) {
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    match kernel {
        Kernel::Gemm(g) => {
            reads.push((g.a, None));
            reads.push((g.b, None));
            for e in &g.epilogue {
                if let Epilogue::Scale { buf, .. } | Epilogue::Add { buf, .. } = e {
                    reads.push((*buf, None));
                }
            }
            writes.push((g.c, g.store));
        }
        Kernel::WeightGrad(g) => {
            reads.extend(g.a.map(|(a, _)| (a, None)));
            reads.push((g.b.0, None));
            writes.push((g.c, StoreMode::Write));
        }
        Kernel::Traversal(t) => {
            for s in &t.body {
                match &s.op {
                    StmtOp::Load { buf, index } => reads.push((*buf, Some(*index))),
                    StmtOp::MatVec { w, .. } => reads.push((*w, None)),
                    StmtOp::Store { buf, mode, .. } => writes.push((*buf, *mode)),
                    _ => {}
                }
            }
        }
    }
    (reads, writes)
}

/// Checks the access rules of the module doc for `kernel`.
pub(crate) fn check<T: super::pool::Pooled>(
    env: &Env,
    kernel: &Kernel,
    storage: &Storage<T>,
) -> Result<KernelAccess> {
    let bad = |m: String| Err(RuntimeError::Internal(m));
    let (reads, writes) = reads_writes(kernel);
    for b in reads.iter().map(|r| r.0).chain(writes.iter().map(|w| w.0)) {
        env.buffer(b)?;
    }
    let mut out = KernelAccess { writes: Vec::new() };
    for &(b, mode) in &writes {
        let buf = env.buffer(b)?;
        if matches!(buf.kind, BufferKind::Input(_) | BufferKind::Weight(_)) {
            return bad(format!("writes {b} (`{}`), an input or weight", buf.name));
        }
        let acc = mode.accumulates();
        match out.writes.iter_mut().find(|(x, _)| *x == b) {
            Some(w) => w.1 |= acc,
            None => {
                if let Some(&(o, _)) =
                    out.writes.iter().find(|(x, _)| storage.storage_of(*x) == storage.storage_of(b))
                {
                    return bad(format!("writes {o} and {b}, which share a slot"));
                }
                out.writes.push((b, acc));
            }
        }
    }
    let is_gemm = matches!(kernel, Kernel::Gemm(_) | Kernel::WeightGrad(_));
    for &(b, index) in &reads {
        if !storage.written[b.index()] {
            return bad(format!(
                "reads {b} (`{}`) before any kernel writes it",
                env.buffer(b)?.name
            ));
        }
        for &(w, acc) in &out.writes {
            if storage.storage_of(w) != storage.storage_of(b) {
                continue;
            }
            let same_row = w == b && index == Some(RowIndex::This) && !acc && !is_gemm;
            if !same_row {
                return bad(format!(
                    "reads {b} while writing {w} in the same storage (a read-write race)"
                ));
            }
        }
    }
    Ok(out)
}

/// The layouts `plan` lists, plus those its buffers and kernels need.
pub(crate) fn needed_layouts(plan: &Plan) -> Vec<Layout> {
    let mut need = plan.layouts.clone();
    let mut add = |l: Layout| {
        if !need.contains(&l) {
            need.push(l);
        }
    };
    let compact_of = |space: RowSpace| match space {
        RowSpace::Compact(ep) => Some(ep),
        _ => None,
    };
    for buf in plan.buffers.values() {
        if let Some(ep) = compact_of(buf.rows) {
            add(Layout::Compact(ep));
        }
    }
    let index = |i: RowIndex, add: &mut dyn FnMut(Layout)| {
        if let RowIndex::EdgeToCompact(ep) = i {
            add(Layout::Compact(ep));
        }
    };
    for k in plan.kernels.values() {
        match k {
            Kernel::Gemm(g) => {
                if let Some(ep) = compact_of(g.rows) {
                    add(Layout::Compact(ep));
                }
                if g.rows == RowSpace::Edges && g.segment == Select::Relation {
                    add(Layout::EdgesByRelation);
                }
                index(g.gather, &mut add);
                for e in &g.epilogue {
                    if let Epilogue::Scale { index: i, .. } | Epilogue::Add { index: i, .. } = e {
                        index(*i, &mut add);
                    }
                }
            }
            Kernel::WeightGrad(g) => {
                if let Some(ep) = compact_of(g.rows) {
                    add(Layout::Compact(ep));
                }
                if g.rows == RowSpace::Edges && g.segment == Select::Relation {
                    add(Layout::EdgesByRelation);
                }
                index(g.b.1, &mut add);
                if let Some((_, i)) = g.a {
                    index(i, &mut add);
                }
            }
            Kernel::Traversal(t) => {
                match t.schedule {
                    // The CPU runs edge-parallel kernels grouped by destination (see
                    // `traversal.rs`), so both schedules need the in-CSR.
                    Schedule::NodeParallel | Schedule::EdgeParallel => add(Layout::InCsr),
                    Schedule::Rows(space) => {
                        if let Some(ep) = compact_of(space) {
                            add(Layout::Compact(ep));
                        }
                    }
                }
                for s in &t.body {
                    if let StmtOp::Load { index: i, .. } = s.op {
                        index(i, &mut add);
                    }
                }
            }
        }
    }
    need
}
