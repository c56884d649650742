//! Operators over each destination's incoming edges: edge softmax and aggregation.

use super::{Ctx, Val};
use crate::error::{Result, RuntimeError};
use crate::tensor::Tensor;
use pigeon_ir::{AggGroup, AggOp, Domain};

fn edge_operand(x: &Val, what: &str) -> Result<()> {
    if x.domain != Domain::Edge {
        return Err(RuntimeError::Internal(format!(
            "{what} takes an edge value, got a {} value",
            x.domain
        )));
    }
    Ok(())
}

/// Softmax over each destination's incoming edges, per element, shifted by the maximum.
pub(super) fn edge_softmax(ctx: &Ctx, x: Val) -> Result<Tensor> {
    edge_operand(&x, "softmax")?;
    let width = x.t.row_len();
    let mut out = Tensor::zeros(x.t.rows, x.t.shape.clone());
    let groups = ctx.in_edges();
    for v in 0..ctx.graph.num_nodes() {
        let edges = groups.of(v);
        for j in 0..width {
            let max =
                edges.iter().map(|&e| x.t.row(e as usize)[j]).fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = edges.iter().map(|&e| (x.t.row(e as usize)[j] - max).exp()).sum();
            for &e in edges {
                out.row_mut(e as usize)[j] = (x.t.row(e as usize)[j] - max).exp() / total;
            }
        }
    }
    Ok(out)
}

/// Reduces edge rows `edges` of `x` with `op` into `acc` (overwritten); 0 for no edges.
fn reduce_into(op: AggOp, x: &Tensor, edges: &[u32], acc: &mut [f64]) {
    acc.iter_mut().for_each(|a| *a = 0.0);
    if edges.is_empty() {
        return;
    }
    match op {
        AggOp::Sum | AggOp::Mean => {
            for &e in edges {
                for (a, &v) in acc.iter_mut().zip(x.row(e as usize)) {
                    *a += v;
                }
            }
            if op == AggOp::Mean {
                let n = edges.len() as f64;
                acc.iter_mut().for_each(|a| *a /= n);
            }
        }
        AggOp::Max => {
            acc.iter_mut().for_each(|a| *a = f64::NEG_INFINITY);
            for &e in edges {
                for (a, &v) in acc.iter_mut().zip(x.row(e as usize)) {
                    *a = a.max(v);
                }
            }
        }
    }
}

/// Reduction of an edge value into a node value: over all incoming edges, or within each
/// (destination, relation) group and summed over relations.
pub(super) fn aggregate(ctx: &Ctx, op: AggOp, group: AggGroup, x: Val) -> Result<Tensor> {
    edge_operand(&x, "aggregation")?;
    let g = ctx.graph;
    let width = x.t.row_len();
    let mut out = Tensor::zeros(g.num_nodes(), x.t.shape.clone());
    let mut acc = vec![0.0; width];
    let groups = ctx.in_edges();
    for v in 0..g.num_nodes() {
        let edges = groups.of(v);
        match group {
            AggGroup::All => {
                reduce_into(op, x.t, edges, &mut acc);
                out.row_mut(v).copy_from_slice(&acc);
            }
            AggGroup::PerRelation => {
                // `edges` is sorted by relation: each run of one relation is one group.
                for run in edges.chunk_by(|&a, &b| g.rel[a as usize] == g.rel[b as usize]) {
                    reduce_into(op, x.t, run, &mut acc);
                    for (o, a) in out.row_mut(v).iter_mut().zip(&acc) {
                        *o += a;
                    }
                }
            }
        }
    }
    Ok(out)
}
