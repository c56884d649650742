//! The pass split of a node-parallel body. Softmax and aggregation need every incoming edge of
//! the destination, so the body becomes a sequence of loops over the edges, with node
//! statements between them:
//!
//! - an edge statement is *ready* in loop `p`, the largest readiness of its operands;
//! - a softmax of an edge register ready in loop `p` is ready in loop `p + 1` (loop `p` keeps a
//!   running maximum and sum per element);
//! - a `max_grad` of an edge register `x` ready in loop `p` is ready in loop `p + 1` (or when its
//!   adjoint is), like a softmax: loop `p` keeps its running maximum;
//! - an aggregation of an edge register ready in loop `p` accumulates during loop `p`; its node
//!   register (its *stage*, `p + 1`) is ready after that loop;
//! - other node statements have the largest stage of their operands, and run before loop
//!   `stage` (or after the last loop).
//!
//! Each loop evaluates only what its *sinks* need (edge stores of that loop, softmax
//! statistics, aggregations): edge values a later loop needs are recomputed there (edge
//! statements are loads and arithmetic). Dead statements (feeding no store) are skipped.
//!
//! Example (RGAT): `r0..r3` (the score) are ready in loop 0, where softmax `r4` gathers its
//! statistics; `r4`, `r5`, `r6` are ready in loop 1, where `r7 = aggregate sum r6` accumulates;
//! the node statements after it have stage 2 and run after the last loop.

use pigeon_ir::plan::{RegId, StmtOp, Traversal};
use pigeon_ir::EntityId;

use super::regs::Reg;

/// The pass split of a body.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Passes {
    /// Whether a statement feeds a store (or is one).
    pub live: Vec<bool>,
    /// Edge statements: the first loop that can compute them; node statements: the number of
    /// loops that must have finished before they run.
    pub ready: Vec<usize>,
    /// For each loop, which statements it evaluates.
    pub evaluated: Vec<Vec<bool>>,
    /// For each loop, the softmax, `max_grad` and aggregation statements whose reductions it
    /// accumulates.
    pub reductions: Vec<Vec<usize>>,
}

/// The registers a statement reads.
pub(crate) fn operands(op: &StmtOp) -> Vec<RegId> {
    op.operands()
}

/// The registers a statement's value reads on an edge: its operands, except that a
/// `max_grad`'s value reads only its adjoint (its operand is read by its statistics' loop).
pub(crate) fn value_operands(op: &StmtOp) -> Vec<RegId> {
    match op {
        StmtOp::MaxGrad { dy, .. } => vec![*dy],
        op => operands(op),
    }
}

/// Which statements feed a store.
pub(crate) fn liveness(t: &Traversal) -> Vec<bool> {
    let mut live: Vec<bool> = t.body.iter().map(|s| matches!(s.op, StmtOp::Store { .. })).collect();
    for i in (0..t.body.len()).rev() {
        if live[i] {
            for r in operands(&t.body[i].op) {
                if let Some(l) = live.get_mut(r.index()) {
                    *l = true;
                }
            }
        }
    }
    live
}

/// The readiness of every statement (see the module doc); operands are already checked.
fn readiness(t: &Traversal) -> Vec<usize> {
    let mut ready = Vec::with_capacity(t.body.len());
    for stmt in &t.body {
        let of = |r: RegId| ready.get(r.index()).copied().unwrap_or(0);
        let r = match &stmt.op {
            StmtOp::Softmax { x } | StmtOp::Aggregate { x, .. } => of(*x) + 1,
            StmtOp::MaxGrad { x, dy, .. } => (of(*x) + 1).max(of(*dy)),
            op => operands(op).into_iter().map(of).max().unwrap_or(0),
        };
        ready.push(r);
    }
    ready
}

/// The loop whose sinks include statement `i`, if it is a live sink.
fn sink_loop(
    t: &Traversal,
    regs: &[Reg],
    ready: &[usize],
    live: &[bool],
    i: usize,
) -> Option<usize> {
    if !live[i] {
        return None;
    }
    match &t.body[i].op {
        StmtOp::Softmax { x } | StmtOp::Aggregate { x, .. } | StmtOp::MaxGrad { x, .. } => {
            Some(ready[x.index()])
        }
        StmtOp::Store { .. } if regs[i].level == pigeon_ir::plan::Level::Edge => Some(ready[i]),
        _ => None,
    }
}

/// Splits a node-parallel body into loops.
pub(crate) fn split(t: &Traversal, regs: &[Reg]) -> Passes {
    let n = t.body.len();
    let live = liveness(t);
    let ready = readiness(t);
    let sinks: Vec<Option<usize>> = (0..n).map(|i| sink_loop(t, regs, &ready, &live, i)).collect();
    let loops = sinks.iter().flatten().map(|p| p + 1).max().unwrap_or(0);
    let mut evaluated = vec![vec![false; n]; loops];
    let mut reductions = vec![Vec::new(); loops];
    for (i, sink) in sinks.iter().enumerate() {
        let Some(p) = *sink else { continue };
        match &t.body[i].op {
            StmtOp::Softmax { x } | StmtOp::Aggregate { x, .. } | StmtOp::MaxGrad { x, .. } => {
                reductions[p].push(i);
                evaluated[p][x.index()] = true;
            }
            _ => evaluated[p][i] = true,
        }
    }
    for eval in &mut evaluated {
        close_over_operands(t, regs, eval);
    }
    Passes { live, ready, evaluated, reductions }
}

/// Marks the edge operands of every marked edge statement (a softmax's value needs its scores).
fn close_over_operands(t: &Traversal, regs: &[Reg], eval: &mut [bool]) {
    for i in (0..t.body.len()).rev() {
        if !eval[i] || regs[i].level != pigeon_ir::plan::Level::Edge {
            continue;
        }
        for r in value_operands(&t.body[i].op) {
            if regs[r.index()].level == pigeon_ir::plan::Level::Edge {
                eval[r.index()] = true;
            }
        }
    }
}
